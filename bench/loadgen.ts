import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** Repository root (this file runs from dist/bench/). */
export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const RESULTS_DIR = `${ROOT}.bench-results`;

/** Builds bench/loadgen.c with the system C compiler (only when the source is newer). Returns the binary path. */
export function buildLoadgen(outDir = RESULTS_DIR): string {
  return buildC('loadgen', 'the benchmark client', outDir);
}

/** Builds bench/ceiling-server.c, the C reference echo server (bench/README.md). Returns the binary path. */
export function buildCeilingServer(outDir = RESULTS_DIR): string {
  return buildC('ceiling-server', 'the C reference server', outDir);
}

function buildC(name: string, what: string, outDir: string): string {
  const source = `${ROOT}bench/${name}.c`;
  mkdirSync(outDir, { recursive: true });
  const binary = `${outDir}/${name}`;
  let fresh = false;
  try {
    fresh = statSync(binary).mtimeMs >= statSync(source).mtimeMs;
  } catch {
    fresh = false;
  }
  if (fresh) return binary;
  try {
    execFileSync('cc', ['-O2', '-Wall', '-o', binary, source], { stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (error) {
    const { code, stderr } = error as { code?: string; stderr?: Buffer };
    if (code === 'ENOENT') {
      throw new Error(`${what} needs a C compiler: install the Debian packages gcc and libc6-dev`);
    }
    throw new Error(`building bench/${name}.c failed:\n${stderr?.toString() ?? String(error)}`);
  }
  return binary;
}

export interface LoadgenResult {
  readonly mode: string;
  readonly conns: number;
  readonly size: number;
  readonly window: number;
  readonly seconds: number;
  readonly count: number;
  readonly per_s: number;
  readonly p50_us: number;
  readonly p99_us: number;
  readonly client_cpu_pct: number;
  readonly lost: number;
  readonly dups: number;
  readonly self_copies: number;
  readonly failed: number;
  readonly unclean_close: number;
  /** Connections whose 101 response accepted permessage-deflate (with -z 1). */
  readonly deflate_conns?: number;
  /** hold mode only */
  readonly established?: number;
}

export interface LoadgenRun {
  readonly binary: string;
  readonly args: readonly string[];
  /** CPU core to pin the client to (taskset), or undefined for no pinning. */
  readonly core?: number | undefined;
  /** Hard limit for the whole run; the client has its own deadlines, this only guards against bugs. */
  readonly timeoutMs: number;
  /** Called when the client prints `measure-start` / `measure-end` (the measured window's bounds). */
  readonly onMarker?: (marker: 'measure-start' | 'measure-end') => void;
}

/** Builds the command line, with `taskset -c CORE` in front when pinning. */
export function pinned(core: number | undefined, command: string, args: readonly string[]): string[] {
  return core === undefined ? [command, ...args] : ['taskset', '-c', String(core), command, ...args];
}

export interface SpawnedLoadgen {
  readonly child: ChildProcess;
  readonly exited: Promise<unknown>;
  stdout(): string;
  stderr(): string;
}

/** Starts the client (pinned when asked) and collects its output; SIGKILLs it after `timeoutMs`. */
export function spawnLoadgen(run: LoadgenRun): SpawnedLoadgen {
  const [command, ...args] = pinned(run.core, run.binary, run.args) as [string, ...string[]];
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    stdout += chunk;
    if (run.onMarker === undefined) return;
    for (const marker of ['measure-start', 'measure-end'] as const) {
      if (chunk.includes(`${marker}\n`)) run.onMarker(marker);
    }
  });
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk;
  });
  const timer = setTimeout(() => child.kill('SIGKILL'), run.timeoutMs);
  const exited = once(child, 'exit').finally(() => clearTimeout(timer));
  return { child, exited, stdout: () => stdout, stderr: () => stderr };
}

/** Runs one measuring client to completion and parses its result line. */
export async function runLoadgen(run: LoadgenRun): Promise<LoadgenResult> {
  const loadgen = spawnLoadgen(run);
  const [code] = (await loadgen.exited) as [number | null];
  const line = loadgen.stdout().trim().split('\n').pop() ?? '';
  if (code !== 0 || !line.startsWith('{')) {
    throw new Error(
      `loadgen ${run.args.join(' ')} failed (exit ${code}): ${loadgen.stderr().trim() || loadgen.stdout().trim()}`,
    );
  }
  return JSON.parse(line) as LoadgenResult;
}
