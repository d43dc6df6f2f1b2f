import { execFile, execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { cpus, loadavg, release } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { WebSocket } from 'ws';
import { flag, flagsHelp, parseFlags } from '../src/config/args.js';
import { boolean, decimal, integer, list, text } from '../src/config/kinds.js';
import { isUsageError } from '../src/errors.js';
// The backplane section starts its own redis-server with the same helper as the tests.
import { RedisServer } from '../test/helpers/redis.js';
import { RedisClusterFixture } from '../test/helpers/redis-cluster.js';
import {
  buildCeilingServer,
  buildLoadgen,
  type LoadgenResult,
  RESULTS_DIR,
  ROOT,
  runLoadgen,
  spawnLoadgen,
} from './loadgen.js';
import { writeSuiteReport } from './report-html.js';
import { type BenchServer, type ServerName, startBenchServer, wshubHasBroadcast } from './servers.js';

/**
 * `npm run bench`: wshub against the minimal `ws` baseline, alternating in the
 * same run, medians of several runs with their spread. See bench/README.md.
 */

interface Options {
  quick: boolean;
  json: boolean;
  runs: number;
  seconds: number;
  warmup: number;
  only: Set<string> | undefined;
  /** --report=FILE.html: the results as an HTML file with bar charts (bench/report-html.ts). */
  report: string | undefined;
}

const SECTIONS = [
  'echo',
  'broadcast',
  'memory',
  'connect',
  'backplane',
  'scaleout',
  'workers',
  'history',
  'http2',
] as const;

/** `npm run bench -- …`: the flags, parsed by the shared parser (src/config/args.ts). */
export const BENCH_SUITE_FLAGS = {
  quick: flag({
    kind: boolean(),
    default: false,
    doc: 'One 1-second run per case (0.5 s warm-up), for a quick look',
  }),
  json: flag({ kind: boolean(), default: false, doc: 'Print the results as one JSON document on stdout' }),
  runs: flag({ kind: integer(1, 99), default: 3, doc: 'Runs per case (medians and spread)' }),
  seconds: flag({ kind: decimal(0.1, 60), default: 2, doc: 'Seconds per run' }),
  report: flag({
    kind: { ...text({ expected: 'a file name ending in .html', pattern: /\.html?$/i }), hint: '<FILE.html>' },
    default: '',
    doc: 'Also write the results as an HTML file with bar charts',
  }),
  only: flag({
    kind: list({
      pattern: new RegExp(`^(${SECTIONS.join('|')})$`),
      expected: `a comma-separated list of ${SECTIONS.join(', ')}`,
    }),
    default: [] as readonly string[],
    doc: `Sections to run (${SECTIONS.join(',')}; default: all)`,
  }),
} as const;

function parseOptions(argv: readonly string[]): Options {
  const { values, given, help } = parseFlags(argv, BENCH_SUITE_FLAGS, 'npm run bench');
  if (help) {
    process.stdout.write(
      ['Usage: npm run bench -- [flags]', '', 'Flags:', ...flagsHelp(BENCH_SUITE_FLAGS), ''].join('\n'),
    );
    process.exit(0);
  }
  return {
    quick: values.quick,
    json: values.json,
    runs: values.quick && !given.has('runs') ? 1 : values.runs,
    seconds: values.quick && !given.has('seconds') ? 1 : values.seconds,
    warmup: values.quick ? 0.5 : 1,
    only: values.only.length === 0 ? undefined : new Set(values.only),
    report: values.report === '' ? undefined : values.report,
  };
}

let options: Options;
try {
  options = parseOptions(process.argv.slice(2));
} catch (error) {
  if (!isUsageError(error)) throw error;
  process.stderr.write(`bench: ${error.message} [${error.code}]\n`);
  process.exit(2);
}
// With --json the human-readable report goes to stderr and stdout carries only the JSON document.
const say = (line = ''): void => {
  (options.json ? process.stderr : process.stdout).write(`${line}\n`);
};

interface Stat {
  readonly median: number;
  readonly min: number;
  readonly max: number;
  readonly values: number[];
}

interface Row {
  readonly section: string;
  readonly case: string;
  readonly unit: string;
  /** Whether a higher value is better (throughput) or lower (memory). */
  readonly higherIsBetter: boolean;
  readonly wshub: Stat | undefined;
  readonly ws: Stat;
  readonly ratio: number | undefined;
  /** Echo only: the C reference server (bench/ceiling-server.c), and its median divided by the baseline's. */
  readonly ceiling?: Stat | undefined;
  readonly ceilingRatio?: number | undefined;
  readonly extra: Record<string, unknown>;
}

const rows: Row[] = [];
/** Above this share of a core, the load generator may be what limits a figure (issue 5). */
const LOADGEN_SATURATED_PCT = 80;
const warnings: string[] = [];

function stat(values: number[]): Stat {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  const median =
    sorted.length % 2 === 1
      ? (sorted[mid] as number)
      : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
  return { median, min: sorted[0] as number, max: sorted[sorted.length - 1] as number, values };
}

const fmt = (n: number): string =>
  n >= 100 ? Math.round(n).toLocaleString('en-US') : n.toFixed(n >= 10 ? 1 : 2);
const fmtStat = (s: Stat | undefined): string =>
  s === undefined
    ? 'n/a'
    : s.values.length > 1
      ? `${fmt(s.median)} [${fmt(s.min)}–${fmt(s.max)}]`
      : fmt(s.median);

// --- machine and conditions

const cores = cpus().length;
let hasTaskset = false;
try {
  execFileSync('taskset', ['-c', '0', 'true'], { stdio: 'ignore' });
  hasTaskset = true;
} catch {
  hasTaskset = false;
}
const pinning = cores >= 2 && hasTaskset;
const SERVER_CORE = pinning ? 0 : undefined;
const CLIENT_CORE = pinning ? 1 : undefined;

function bufferutilStatus(): string {
  try {
    const require = createRequire(import.meta.url);
    const bufferutil = require('bufferutil') as { mask: unknown };
    const native = !String(bufferutil.mask).includes('for (let i = 0');
    return native ? 'native (bufferutil)' : 'JavaScript fallback (bufferutil did not build)';
  } catch {
    return 'not installed (ws masks in JavaScript)';
  }
}

const conditions = {
  date: new Date().toISOString(),
  cpu: cpus()[0]?.model ?? 'unknown',
  cores,
  kernel: release(),
  node: process.version,
  pinning: pinning
    ? `server on core ${SERVER_CORE}, load generator on core ${CLIENT_CORE} (taskset)`
    : 'none (fewer than 2 cores or no taskset): server and load generator share the CPUs',
  bufferutil: bufferutilStatus(),
  loadAverageAtStart: loadavg().map((n) => Number(n.toFixed(2))),
  loadAverageAtEnd: [] as number[],
  runs: options.runs,
  secondsPerRun: options.seconds,
  quick: options.quick,
};

// --- scenario helpers

const loadgen = buildLoadgen();

type PerServer<T> = Record<ServerName, T>;
const noValues = <T>(): PerServer<T[]> => ({ wshub: [], ws: [], ceiling: [] });

/**
 * Runs `measure` for each server alternately, `runs` times each: wshub, ws (, C reference) on odd
 * runs, the reverse order on even runs.
 */
async function alternate<T>(
  runs: number,
  servers: Partial<PerServer<BenchServer>>,
  measure: (server: BenchServer) => Promise<T>,
): Promise<PerServer<T[]>> {
  const out = noValues<T>();
  for (let run = 0; run < runs; run++) {
    const names: ServerName[] = ['wshub', 'ws', 'ceiling'];
    const order = run % 2 === 0 ? names : names.reverse();
    for (const name of order) {
      const server = servers[name];
      if (server) out[name].push(await measure(server));
    }
  }
  return out;
}

function addRow(
  section: string,
  label: string,
  unit: string,
  higherIsBetter: boolean,
  values: { wshub: number[]; ws: number[]; ceiling?: number[] },
  extra: Record<string, unknown> = {},
): Row {
  const wshub = values.wshub.length ? stat(values.wshub) : undefined;
  const ws = stat(values.ws);
  const ratio = wshub ? wshub.median / ws.median : undefined;
  const ceiling = values.ceiling?.length ? stat(values.ceiling) : undefined;
  const row: Row = {
    section,
    case: label,
    unit,
    higherIsBetter,
    wshub,
    ws,
    ratio,
    ...(ceiling && { ceiling, ceilingRatio: ceiling.median / ws.median }),
    extra,
  };
  rows.push(row);
  return row;
}

const ratioText = (row: Row): string => (row.ratio === undefined ? 'n/a' : `${row.ratio.toFixed(2)}×`);
const median = (values: number[]): number => stat(values).median;
const medianOf = (results: LoadgenResult[], key: 'p50_us' | 'p99_us'): number | undefined =>
  results.length ? median(results.map((r) => r[key])) : undefined;
const cpuOf = (results: LoadgenResult[]): string =>
  results.length ? `${Math.max(...results.map((r) => r.client_cpu_pct)).toFixed(0)}%` : '–';
const usPerOp = (values: PerServer<number[]>): string =>
  `${values.wshub.length ? fmt(median(values.wshub)) : '–'} / ${values.ws.length ? fmt(median(values.ws)) : '–'}`;
const latencyOf = (results: LoadgenResult[]): string =>
  results.length
    ? `${fmt(medianOf(results, 'p50_us') ?? 0)} / ${fmt(medianOf(results, 'p99_us') ?? 0)}`
    : 'n/a';

/**
 * Runs the load generator once against `server`; `cpuUsPerOp` is the server's CPU time (user +
 * system, /proc) over the client's measured window, per operation (undefined when none completed).
 */
async function runMeasuringServerCpu(
  server: BenchServer,
  args: string[],
  core: number | undefined,
): Promise<{ result: LoadgenResult; cpuUsPerOp: number | undefined }> {
  let cpuAtStart = 0;
  let cpuUsed = 0;
  const result = await runLoadgen({
    binary: loadgen,
    core,
    timeoutMs: 120_000,
    args,
    onMarker(marker) {
      if (marker === 'measure-start') cpuAtStart = server.cpuSeconds();
      else cpuUsed = server.cpuSeconds() - cpuAtStart;
    },
  });
  return { result, cpuUsPerOp: result.count > 0 ? (cpuUsed * 1e6) / result.count : undefined };
}

/** One table row: runs the load generator against both servers alternately and records the figures. */
async function measureCase(
  section: string,
  label: string,
  unit: string,
  servers: Partial<PerServer<BenchServer>>,
  args: (server: BenchServer) => string[],
): Promise<{ row: Row; results: PerServer<LoadgenResult[]>; serverCpuUs: PerServer<number[]> }> {
  const serverCpuUs = noValues<number>();
  const results = await alternate(options.runs, servers, async (server) => {
    const { result, cpuUsPerOp } = await runMeasuringServerCpu(server, args(server), CLIENT_CORE);
    if (cpuUsPerOp !== undefined) serverCpuUs[server.name].push(cpuUsPerOp);
    if (result.client_cpu_pct > LOADGEN_SATURATED_PCT) {
      warnings.push(
        server.name === 'ceiling'
          ? `${section} ${label} (C reference): load generator at ${result.client_cpu_pct.toFixed(0)}% of a core — the client, not the server, limits this figure: the machine's ceiling is higher`
          : `${section} ${label} (${server.name}): load generator at ${result.client_cpu_pct.toFixed(0)}% of a core — it may be the bottleneck`,
      );
    }
    return result;
  });
  const row = addRow(
    section,
    label,
    unit,
    true,
    {
      wshub: results.wshub.map((r) => r.per_s),
      ws: results.ws.map((r) => r.per_s),
      ceiling: results.ceiling.map((r) => r.per_s),
    },
    {
      p50_us: { wshub: medianOf(results.wshub, 'p50_us'), ws: medianOf(results.ws, 'p50_us') },
      p99_us: { wshub: medianOf(results.wshub, 'p99_us'), ws: medianOf(results.ws, 'p99_us') },
      loadgenCpuPct: {
        wshub: results.wshub.map((r) => r.client_cpu_pct),
        ws: results.ws.map((r) => r.client_cpu_pct),
        ...(results.ceiling.length && { ceiling: results.ceiling.map((r) => r.client_cpu_pct) }),
      },
      serverCpuUsPerOp: {
        wshub: serverCpuUs.wshub.length ? median(serverCpuUs.wshub) : undefined,
        ws: serverCpuUs.ws.length ? median(serverCpuUs.ws) : undefined,
        ...(serverCpuUs.ceiling.length && { ceiling: median(serverCpuUs.ceiling) }),
      },
    },
  );
  return { row, results, serverCpuUs };
}

/** Starts the servers, runs `body`, stops them whatever happens. */
async function withServers<T>(
  starts: Array<Promise<BenchServer>>,
  body: (servers: Partial<PerServer<BenchServer>>) => Promise<T>,
): Promise<T> {
  const started = await Promise.allSettled(starts);
  const servers: Partial<PerServer<BenchServer>> = {};
  for (const outcome of started)
    if (outcome.status === 'fulfilled') servers[outcome.value.name] = outcome.value;
  try {
    const failure = started.find((outcome) => outcome.status === 'rejected');
    if (failure) throw failure.reason;
    return await body(servers);
  } finally {
    await servers.wshub?.stop();
    await servers.ws?.stop();
    await servers.ceiling?.stop();
  }
}

const commonArgs = (server: BenchServer): string[] => [
  '-p',
  String(server.port),
  '-P',
  server.path,
  '-d',
  String(options.seconds),
  '-w',
  String(options.warmup),
];

function printTable(headers: string[], lines: string[][]): void {
  const widths = headers.map((h, i) => Math.max(h.length, ...lines.map((line) => (line[i] ?? '').length)));
  const render = (cells: string[]): string =>
    cells
      .map((cell, i) => (i === 0 ? cell.padEnd(widths[i] ?? 0) : cell.padStart(widths[i] ?? 0)))
      .join('  ');
  say(render(headers));
  for (const line of lines) say(render(line));
  say();
}

// --- sections

async function echoSection(): Promise<void> {
  const cases = [
    { conns: 100, size: 20, deflate: false },
    { conns: 100, size: 16 * 1024, deflate: false },
    { conns: 1000, size: 20, deflate: false },
    { conns: 1000, size: 16 * 1024, deflate: false },
    { conns: 100, size: 20, deflate: true },
    { conns: 100, size: 16 * 1024, deflate: true },
  ];
  // The C reference server: what this machine and this client allow any echo server (no compression).
  const ceilingBinary = buildCeilingServer();
  const lines: string[][] = [];
  const saturatedCeiling: string[] = [];
  for (const deflate of [false, true]) {
    // Compression on: wshub --compression (its defaults), the baseline with ws's perMessageDeflate: true.
    const start = (name: ServerName) =>
      startBenchServer(name, deflate ? 'echo-deflate' : 'echo', {
        core: SERVER_CORE,
        nofile: 4096,
        wshubFlags: deflate ? ['--compression'] : [],
        ceilingBinary,
      });
    const starts = [start('wshub'), start('ws')];
    if (!deflate) starts.push(start('ceiling'));
    await withServers(starts, async (servers) => {
      for (const { conns, size } of cases.filter((c) => c.deflate === deflate)) {
        const label = `${conns} conns × ${size >= 1024 ? `${size / 1024} KiB` : `${size} B`}${deflate ? ', deflate' : ''}`;
        const { row, results, serverCpuUs } = await measureCase(
          'echo',
          label,
          'msgs/s',
          servers,
          (server) => [
            'echo',
            ...commonArgs(server),
            '-n',
            String(conns),
            '-s',
            String(size),
            '-z',
            deflate ? '1' : '0',
          ],
        );
        for (const name of ['wshub', 'ws'] as const) {
          if (deflate && results[name].some((r) => r.deflate_conns !== conns)) {
            warnings.push(
              `echo ${label} (${name}): permessage-deflate was not negotiated on every connection`,
            );
          }
        }
        const ceilingSaturated = results.ceiling.some((r) => r.client_cpu_pct > LOADGEN_SATURATED_PCT);
        if (ceilingSaturated) saturatedCeiling.push(label);
        lines.push([
          label,
          fmtStat(row.wshub),
          fmtStat(row.ws),
          ratioText(row),
          row.ceiling ? `${fmtStat(row.ceiling)}${ceilingSaturated ? ' *' : ''}` : 'n/a',
          row.ceilingRatio === undefined ? 'n/a' : `${row.ceilingRatio.toFixed(2)}×`,
          serverCpuUs.ceiling.length && serverCpuUs.ws.length
            ? `${(median(serverCpuUs.ws) / median(serverCpuUs.ceiling)).toFixed(2)}×`
            : 'n/a',
          `${usPerOp(serverCpuUs)}${serverCpuUs.ceiling.length ? ` / ${fmt(median(serverCpuUs.ceiling))}` : ''}`,
          `${cpuOf(results.wshub)} / ${cpuOf(results.ws)}${results.ceiling.length ? ` / ${cpuOf(results.ceiling)}` : ''}`,
        ]);
      }
    });
  }
  say(
    `echo — msgs/s, one message in flight per connection, binary; "deflate": permessage-deflate negotiated, messages ≥ 1 KiB compressed by the server (median [min–max] of ${options.runs})`,
  );
  printTable(
    [
      'case',
      'wshub',
      'ws baseline',
      'ratio',
      'C reference',
      'C / ws',
      'C / ws per CPU',
      'server CPU µs/op wshub / ws / C',
      'loadgen CPU (max) wshub / ws / C',
    ],
    lines,
  );
  say(
    'C reference: bench/ceiling-server.c, a one-thread epoll echo server in C (no compression), same pinning and client —',
  );
  say(
    'what the kernel and this machine allow any server; "C / ws" is the most any Node server could gain over ws.',
  );
  say(
    '"C / ws per CPU": ws\'s server CPU µs/op divided by the C server\'s — messages per core-second, robust under load.',
  );
  if (saturatedCeiling.length) {
    say(
      `* load generator above ${LOADGEN_SATURATED_PCT}% of a core against the C reference (${saturatedCeiling.join('; ')}): there the client is the limit, the true ceiling is higher`,
    );
  }
  say();
}

async function broadcastSection(): Promise<void> {
  const hasBroadcast = wshubHasBroadcast();
  if (!hasBroadcast) {
    warnings.push('broadcast: this wshub build has no --mode=broadcast; only the naive ws loop was measured');
  }
  // Compression on: wshub --compression (a broadcast compressed once per window) against the naive
  // loop with ws's perMessageDeflate: true (compressed once per receiver), JSON-like 2 KiB messages.
  const cases = [
    ...(options.quick ? [100, 1000] : [100, 1000, 10_000]).map((subscribers) => ({
      subscribers,
      deflate: false,
    })),
    { subscribers: 1000, deflate: true },
  ];
  const lines: string[][] = [];
  for (const { subscribers, deflate } of cases) {
    const nofile = subscribers + 1024;
    const mode = deflate ? 'broadcast-deflate' : 'broadcast';
    const size = deflate ? 2048 : 20;
    const starts = [startBenchServer('ws', mode, { core: SERVER_CORE, nofile })];
    if (hasBroadcast) {
      starts.push(
        startBenchServer('wshub', mode, {
          core: SERVER_CORE,
          nofile,
          wshubFlags: ['--mode=broadcast', ...(deflate ? ['--compression'] : [])],
        }),
      );
    }
    await withServers(starts, async (servers) => {
      for (const window of [1, 16]) {
        const label = `1 → ${subscribers.toLocaleString('en-US')} subs, window ${window}${deflate ? ', 2 KiB deflate' : ''}`;
        const { row, results, serverCpuUs } = await measureCase(
          'broadcast',
          label,
          'deliveries/s',
          servers,
          (server) => [
            'fanout',
            ...commonArgs(server),
            '-n',
            String(subscribers),
            '-s',
            String(size),
            '-W',
            String(window),
            '-z',
            deflate ? '1' : '0',
          ],
        );
        for (const name of ['wshub', 'ws'] as const) {
          // The publisher negotiates too: subscribers + 1 connections.
          if (deflate && results[name].some((r) => r.deflate_conns !== subscribers + 1)) {
            warnings.push(
              `broadcast ${label} (${name}): permessage-deflate was not negotiated on every connection`,
            );
          }
        }
        lines.push([
          label,
          fmtStat(row.wshub),
          latencyOf(results.wshub),
          fmtStat(row.ws),
          latencyOf(results.ws),
          ratioText(row),
          usPerOp(serverCpuUs),
          `${cpuOf(results.wshub)} / ${cpuOf(results.ws)}`,
        ]);
      }
    });
  }
  say(
    `broadcast — 1 publisher, 20 B binary messages ("2 KiB deflate": JSON-like, permessage-deflate negotiated by every client), deliveries/s and publish-to-receive latency p50/p99 in µs; server CPU µs per delivery (median [min–max] of ${options.runs})`,
  );
  printTable(
    [
      'case',
      'wshub',
      'wshub p50/p99',
      'naive ws loop',
      'ws p50/p99',
      'ratio',
      'server CPU µs/op wshub / ws',
      'loadgen CPU (max)',
    ],
    lines,
  );
}

async function memorySection(): Promise<void> {
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
              figures[name].push(await idleMemory(servers[name] as BenchServer, conns));
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
async function idleMemory(server: BenchServer, conns: number): Promise<IdleMemory> {
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

async function connectSection(): Promise<void> {
  const start = (name: ServerName) => startBenchServer(name, 'echo', { core: SERVER_CORE, nofile: 4096 });
  const lines: string[][] = [];
  await withServers([start('wshub'), start('ws')], async (servers) => {
    const { row, results, serverCpuUs } = await measureCase(
      'connect',
      '64 in parallel',
      'connections/s',
      servers,
      (server) => ['connect', ...commonArgs(server), '-c', '64'],
    );
    lines.push([
      row.case,
      fmtStat(row.wshub),
      fmtStat(row.ws),
      ratioText(row),
      usPerOp(serverCpuUs),
      `${cpuOf(results.wshub)} / ${cpuOf(results.ws)}`,
    ]);
  });
  say(
    `connection rate — connect + upgrade + close handshake per second (median [min–max] of ${options.runs})`,
  );
  printTable(
    ['case', 'wshub', 'ws baseline', 'ratio', 'server CPU µs/op wshub / ws', 'loadgen CPU (max)'],
    lines,
  );
}

/**
 * Cross-node fan-out (issue 6): the publisher on wshub node A, every subscriber on node B,
 * relayed through a local redis-server; the baseline, measured alternately in the same run, is the
 * same fan-out on one wshub node without a backplane.
 */
/** One fan-out run of 20 B messages: subscribers on `target`, the publisher on `publisher` (the same node or another). */
async function fanoutThroughNodes(
  target: BenchServer,
  publisher: BenchServer,
  subscribers: number,
  window: number,
  what: string,
): Promise<LoadgenResult> {
  const result = await runLoadgen({
    binary: loadgen,
    core: CLIENT_CORE,
    timeoutMs: 120_000,
    args: [
      'fanout',
      ...commonArgs(target),
      ...(publisher === target ? [] : ['-q', String(publisher.port)]),
      '-n',
      String(subscribers),
      '-s',
      '20',
      '-W',
      String(window),
    ],
  });
  if (result.lost > 0 || result.dups > 0) {
    warnings.push(`${what}: ${result.lost} lost, ${result.dups} duplicated`);
  }
  return result;
}

async function backplaneSection(): Promise<void> {
  let redis: RedisServer;
  try {
    redis = await RedisServer.start();
  } catch (error) {
    warnings.push(`backplane: not measured: ${(error as Error).message}`);
    return;
  }
  const subscriberCounts = options.quick ? [100] : [100, 1000];
  // Window 256 only at 1,000 subscribers: where batching through Redis matters; keeps the suite under 10 minutes.
  const windowsFor = (subscribers: number): number[] =>
    options.quick || subscribers < 1000 ? [16] : [16, 256];
  const lines: string[][] = [];
  const node = (logName: string, subscribers: number, extra: string[]) =>
    startBenchServer('wshub', 'broadcast', {
      core: undefined,
      nofile: subscribers + 1024,
      wshubFlags: ['--mode=broadcast', ...extra],
      logName,
    });
  try {
    for (const subscribers of subscriberCounts) {
      const flags = [`--backplane=${redis.url}`];
      const servers = await Promise.all([
        node('wshub-single', subscribers, []),
        node('wshub-node-a', subscribers, flags),
        node('wshub-node-b', subscribers, flags),
      ]);
      const [single, nodeA, nodeB] = servers as [BenchServer, BenchServer, BenchServer];
      try {
        await waitForLog(nodeA, /Backplane connected/);
        await waitForLog(nodeB, /Backplane connected/);
        for (const window of windowsFor(subscribers)) {
          const results: { single: LoadgenResult[]; cross: LoadgenResult[] } = { single: [], cross: [] };
          for (let run = 0; run < options.runs; run++) {
            const order = run % 2 === 0 ? (['cross', 'single'] as const) : (['single', 'cross'] as const);
            for (const variant of order) {
              const target = variant === 'single' ? single : nodeB;
              const result = await fanoutThroughNodes(
                target,
                variant === 'single' ? target : nodeA,
                subscribers,
                window,
                `backplane ${variant} ${subscribers} subs window ${window}`,
              );
              results[variant].push(result);
            }
          }
          const label = `1 → ${subscribers.toLocaleString('en-US')} subs, window ${window}`;
          const row = addRow(
            'backplane',
            label,
            'deliveries/s',
            true,
            { wshub: results.cross.map((r) => r.per_s), ws: results.single.map((r) => r.per_s) },
            {
              comparison: 'wshub = publisher on node A, subscribers on node B via Redis; ws = one wshub node',
              p50_us: {
                crossNode: medianOf(results.cross, 'p50_us'),
                singleNode: medianOf(results.single, 'p50_us'),
              },
              p99_us: {
                crossNode: medianOf(results.cross, 'p99_us'),
                singleNode: medianOf(results.single, 'p99_us'),
              },
            },
          );
          lines.push([
            label,
            fmtStat(row.wshub),
            latencyOf(results.cross),
            fmtStat(row.ws),
            latencyOf(results.single),
            ratioText(row),
          ]);
        }
      } finally {
        await Promise.all(servers.map((server) => server.stop()));
      }
    }
  } finally {
    await redis.stop();
  }
  say(
    `backplane — cross-node fan-out: publisher on node A, subscribers on node B, through redis-server on loopback; baseline: the same on one node (median [min–max] of ${options.runs}; nodes and Redis not pinned)`,
  );
  printTable(['case', 'two nodes', 'p50/p99 µs', 'one node', 'p50/p99 µs', 'ratio'], lines);
}

/** The metrics port a bench wshub logged at startup. */
function metricsPortOf(server: BenchServer): number {
  const match = /Starting metrics server on \S+:(\d+)/.exec(readFileSync(server.logFile, 'utf8'));
  if (!match) throw new Error(`${server.logFile}: no metrics port`);
  return Number(match[1]);
}

async function scrape(server: BenchServer, name: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${metricsPortOf(server)}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line === undefined ? Number.NaN : Number(line.split(' ')[1]);
}

async function openClients(port: number, rooms: readonly string[]): Promise<WebSocket[]> {
  return Promise.all(
    rooms.map(
      (room) =>
        new Promise<WebSocket>((resolve, reject) => {
          const ws = new WebSocket(`ws://127.0.0.1:${port}/ws/${room}`);
          ws.once('open', () => resolve(ws));
          ws.once('error', reject);
        }),
    ),
  );
}

/** Resolves once every client got `count` messages (or rejects after `timeoutMs`). */
function receiveAll(clients: readonly WebSocket[], count: number, timeoutMs: number): Promise<void> {
  let waiting = clients.length;
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () =>
        reject(
          new Error(
            `${waiting} of ${clients.length} clients short of ${count} messages after ${timeoutMs} ms`,
          ),
        ),
      timeoutMs,
    );
    for (const ws of clients) {
      let got = 0;
      ws.on('message', () => {
        if (++got === count && --waiting === 0) {
          clearTimeout(timer);
          resolve();
        }
      });
    }
  });
}

/**
 * Scaling out (issue 18). (1) Per-room routing: twelve nodes on one Redis, ~300 rooms spread over
 * them unevenly (node i holds a share proportional to i+1, one subscriber per room), every room
 * gets the same traffic from a thirteenth node; each node's inbound backplane messages follow its
 * own rooms, not the cluster's total. (2) Cross-node fan-out (publishers on node A, one subscriber
 * per room on node B, 64 rooms) through one redis-server against a 3-master Redis Cluster with
 * sharded pub/sub, alternating in the same run. Everything on this box, nothing pinned.
 */
async function scaleoutSection(): Promise<void> {
  const nodeCount = 12;
  const totalRooms = options.quick ? 120 : 300;
  const perRoom = options.quick ? 10 : 20;
  let redis: RedisServer;
  try {
    redis = await RedisServer.start();
  } catch (error) {
    warnings.push(`scaleout: not measured: ${(error as Error).message}`);
    return;
  }
  const start = (logName: string, flags: string[]) =>
    startBenchServer('wshub', 'broadcast', {
      core: undefined,
      nofile: 4096,
      wshubFlags: ['--mode=broadcast', ...flags],
      logName,
    });
  const routingLines: string[][] = [];
  try {
    const flags = [`--backplane=${redis.url}`];
    // Started a few at a time: thirteen Node processes starting at once on a small box take longer
    // than a start is given.
    const servers: BenchServer[] = [];
    try {
      for (let i = 0; i <= nodeCount; i += 4) {
        const batch = Array.from({ length: Math.min(4, nodeCount + 1 - i) }, (_, k) => i + k);
        const started = await Promise.allSettled(
          batch.map((n) =>
            start(
              n === nodeCount ? 'scaleout-publisher' : `scaleout-node-${n + 1}`,
              n === nodeCount ? [...flags, '--broadcast-exclude-sender'] : flags,
            ),
          ),
        );
        for (const result of started) if (result.status === 'fulfilled') servers.push(result.value);
        const failed = started.find((result) => result.status === 'rejected');
        if (failed) throw (failed as PromiseRejectedResult).reason;
      }
    } catch (error) {
      await Promise.all(servers.map((server) => server.stop()));
      throw error;
    }
    const publisher = servers[nodeCount] as BenchServer;
    const weights = Array.from({ length: nodeCount }, (_, i) => i + 1);
    const weightSum = weights.reduce((a, b) => a + b, 0);
    const roomsOf: string[][] = weights.map(() => []);
    let next = 0;
    weights.forEach((weight, i) => {
      const count = Math.max(1, Math.round((totalRooms * weight) / weightSum));
      for (let k = 0; k < count; k++) roomsOf[i]?.push(`r${next++}`);
    });
    const allRooms = roomsOf.flat();
    const clients: WebSocket[] = [];
    try {
      for (const server of servers) await waitForLog(server, /Backplane connected/);
      const subscribers = await Promise.all(
        roomsOf.map((rooms, i) => openClients((servers[i] as BenchServer).port, rooms)),
      );
      const senders = await openClients(publisher.port, allRooms);
      clients.push(...subscribers.flat(), ...senders);
      // Every node has subscribed its rooms before the traffic starts.
      for (let i = 0; i < nodeCount; i++) {
        const deadline = Date.now() + 15_000;
        while (
          (await scrape(servers[i] as BenchServer, 'wshub_backplane_subscribed_rooms')) !== roomsOf[i]?.length
        ) {
          if (Date.now() > deadline) throw new Error(`node ${i + 1} did not subscribe its rooms`);
          await sleep(50);
        }
      }
      const before = await Promise.all(
        servers.slice(0, nodeCount).map((s) => scrape(s, 'wshub_backplane_messages_inbound_total')),
      );
      const done = receiveAll(subscribers.flat(), perRoom, 120_000);
      for (let m = 0; m < perRoom; m++) for (const ws of senders) ws.send(`m${m}`);
      await done;
      await sleep(200);
      const published = allRooms.length * perRoom;
      for (let i = 0; i < nodeCount; i++) {
        const inbound =
          (await scrape(servers[i] as BenchServer, 'wshub_backplane_messages_inbound_total')) -
          (before[i] ?? 0);
        const rooms = roomsOf[i]?.length ?? 0;
        routingLines.push([
          `node ${i + 1}`,
          String(rooms),
          `${((100 * rooms) / allRooms.length).toFixed(1)}%`,
          inbound.toLocaleString('en-US'),
          `${((100 * inbound) / published).toFixed(1)}%`,
          (inbound / rooms).toFixed(1),
        ]);
      }
      rows.push({
        section: 'scaleout',
        case: `per-room routing, ${nodeCount} nodes, ${allRooms.length} rooms × ${perRoom} messages`,
        unit: 'inbound messages per node',
        higherIsBetter: false,
        wshub: undefined,
        ws: stat([published]),
        ratio: undefined,
        extra: {
          perNode: routingLines.map(([node, rooms, , inbound]) => ({
            node,
            rooms: Number(rooms),
            inbound: Number(inbound?.replace(/,/g, '')),
          })),
          published,
        },
      });
      say(
        `scaleout — per-room routing: ${nodeCount} wshub nodes on one redis-server, ${allRooms.length} rooms (one subscriber each, node i holding a share ∝ i), ${perRoom} messages per room from a 13th node (${published.toLocaleString('en-US')} in all; before per-room routing every node received all of them)`,
      );
      printTable(
        [
          'node',
          'rooms',
          'share of rooms',
          'inbound backplane msgs',
          'share of all msgs',
          'inbound per room',
        ],
        routingLines,
      );
    } finally {
      for (const ws of clients) ws.terminate();
      await Promise.all(servers.map((server) => server.stop()));
    }
  } finally {
    await redis.stop();
  }
  await scaleoutThroughput();
}

async function scaleoutThroughput(): Promise<void> {
  const roomCount = 64;
  const perRoom = options.quick ? 200 : 500;
  let redis: RedisServer | undefined;
  let cluster: RedisClusterFixture | undefined;
  try {
    redis = await RedisServer.start();
    cluster = await RedisClusterFixture.start({ masters: 3, replicas: 0 });
  } catch (error) {
    warnings.push(`scaleout: cluster throughput not measured: ${(error as Error).message}`);
    await redis?.stop();
    return;
  }
  const rooms = Array.from({ length: roomCount }, (_, i) => `t${i}`);
  const pair = async (variant: 'single' | 'cluster', url: string) => {
    const nodes = await Promise.all(
      ['a', 'b'].map((name) =>
        startBenchServer('wshub', 'broadcast', {
          core: undefined,
          nofile: 4096,
          wshubFlags: ['--mode=broadcast', '--broadcast-exclude-sender', `--backplane=${url}`],
          logName: `scaleout-${variant}-${name}`,
        }),
      ),
    );
    for (const node of nodes) await waitForLog(node, /Backplane connected/);
    return nodes as [BenchServer, BenchServer];
  };
  const variants = {
    single: await pair('single', redis.url),
    cluster: await pair('cluster', cluster.url),
  };
  const results: { single: number[]; cluster: number[] } = { single: [], cluster: [] };
  try {
    for (let run = 0; run < options.runs; run++) {
      const order = run % 2 === 0 ? (['cluster', 'single'] as const) : (['single', 'cluster'] as const);
      for (const variant of order) {
        const [a, b] = variants[variant];
        const receivers = await openClients(b.port, rooms);
        const senders = await openClients(a.port, rooms);
        try {
          const deadline = Date.now() + 15_000;
          while ((await scrape(b, 'wshub_backplane_subscribed_rooms')) < roomCount) {
            if (Date.now() > deadline) throw new Error(`${variant}: node B did not subscribe its rooms`);
            await sleep(50);
          }
          const done = receiveAll(receivers, perRoom, 120_000);
          const startedAt = performance.now();
          const payload = Buffer.alloc(64, 0x61);
          for (let m = 0; m < perRoom; m++) for (const ws of senders) ws.send(payload);
          await done;
          results[variant].push((roomCount * perRoom) / ((performance.now() - startedAt) / 1000));
        } finally {
          for (const ws of [...receivers, ...senders]) ws.terminate();
        }
        // Let the linger end so the next run subscribes from scratch, as the first did.
        await sleep(300);
      }
    }
  } finally {
    await Promise.all([...variants.single, ...variants.cluster].map((server) => server.stop()));
    await Promise.all([redis.stop(), cluster.stop()]);
  }
  const row = addRow(
    'scaleout',
    `cross-node fan-out, ${roomCount} rooms × ${perRoom} msgs of 64 B`,
    'msgs/s',
    true,
    { wshub: results.cluster, ws: results.single },
    {
      comparison:
        'wshub = through a 3-master Redis Cluster (SPUBLISH/SSUBSCRIBE), ws = through one redis-server',
    },
  );
  say(
    `scaleout — cross-node fan-out: publishers on node A, one subscriber per room on node B, ${roomCount} rooms; through one redis-server against a 3-master Redis Cluster with sharded pub/sub (median [min–max] of ${options.runs}; all on this ${cores}-core box, nothing pinned, the client in the bench process)`,
  );
  printTable(
    ['case', 'one Redis', 'Redis Cluster (3 masters)', 'ratio'],
    [[row.case, fmtStat(row.ws), row.wshub ? fmtStat(row.wshub) : 'n/a', ratioText(row)]],
  );
}

/**
 * Room history (issue 16): broadcast with --history-size against the same without, in the same run
 * (alternating), on one node (memory) and across two nodes (Redis Streams + the publish script
 * against plain pub/sub); then a resume of 10,000 missed messages (?since=EPOCH:0 over wshub.v1).
 * The load generator's subscribers are raw clients: the figures are the cost of storing and
 * sequencing every message, not of the v1 JSON frames (which a resume measures).
 */
async function historySection(): Promise<void> {
  let redis: RedisServer | undefined;
  try {
    redis = await RedisServer.start();
  } catch (error) {
    warnings.push(`history: Redis rows not measured: ${(error as Error).message}`);
  }
  const subscribers = options.quick ? 100 : 1000;
  const window = 16;
  const history = ['--history-size=10000'];
  const node = (logName: string, extra: string[]) =>
    startBenchServer('wshub', 'broadcast', {
      core: undefined,
      nofile: subscribers + 1024,
      wshubFlags: ['--mode=broadcast', ...extra],
      logName,
    });
  const lines: string[][] = [];
  const resumeLines: string[][] = [];
  const setups: Array<{ name: string; off: string[]; on: string[]; twoNodes: boolean }> = [
    { name: 'one node (memory)', off: [], on: history, twoNodes: false },
  ];
  if (redis) {
    const url = `--backplane=${redis.url}`;
    setups.push({ name: 'two nodes (Redis)', off: [url], on: [url, ...history], twoNodes: true });
  }
  try {
    for (const setup of setups) {
      const started = await Promise.all(
        setup.twoNodes
          ? [
              node('wshub-off-a', setup.off),
              node('wshub-off-b', setup.off),
              node('wshub-on-a', setup.on),
              node('wshub-on-b', setup.on),
            ]
          : [node('wshub-off', setup.off), node('wshub-on', setup.on)],
      );
      try {
        if (setup.twoNodes) for (const server of started) await waitForLog(server, /Backplane connected/);
        const [offSub, offPub, onSub, onPub] = setup.twoNodes
          ? [started[1], started[0], started[3], started[2]]
          : [started[0], started[0], started[1], started[1]];
        const results: { on: LoadgenResult[]; off: LoadgenResult[] } = { on: [], off: [] };
        for (let run = 0; run < options.runs; run++) {
          const order = run % 2 === 0 ? (['on', 'off'] as const) : (['off', 'on'] as const);
          for (const variant of order) {
            const [target, publisher] = (variant === 'on' ? [onSub, onPub] : [offSub, offPub]) as [
              BenchServer,
              BenchServer,
            ];
            const result = await fanoutThroughNodes(
              target,
              publisher,
              subscribers,
              window,
              `history ${setup.name} ${variant}`,
            );
            results[variant].push(result);
          }
        }
        const label = `${setup.name}, 1 → ${subscribers.toLocaleString('en-US')} subs, window ${window}`;
        const row = addRow(
          'history',
          label,
          'deliveries/s',
          true,
          { wshub: results.on.map((r) => r.per_s), ws: results.off.map((r) => r.per_s) },
          {
            comparison: 'wshub = --history-size=10000; ws = the same without history',
            p50_us: { on: medianOf(results.on, 'p50_us'), off: medianOf(results.off, 'p50_us') },
            p99_us: { on: medianOf(results.on, 'p99_us'), off: medianOf(results.off, 'p99_us') },
          },
        );
        lines.push([
          label,
          fmtStat(row.wshub),
          latencyOf(results.on),
          fmtStat(row.ws),
          latencyOf(results.off),
          ratioText(row),
        ]);
        // Resume: 10,000 messages published on the "on" setup, then a wshub.v1 client resumes from offset 0.
        const resumeMs: number[] = [];
        for (let run = 0; run < options.runs; run++) {
          resumeMs.push(await resumeTime(onPub as BenchServer, onSub as BenchServer, `resume${run}`, 10_000));
        }
        const resume = stat(resumeMs);
        resumeLines.push([
          setup.name,
          `${fmt(resume.median)} ms [${fmt(resume.min)}–${fmt(resume.max)}]`,
          fmt(10_000 / (resume.median / 1000)),
        ]);
        rows.push({
          section: 'history',
          case: `resume of 10,000 missed messages, ${setup.name}`,
          unit: 'ms',
          higherIsBetter: false,
          wshub: resume,
          ws: resume,
          ratio: undefined,
          extra: { messagesPerSecond: 10_000 / (resume.median / 1000) },
        });
      } finally {
        await Promise.all(started.map((server) => server.stop()));
      }
    }
  } finally {
    await redis?.stop();
  }
  say(
    `history — broadcast with --history-size=10000 against without, alternating in one run; 20 B messages, deliveries/s and publish-to-receive p50/p99 µs (median [min–max] of ${options.runs}; not pinned)`,
  );
  printTable(['case', 'history on', 'p50/p99 µs', 'history off', 'p50/p99 µs', 'ratio'], lines);
  say(
    'history — resume: a wshub.v1 client connects with ?since=EPOCH:0 after 10,000 messages (20 B) it missed; time from the upgrade request to the last replayed frame',
  );
  printTable(['setup', 'resume of 10,000', 'messages/s'], resumeLines);
}

/** Publishes `count` messages to a fresh room on `publisher`, then times a resume of all of them on `subscriber`. */
async function resumeTime(
  publisher: BenchServer,
  subscriber: BenchServer,
  room: string,
  count: number,
): Promise<number> {
  const { WebSocket } = await import('ws');
  const open = (url: string, protocol?: string): Promise<InstanceType<typeof WebSocket>> =>
    new Promise((resolve, reject) => {
      const ws = protocol ? new WebSocket(url, protocol) : new WebSocket(url);
      ws.once('open', () => resolve(ws));
      ws.once('error', reject);
    });
  const frames = (
    ws: InstanceType<typeof WebSocket>,
    until: (frame: { type: string; offset: number; epoch: string }) => boolean,
  ) =>
    new Promise<{ type: string; offset: number; epoch: string }>((resolve) => {
      ws.on('message', (data: Buffer) => {
        const frame = JSON.parse(data.toString()) as { type: string; offset: number; epoch: string };
        if (until(frame)) resolve(frame);
      });
    });
  // A v1 watcher on the publisher's node learns the epoch and when the last message is stored.
  const watcher = await open(`ws://127.0.0.1:${publisher.port}/ws/${room}`, 'wshub.v1');
  const stored = frames(watcher, (frame) => frame.type === 'message' && frame.offset === count);
  const sender = await open(`ws://127.0.0.1:${publisher.port}/ws/${room}`);
  const payload = Buffer.alloc(20, 0x61);
  for (let i = 0; i < count; i++) {
    sender.send(payload);
    if (i % 500 === 499) await sleep(5);
  }
  const last = await stored;
  sender.close();
  watcher.close();
  const started = performance.now();
  const resumed = await open(
    `ws://127.0.0.1:${subscriber.port}/ws/${room}?since=${last.epoch}:0`,
    'wshub.v1',
  );
  await frames(resumed, (frame) => frame.type === 'message' && frame.offset === count);
  const elapsed = performance.now() - started;
  resumed.close();
  return elapsed;
}

/**
 * Multi-core (issue 5): wshub --workers=2 against --workers=1 in the same run, alternating. Nothing
 * is pinned: the load generator, the primary and the workers share the machine's cores, so on a
 * 2-core box 2 workers compete with the client for the second core and cannot reach 2×.
 */
async function workersSection(): Promise<void> {
  const cases = [
    { label: 'echo 100 conns × 20 B', mode: 'echo' as const, args: ['echo', '-n', '100', '-s', '20'] },
    {
      label: 'broadcast 1 → 1,000 subs, window 1',
      mode: 'broadcast' as const,
      args: ['fanout', '-n', '1000', '-s', '20', '-W', '1'],
    },
    {
      label: 'broadcast 1 → 1,000 subs, window 16',
      mode: 'broadcast' as const,
      args: ['fanout', '-n', '1000', '-s', '20', '-W', '16'],
    },
  ];
  const lines: string[][] = [];
  for (const mode of ['echo', 'broadcast'] as const) {
    const start = (workers: number) =>
      startBenchServer('wshub', mode, {
        core: undefined,
        nofile: 4096,
        wshubFlags: [`--workers=${workers}`, ...(mode === 'broadcast' ? ['--mode=broadcast'] : [])],
        logName: `wshub-${mode}-workers-${workers}`,
        childrenCpu: true,
      });
    const servers = await Promise.all([start(1), start(2)]);
    const [one, two] = servers as [BenchServer, BenchServer];
    try {
      for (const { label, args } of cases.filter((c) => c.mode === mode)) {
        const results: { one: LoadgenResult[]; two: LoadgenResult[] } = { one: [], two: [] };
        const cpuUs: { one: number[]; two: number[] } = { one: [], two: [] };
        for (let run = 0; run < options.runs; run++) {
          const order = run % 2 === 0 ? (['two', 'one'] as const) : (['one', 'two'] as const);
          for (const variant of order) {
            const server = variant === 'one' ? one : two;
            const { result, cpuUsPerOp } = await runMeasuringServerCpu(
              server,
              [args[0] as string, ...commonArgs(server), ...args.slice(1)],
              undefined,
            );
            if (result.lost > 0 || result.dups > 0) {
              warnings.push(
                `workers ${label} (${variant === 'one' ? 1 : 2} workers): ${result.lost} lost, ${result.dups} duplicated`,
              );
            }
            if (cpuUsPerOp !== undefined) cpuUs[variant].push(cpuUsPerOp);
            results[variant].push(result);
          }
        }
        const row = addRow(
          'workers',
          label,
          mode === 'echo' ? 'msgs/s' : 'deliveries/s',
          true,
          { wshub: results.two.map((r) => r.per_s), ws: results.one.map((r) => r.per_s) },
          {
            comparison: 'wshub = --workers=2, ws = --workers=1 (both wshub; nothing pinned)',
            serverCpuUsPerOp: { workers2: median(cpuUs.two), workers1: median(cpuUs.one) },
            loadgenCpuPct: {
              workers2: results.two.map((r) => r.client_cpu_pct),
              workers1: results.one.map((r) => r.client_cpu_pct),
            },
          },
        );
        lines.push([
          label,
          fmtStat(row.ws),
          fmtStat(row.wshub),
          ratioText(row),
          `${fmt(median(cpuUs.one))} / ${fmt(median(cpuUs.two))}`,
          `${cpuOf(results.one)} / ${cpuOf(results.two)}`,
        ]);
      }
    } finally {
      await Promise.all(servers.map((server) => server.stop()));
    }
  }
  say(
    `workers — wshub --workers=1 against --workers=2, alternating (median [min–max] of ${options.runs}). Nothing pinned: the load generator shares the ${cores} cores with the server's processes, so the ratio is what ${cores} cores give with the client on them, not the server's scaling alone`,
  );
  printTable(
    [
      'case',
      '1 worker',
      '2 workers',
      'ratio 2/1',
      'server CPU µs/op 1 / 2 (all processes)',
      'loadgen CPU (max) 1 / 2',
    ],
    lines,
  );
}

/** The JSON report of `wshub bench --json` (src/bench/report.ts), the fields this section reads. */
interface WshubBenchReport {
  readonly connections: {
    readonly established: number;
    readonly http2: { readonly connections: number; readonly streamsPerConnection: number } | null;
  };
  readonly messages: { readonly received: number; readonly receivedPerSecond: number; readonly lost: number };
  readonly latencyMs: { readonly p50: number | null; readonly p99: number | null };
  readonly errors: number;
}

/** Runs `wshub bench` (the Node load generator: the C one speaks HTTP/1.1 only) against `server`; CPU of the server over the whole run. */
async function runWshubBench(
  server: BenchServer,
  args: string[],
): Promise<{ report: WshubBenchReport; cpuUsPerMessage: number | undefined }> {
  const cpuAtStart = server.cpuSeconds();
  const stdout = await new Promise<string>((resolve, reject) => {
    execFile(
      process.execPath,
      [`${ROOT}bin/wshub.js`, 'bench', `ws://127.0.0.1:${server.port}/ws`, '--json', ...args],
      { timeout: 120_000, maxBuffer: 16 * 1024 * 1024 },
      (error, out) => (error && out === '' ? reject(error) : resolve(out)),
    );
  });
  const cpuUsed = server.cpuSeconds() - cpuAtStart;
  const report = JSON.parse(stdout) as WshubBenchReport;
  const received = report.messages.received;
  return { report, cpuUsPerMessage: received > 0 ? (cpuUsed * 1e6) / received : undefined };
}

/**
 * Issue 17: WebSockets over HTTP/2 against HTTP/1.1 on the same wshub (--http2 serves both on one
 * port), alternating, the same Node load generator (`wshub bench`) for both: HTTP/1.1 = one TCP
 * connection per WebSocket, HTTP/2 = 100 WebSocket streams per connection.
 */
async function http2Section(): Promise<void> {
  const seconds = Math.max(2, options.seconds);
  const cases = [
    {
      label: 'echo 100 conns × 64 B, closed loop',
      mode: 'echo' as const,
      unit: 'msgs/s',
      args: ['--connections=100', '--size=64', '--workers=1'],
    },
    {
      label: 'broadcast 50 conns × 20 msg/s → 50 each',
      mode: 'broadcast' as const,
      unit: 'deliveries/s',
      args: ['--mode=broadcast', '--connections=50', '--rate=20', '--size=64', '--workers=1'],
    },
  ];
  const lines: string[][] = [];
  for (const mode of ['echo', 'broadcast'] as const) {
    const server = await startBenchServer('wshub', mode, {
      core: SERVER_CORE,
      nofile: 4096,
      wshubFlags: ['--http2', ...(mode === 'broadcast' ? ['--mode=broadcast'] : [])],
      logName: `wshub-${mode}-http2`,
    });
    try {
      for (const { label, unit, args } of cases.filter((c) => c.mode === mode)) {
        const runs: { h1: WshubBenchReport[]; h2: WshubBenchReport[] } = { h1: [], h2: [] };
        const cpuUs: { h1: number[]; h2: number[] } = { h1: [], h2: [] };
        for (let run = 0; run < options.runs; run++) {
          const order = run % 2 === 0 ? (['h2', 'h1'] as const) : (['h1', 'h2'] as const);
          for (const variant of order) {
            const { report, cpuUsPerMessage } = await runWshubBench(server, [
              ...args,
              `--duration=${seconds}s`,
              ...(variant === 'h2' ? ['--http2', '--streams-per-connection=100'] : []),
            ]);
            if (report.errors > 0) warnings.push(`http2 ${label} (${variant}): ${report.errors} errors`);
            runs[variant].push(report);
            if (cpuUsPerMessage !== undefined) cpuUs[variant].push(cpuUsPerMessage);
          }
        }
        const perSecond = (reports: WshubBenchReport[]): number[] =>
          reports.map((report) => report.messages.receivedPerSecond);
        const p = (reports: WshubBenchReport[], key: 'p50' | 'p99'): number =>
          median(reports.map((report) => (report.latencyMs[key] ?? 0) * 1000));
        const streams = runs.h2[0]?.connections.http2;
        const row = addRow(
          'http2',
          label,
          unit,
          true,
          { wshub: perSecond(runs.h2), ws: perSecond(runs.h1) },
          {
            comparison:
              'wshub = WebSockets over HTTP/2 (RFC 8441), ws = over HTTP/1.1; the same wshub --http2, the same load generator',
            http2: streams,
            serverCpuUsPerMessage: { http2: median(cpuUs.h2), http1: median(cpuUs.h1) },
            p50_us: { http2: p(runs.h2, 'p50'), http1: p(runs.h1, 'p50') },
            p99_us: { http2: p(runs.h2, 'p99'), http1: p(runs.h1, 'p99') },
          },
        );
        lines.push([
          label,
          fmtStat(row.ws),
          fmtStat(row.wshub as Stat),
          ratioText(row),
          `${fmt(median(cpuUs.h1))} / ${fmt(median(cpuUs.h2))}`,
          `${fmt(p(runs.h1, 'p50'))} / ${fmt(p(runs.h2, 'p50'))}`,
          streams ? `${streams.connections} × ${streams.streamsPerConnection}` : '–',
        ]);
      }
    } finally {
      await server.stop();
    }
  }
  say(
    `http2 — WebSockets over HTTP/1.1 against over HTTP/2 (RFC 8441) on the same wshub --http2, alternating (median [min–max] of ${options.runs}); load generator: wshub bench (Node), server CPU over the whole run incl. connecting`,
  );
  printTable(
    [
      'case',
      'HTTP/1.1',
      'HTTP/2',
      'ratio 2/1.1',
      'server CPU µs/msg 1.1 / 2',
      'p50 µs 1.1 / 2',
      'h2 connections × streams',
    ],
    lines,
  );
}

async function waitForLog(server: BenchServer, pattern: RegExp): Promise<void> {
  const deadline = Date.now() + 15_000;
  while (!pattern.test(readFileSync(server.logFile, 'utf8'))) {
    if (Date.now() > deadline) throw new Error(`${server.logFile}: no ${pattern} within 15 s`);
    await sleep(50);
  }
}

// --- main

const started = Date.now();
say(`wshub benchmark — ${conditions.date}`);
say(`machine: ${conditions.cpu}, ${cores} cores, Linux ${conditions.kernel}, Node ${conditions.node}`);
say(`pinning: ${conditions.pinning}`);
say(`bufferutil: ${conditions.bufferutil}`);
say(`load average at start: ${conditions.loadAverageAtStart.join(' ')}`);
if ((conditions.loadAverageAtStart[0] ?? 0) > 1.5) {
  warnings.push(
    `load average was ${conditions.loadAverageAtStart[0]} at start: other processes compete for the CPUs, figures are noisy`,
  );
}
say();

const want = (name: string): boolean => options.only === undefined || options.only.has(name);
try {
  if (want('echo')) await echoSection();
  if (want('broadcast')) await broadcastSection();
  if (want('memory')) await memorySection();
  if (want('connect')) await connectSection();
  if (want('backplane')) await backplaneSection();
  if (want('scaleout')) await scaleoutSection();
  if (want('workers')) await workersSection();
  if (want('history')) await historySection();
  if (want('http2')) await http2Section();
} catch (error) {
  process.stderr.write(`bench: ${(error as Error).message}\n`);
  process.exit(1);
}

conditions.loadAverageAtEnd = loadavg().map((n) => Number(n.toFixed(2)));
for (const warning of warnings) say(`WARNING: ${warning}`);
say(
  `done in ${((Date.now() - started) / 1000).toFixed(0)} s; load average at end: ${conditions.loadAverageAtEnd.join(' ')}`,
);

const document = { conditions, warnings, results: rows };
writeFileSync(`${RESULTS_DIR}/latest.json`, `${JSON.stringify(document, null, 2)}\n`);
if (options.json) process.stdout.write(`${JSON.stringify(document, null, 2)}\n`);
if (options.report) {
  writeSuiteReport(options.report, document);
  say(`HTML report written to ${options.report}`);
}
