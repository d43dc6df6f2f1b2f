import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
// The same /proc walk the --workers tests use to find the workers.
import { childPids } from '../test/helpers/processes.js';
import { pinned, RESULTS_DIR, ROOT } from './loadgen.js';

/**
 * Which server a measurement is about: wshub, the minimal `ws` baseline, or the C reference echo
 * server (bench/ceiling-server.c: what this machine allows any server, echo only).
 */
export type ServerName = 'wshub' | 'ws' | 'ceiling';
export const SERVER_MODES = ['echo', 'echo-deflate', 'broadcast', 'broadcast-deflate'] as const;
export type ServerMode = (typeof SERVER_MODES)[number];

export interface BenchServer {
  readonly name: ServerName;
  readonly port: number;
  readonly path: string;
  readonly pid: number;
  /** Where its stdout and stderr go. */
  readonly logFile: string;
  /** Resident set size of the server process in KiB (/proc/PID/status VmRSS). */
  rssKiB(): number;
  /** CPU time (user + system) the server process used so far, in seconds (/proc/PID/stat). */
  cpuSeconds(): number;
  /** Collects garbage in the server and reads its memory (only when started with `memoryProbe`). */
  probeMemory(): Promise<MemoryProbe>;
  stop(): Promise<void>;
}

export interface StartOptions {
  readonly core: number | undefined;
  /** File descriptors the server needs (connections + slack). */
  readonly nofile: number;
  /** Extra wshub flags (e.g. --mode=broadcast). */
  readonly wshubFlags?: readonly string[];
  /** Log file name under .bench-results/ when several servers of one kind run at once. */
  readonly logName?: string;
  /** The built C reference server (buildCeilingServer), needed to start `ceiling`. */
  readonly ceilingBinary?: string;
  /** Load bench/memory-probe.ts into the server (node --expose-gc --import), for probeMemory(). */
  readonly memoryProbe?: boolean;
  /** cpuSeconds() includes the server's child processes (the workers of wshub --workers). */
  readonly childrenCpu?: boolean;
}

/** What bench/memory-probe.ts prints after its garbage collections, in bytes. */
export interface MemoryProbe {
  /** False when the server could not collect garbage (no --expose-gc): figures without a GC. */
  readonly collected: boolean;
  /** Full collections it ran (until the young generation had shrunk, at most 4). */
  readonly rounds: number;
  readonly rss: number;
  readonly heapTotal: number;
  readonly heapUsed: number;
  readonly external: number;
  readonly arrayBuffers: number;
  readonly youngGeneration: number;
}

const PROBE_LINE = /^memory-probe (\{.*\})$/gm;

/**
 * Starts a server pinned to `core` with `ulimit -n` raised, logging to a file
 * under .bench-results/ (wshub keeps logging and metrics on, as in production).
 */
export async function startBenchServer(
  name: ServerName,
  mode: ServerMode,
  options: StartOptions,
): Promise<BenchServer> {
  const logFile = `${RESULTS_DIR}/${options.logName ?? `${name}-${mode}`}.log`;
  const [command, args] = serverCommand(name, mode, options);
  const ready = name === 'wshub' ? /Starting WebSocket server on \S+:(\d+)/ : /listening (\d+)/;
  const fd = openSync(logFile, 'w');
  // `ulimit -n` as root raises the hard limit too; otherwise take what the hard limit allows.
  const script = `ulimit -n ${options.nofile} 2>/dev/null || ulimit -n "$(ulimit -Hn)"; exec "$@"`;
  const child = spawn('sh', ['-c', script, 'sh', ...pinned(options.core, command, args)], {
    stdio: ['ignore', fd, fd],
  });
  closeSync(fd);
  const port = await waitForPort(child, logFile, ready);
  const pid = child.pid as number;
  return {
    name,
    port,
    path: '/ws',
    pid,
    logFile,
    rssKiB: () => readRssKiB(pid),
    cpuSeconds: () => (options.childrenCpu ? readTreeCpuSeconds(pid) : readCpuSeconds(pid)),
    async probeMemory() {
      const seen = probeLines(logFile).length;
      process.kill(pid, 'SIGUSR2');
      const deadline = Date.now() + 40_000;
      while (Date.now() < deadline) {
        const line = probeLines(logFile)[seen];
        if (line !== undefined) return JSON.parse(line) as MemoryProbe;
        if (child.exitCode !== null) break;
        await sleep(100);
      }
      throw new Error(`${name}: no memory-probe line in ${logFile} within 40 s`);
    },
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = once(child, 'exit');
      child.kill('SIGTERM');
      const killer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(killer);
    },
  };
}

function serverCommand(name: ServerName, mode: ServerMode, options: StartOptions): [string, string[]] {
  const nodeFlags = options.memoryProbe
    ? ['--expose-gc', `--import=${new URL('./memory-probe.js', import.meta.url).href}`]
    : [];
  if (name === 'wshub') {
    return [
      process.execPath,
      [
        ...nodeFlags,
        `${ROOT}bin/wshub.js`,
        '--host=127.0.0.1',
        '--port=0',
        '--metrics-port=0',
        '--metrics-host=127.0.0.1',
        ...(options.wshubFlags ?? []),
      ],
    ];
  }
  if (name === 'ws')
    return [process.execPath, [...nodeFlags, `${ROOT}dist/bench/baseline-server.js`, `--mode=${mode}`]];
  if (mode !== 'echo' || options.ceilingBinary === undefined) {
    throw new Error('the C reference server only echoes, without compression, and must be built first');
  }
  return [options.ceilingBinary, ['-H', '127.0.0.1', '-p', '0']];
}

async function waitForPort(child: ChildProcess, logFile: string, ready: RegExp): Promise<number> {
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    const match = ready.exec(readFileSync(logFile, 'utf8'));
    if (match) return Number(match[1]);
    if (child.exitCode !== null) break;
    await sleep(50);
  }
  child.kill('SIGKILL');
  throw new Error(`server did not start; its log (${logFile}):\n${readFileSync(logFile, 'utf8')}`);
}

function probeLines(logFile: string): string[] {
  return [...readFileSync(logFile, 'utf8').matchAll(PROBE_LINE)].map((match) => match[1] as string);
}

/** utime + stime of a process; /proc/PID/stat counts clock ticks (USER_HZ, 100 on Linux). */
export function readCpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name (which may contain spaces) start at state, field 3.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** CPU time of a process and its living children (the workers of wshub --workers live throughout a run). */
export function readTreeCpuSeconds(pid: number): number {
  let total = readCpuSeconds(pid);
  for (const child of childPids(pid)) {
    try {
      total += readCpuSeconds(child);
    } catch {
      // It exited while we looked.
    }
  }
  return total;
}

export function readRssKiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const match = /VmRSS:\s+(\d+) kB/.exec(status);
  if (!match) throw new Error(`no VmRSS in /proc/${pid}/status`);
  return Number(match[1]);
}

/** Whether this wshub build has the broadcast mode (it lists --mode in --help). */
export function wshubHasBroadcast(): boolean {
  const help = spawnSyncText(process.execPath, [`${ROOT}bin/wshub.js`, '--help']);
  return /--mode\b/.test(help) && /broadcast/.test(help);
}

function spawnSyncText(command: string, args: string[]): string {
  try {
    return execFileSync(command, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch {
    return '';
  }
}
