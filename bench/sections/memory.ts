import { execFileSync } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { spawnLoadgen } from '../loadgen.js';
import { type BenchServer, startBenchServer } from '../servers.js';
import { fmtStat, noValues, ratioText, type Section, type Suite, withServers } from '../suite.js';

async function run(suite: Suite): Promise<void> {
  const { options, warnings, say, SERVER_CORE, addRow, printTable } = suite;
  const counts = options.quick ? [10_000] : [10_000, 50_000];
  const lines: string[][] = [];
  const fdLimit = hardFdLimit();
  for (const conns of counts) {
    const label = `${conns.toLocaleString('en-US')} idle conns`;
    // Server and client each need one descriptor per connection; RLIMIT_NOFILE's hard limit caps both.
    if (fdLimit !== undefined && fdLimit < conns + 1024 && !canRaiseFdLimit(conns + 1024)) {
      warnings.push(
        `memory ${conns.toLocaleString('en-US')} conns: skipped — needs ${conns + 1024} file descriptors per process, the hard limit is ${fdLimit} and cannot be raised here (run as root with CAP_SYS_RESOURCE, or raise it: ulimit -Hn)`,
      );
      lines.push([label, 'skipped', 'skipped', 'fd limit']);
      continue;
    }
    const figures = noValues<IdleMemory>();
    // Every run is a fresh process (memory is not given back between runs), wshub first on odd runs.
    for (let run = 0; run < options.runs; run++) {
      for (const name of run % 2 === 0 ? (['wshub', 'ws'] as const) : (['ws', 'wshub'] as const)) {
        try {
          await withServers(
            [
              startBenchServer(name, 'echo', {
                core: SERVER_CORE,
                nofile: conns + 1024,
                memoryProbe: true,
                // Idle means no traffic: no ping falls due while the section measures (see bench/README.md).
                wshubFlags: ['--ping-interval=60s'],
              }),
            ],
            async (servers) => {
              figures[name].push(await idleMemory(suite, servers[name] as BenchServer, conns));
            },
          );
        } catch (error) {
          warnings.push(`memory ${conns} conns (${name}): ${(error as Error).message}`);
        }
      }
    }
    if (!figures.ws.length) continue;
    for (const [key, what] of IDLE_MEMORY_ROWS) {
      const row = addRow(
        'memory',
        `${label}, ${what}`,
        'KiB/conn',
        false,
        { wshub: figures.wshub.map((f) => f[key]), ws: figures.ws.map((f) => f[key]) },
        key === 'rss' ? { collected: figures.ws.every((f) => f.collected) } : {},
      );
      lines.push([row.case, fmtStat(row.wshub), fmtStat(row.ws), ratioText(row)]);
    }
    if (!figures.ws.every((f) => f.collected) || !figures.wshub.every((f) => f.collected)) {
      warnings.push(
        `memory ${conns} conns: a server could not collect garbage; "after GC" figures are without one`,
      );
    }
  }
  say(
    `idle memory — growth per open connection, KiB (lower is better; ratio = wshub / ws; median [min–max] of ${options.runs}); both servers measured the same way (bench/memory-probe.ts)`,
  );
  printTable(['case', 'wshub', 'ws baseline', 'ratio'], lines);
}

/** Per-connection memory of one server with N idle connections, KiB (see IDLE_MEMORY_ROWS). */
interface IdleMemory {
  readonly rss: number;
  readonly rssSettled: number;
  readonly heapUsed: number;
  readonly outsideHeap: number;
  readonly collected: boolean;
}

const IDLE_MEMORY_ROWS: ReadonlyArray<readonly [Exclude<keyof IdleMemory, 'collected'>, string]> = [
  ['rss', 'RSS after GC'],
  ['rssSettled', 'RSS 2 s after connecting, no GC'],
  ['heapUsed', 'JS heap used'],
  ['outsideHeap', 'outside the JS heap (RSS − heap committed)'],
];

function hardFdLimit(): number | undefined {
  try {
    const value = execFileSync('sh', ['-c', 'ulimit -Hn'], { encoding: 'utf8' }).trim();
    return value === 'unlimited' ? undefined : Number(value);
  } catch {
    return undefined;
  }
}

function canRaiseFdLimit(wanted: number): boolean {
  try {
    execFileSync('sh', ['-c', `ulimit -n ${wanted}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/**
 * Opens `conns` idle connections and returns the server's memory growth per connection.
 * Both samples come after the probe's garbage collections, in the same way for both
 * servers; `rssSettled` is RSS 2 s after the last connection opened, without one.
 */
async function idleMemory(suite: Suite, server: BenchServer, conns: number): Promise<IdleMemory> {
  const { CLIENT_CORE, loadgen } = suite;
  await sleep(500);
  const before = await server.probeMemory();
  const hold = spawnLoadgen({
    binary: loadgen,
    core: CLIENT_CORE,
    timeoutMs: 120_000,
    args: ['hold', '-p', String(server.port), '-P', server.path, '-n', String(conns), '-t', '60'],
  });
  try {
    const deadline = Date.now() + 90_000;
    while (!hold.stdout().includes('"ready"')) {
      if (hold.child.exitCode !== null || Date.now() > deadline) {
        throw new Error(`hold client failed: ${hold.stderr().trim() || hold.stdout().trim() || 'timed out'}`);
      }
      await sleep(50);
    }
    await sleep(2000);
    const settledKiB = server.rssKiB();
    const after = await server.probeMemory();
    const perConn = (bytes: number): number => bytes / 1024 / conns;
    return {
      rss: perConn(after.rss - before.rss),
      rssSettled: perConn(settledKiB * 1024 - before.rss),
      heapUsed: perConn(after.heapUsed - before.heapUsed),
      outsideHeap: perConn(after.rss - after.heapTotal - (before.rss - before.heapTotal)),
      collected: before.collected && after.collected,
    };
  } finally {
    hold.child.kill('SIGTERM');
    await hold.exited;
  }
}

export const memorySection: Section = { name: 'memory', run };
