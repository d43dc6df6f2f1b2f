import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { type AppDependencies, type RunningApp, start } from '../../src/app.js';
import { loadConfig } from '../../src/config/load.js';
import type { Logger } from '../../src/log.js';
import { installReceiverReentryCheck } from '../../src/transport/ws-adapter.js';

export const BIN = fileURLToPath(new URL('../../../bin/wshub.js', import.meta.url));
/** Preloaded into spawned servers: re-entry into a ws receiver's parse loop throws (tests only). */
const REENTRY_CHECK = new URL('./reentry-check.js', import.meta.url).href;

/** Collects log lines and lets a test wait for one. */
export class LineLog {
  readonly lines: string[] = [];
  private waiters: Array<{ pattern: RegExp; resolve: (line: string) => void }> = [];

  push(line: string): void {
    this.lines.push(line);
    this.waiters = this.waiters.filter((waiter) => {
      if (!waiter.pattern.test(line)) return true;
      waiter.resolve(line);
      return false;
    });
  }

  /** Resolves with the first line (already seen from line `fromLine` on, or future) matching `pattern`. */
  waitFor(pattern: RegExp, timeoutMs = 10_000, fromLine = 0): Promise<string> {
    const seen = this.lines.slice(fromLine).find((line) => pattern.test(line));
    if (seen !== undefined) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(
          new Error(
            `timed out after ${timeoutMs}ms waiting for ${pattern}; log so far:\n${this.lines.join('\n')}`,
          ),
        );
      }, timeoutMs);
      this.waiters.push({
        pattern,
        resolve: (line) => {
          clearTimeout(timer);
          resolve(line);
        },
      });
    });
  }

  count(pattern: RegExp): number {
    return this.lines.filter((line) => pattern.test(line)).length;
  }
}

export interface InProcessServer {
  readonly app: RunningApp;
  readonly log: LineLog;
  readonly url: string;
  readonly metricsUrl: string;
}

/** Starts the real app in this process on ephemeral ports, with flags as a user would pass them. */
export async function startServer(
  flags: string[] = [],
  dependencies: Omit<AppDependencies, 'logger'> = {},
): Promise<InProcessServer> {
  installReceiverReentryCheck();
  const { config } = loadConfig(['--host=127.0.0.1', '--port=0', '--metrics-port=0', ...flags], {});
  const log = new LineLog();
  const record = (message: string): void => log.push(message);
  const logger: Logger = { info: record, warn: record, error: record };
  const app = await start(config, { ...dependencies, logger });
  return {
    app,
    log,
    url: `ws://127.0.0.1:${app.port}/ws`,
    metricsUrl: `http://127.0.0.1:${app.metricsPort}`,
  };
}

export interface SpawnedServer {
  readonly child: ChildProcess;
  readonly stdout: LineLog;
  readonly stderr: LineLog;
  readonly port: number;
  readonly metricsPort: number | undefined;
  readonly url: string;
  readonly metricsUrl: string;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  kill(signal?: NodeJS.Signals): void;
}

export interface SpawnResult {
  readonly child: ChildProcess;
  readonly stdout: LineLog;
  readonly stderr: LineLog;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/**
 * Servers a test file started and did not stop: killed when the test process exits, so a test
 * that failed or timed out does not leave a server running (they piled up on loaded machines).
 */
const liveChildren = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of liveChildren) child.kill('SIGKILL');
});

/** Runs the wshub binary as a user would, capturing its output line by line. */
export function runWshub(
  args: string[],
  env: Record<string, string> = {},
  options: { stdin?: 'ignore' | 'pipe' } = {},
): SpawnResult {
  const child = spawn(process.execPath, ['--import', REENTRY_CHECK, BIN, ...args], {
    env: { PATH: process.env.PATH ?? '', TZ: process.env.TZ ?? '', ...env },
    stdio: [options.stdin ?? 'ignore', 'pipe', 'pipe'],
  });
  liveChildren.add(child);
  child.once('exit', () => liveChildren.delete(child));
  const stdout = new LineLog();
  const stderr = new LineLog();
  pipeLines(child.stdout, stdout);
  pipeLines(child.stderr, stderr);
  const exited = once(child, 'exit').then(([code, signal]) => ({
    code: code as number | null,
    signal: signal as NodeJS.Signals | null,
  }));
  return { child, stdout, stderr, exited };
}

/** Spawns a server on ephemeral ports and waits until both listeners are up. */
export async function spawnServer(
  args: string[] = [],
  env: Record<string, string> = {},
): Promise<SpawnedServer> {
  const run = runWshub(['--host=127.0.0.1', '--port=0', '--metrics-port=0', ...args], env);
  const failed = run.exited.then(({ code }) => {
    throw new Error(`wshub exited with ${code} before it was ready:\n${run.stderr.lines.join('\n')}`);
  });
  let port: number;
  let metricsPort: number | undefined;
  try {
    const started = await Promise.race([
      run.stdout.waitFor(/Starting WebSocket server on \S+:(\d+)$/),
      failed,
    ]);
    port = Number(/:(\d+)$/.exec(started)?.[1]);
    if (!args.includes('--no-metrics')) {
      const metricsLine = await Promise.race([
        run.stdout.waitFor(/Starting metrics server on \S*:(\d+)$/),
        failed,
      ]);
      metricsPort = Number(/:(\d+)$/.exec(metricsLine)?.[1]);
    }
  } catch (error) {
    run.child.kill('SIGKILL');
    throw error;
  } finally {
    failed.catch(() => {});
  }
  return {
    ...run,
    port,
    metricsPort,
    url: `ws://127.0.0.1:${port}/ws`,
    metricsUrl: `http://127.0.0.1:${metricsPort}`,
    kill: (signal = 'SIGTERM') => run.child.kill(signal),
  };
}

function pipeLines(stream: NodeJS.ReadableStream | null, log: LineLog): void {
  if (!stream) return;
  let buffered = '';
  stream.setEncoding('utf8');
  stream.on('data', (chunk: string) => {
    buffered += chunk;
    let newline = buffered.indexOf('\n');
    while (newline !== -1) {
      log.push(buffered.slice(0, newline));
      buffered = buffered.slice(newline + 1);
      newline = buffered.indexOf('\n');
    }
  });
  stream.on('end', () => {
    if (buffered !== '') log.push(buffered);
  });
}
