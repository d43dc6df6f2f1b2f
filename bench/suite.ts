import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { cpus, loadavg, release } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { type LoadgenResult, runLoadgen } from './loadgen.js';
import type { SuiteOptions } from './options.js';
import type { BenchServer, ServerName } from './servers.js';

/**
 * What every section of `npm run bench` shares: the run's options, the machine (cores, pinning),
 * the rows and warnings collected so far, and the measuring helpers (alternate servers, one table
 * row, the tables). A `Suite` is made by the runner (bench/run.ts) and handed to each section;
 * nothing here runs when the module is imported.
 */

export interface Stat {
  readonly median: number;
  readonly min: number;
  readonly max: number;
  readonly values: number[];
}

export interface Row {
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

/** One section of the suite (bench/sections/): `--only=<name>` selects it. */
export interface Section {
  readonly name: string;
  run(suite: Suite): Promise<void>;
}

/** Above this share of a core, the load generator may be what limits a figure (issue 5). */
export const LOADGEN_SATURATED_PCT = 80;

export function stat(values: number[]): Stat {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  const median =
    sorted.length % 2 === 1
      ? (sorted[mid] as number)
      : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
  return { median, min: sorted[0] as number, max: sorted[sorted.length - 1] as number, values };
}

export const fmt = (n: number): string =>
  n >= 100 ? Math.round(n).toLocaleString('en-US') : n.toFixed(n >= 10 ? 1 : 2);
export const fmtStat = (s: Stat | undefined): string =>
  s === undefined
    ? 'n/a'
    : s.values.length > 1
      ? `${fmt(s.median)} [${fmt(s.min)}–${fmt(s.max)}]`
      : fmt(s.median);

export type PerServer<T> = Record<ServerName, T>;
export const noValues = <T>(): PerServer<T[]> => ({ wshub: [], ws: [], ceiling: [] });

export const ratioText = (row: Row): string => (row.ratio === undefined ? 'n/a' : `${row.ratio.toFixed(2)}×`);
export const median = (values: number[]): number => stat(values).median;
export const medianOf = (results: LoadgenResult[], key: 'p50_us' | 'p99_us'): number | undefined =>
  results.length ? median(results.map((r) => r[key])) : undefined;
export const cpuOf = (results: LoadgenResult[]): string =>
  results.length ? `${Math.max(...results.map((r) => r.client_cpu_pct)).toFixed(0)}%` : '–';
export const usPerOp = (values: PerServer<number[]>): string =>
  `${values.wshub.length ? fmt(median(values.wshub)) : '–'} / ${values.ws.length ? fmt(median(values.ws)) : '–'}`;
export const latencyOf = (results: LoadgenResult[]): string =>
  results.length
    ? `${fmt(medianOf(results, 'p50_us') ?? 0)} / ${fmt(medianOf(results, 'p99_us') ?? 0)}`
    : 'n/a';

/**
 * Runs `measure` for each server alternately, `runs` times each: wshub, ws (, C reference) on odd
 * runs, the reverse order on even runs.
 */
export async function alternate<T>(
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

/** Starts the servers, runs `body`, stops them whatever happens. */
export async function withServers<T>(
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

export async function waitForLog(server: BenchServer, pattern: RegExp): Promise<void> {
  const deadline = Date.now() + 15_000;
  while (!pattern.test(readFileSync(server.logFile, 'utf8'))) {
    if (Date.now() > deadline) throw new Error(`${server.logFile}: no ${pattern} within 15 s`);
    await sleep(50);
  }
}

/** The machine the suite runs on, and where the server and the load generator are pinned. */
export interface Machine {
  readonly cores: number;
  readonly pinning: boolean;
  readonly serverCore: number | undefined;
  readonly clientCore: number | undefined;
}

export function detectMachine(): Machine {
  const cores = cpus().length;
  let hasTaskset = false;
  try {
    execFileSync('taskset', ['-c', '0', 'true'], { stdio: 'ignore' });
    hasTaskset = true;
  } catch {
    hasTaskset = false;
  }
  const pinning = cores >= 2 && hasTaskset;
  return { cores, pinning, serverCore: pinning ? 0 : undefined, clientCore: pinning ? 1 : undefined };
}

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

/** The run's conditions, as the report's `conditions` (load average at end filled in by the runner). */
export function runConditions(machine: Machine, options: SuiteOptions) {
  return {
    date: new Date().toISOString(),
    cpu: cpus()[0]?.model ?? 'unknown',
    cores: machine.cores,
    kernel: release(),
    node: process.version,
    pinning: machine.pinning
      ? `server on core ${machine.serverCore}, load generator on core ${machine.clientCore} (taskset)`
      : 'none (fewer than 2 cores or no taskset): server and load generator share the CPUs',
    bufferutil: bufferutilStatus(),
    loadAverageAtStart: loadavg().map((n) => Number(n.toFixed(2))),
    loadAverageAtEnd: [] as number[],
    runs: options.runs,
    secondsPerRun: options.seconds,
    quick: options.quick,
  };
}

export class Suite {
  readonly rows: Row[] = [];
  readonly warnings: string[] = [];
  readonly cores: number;
  readonly SERVER_CORE: number | undefined;
  readonly CLIENT_CORE: number | undefined;

  constructor(
    readonly options: SuiteOptions,
    machine: Machine,
    /** The built load generator (bench/loadgen.c). */
    readonly loadgen: string,
  ) {
    this.cores = machine.cores;
    this.SERVER_CORE = machine.serverCore;
    this.CLIENT_CORE = machine.clientCore;
  }

  // With --json the human-readable report goes to stderr and stdout carries only the JSON document.
  readonly say = (line = ''): void => {
    (this.options.json ? process.stderr : process.stdout).write(`${line}\n`);
  };

  readonly addRow = (
    section: string,
    label: string,
    unit: string,
    higherIsBetter: boolean,
    values: { wshub: number[]; ws: number[]; ceiling?: number[] },
    extra: Record<string, unknown> = {},
  ): Row => {
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
    this.rows.push(row);
    return row;
  };

  /**
   * Runs the load generator once against `server`; `cpuUsPerOp` is the server's CPU time (user +
   * system, /proc) over the client's measured window, per operation (undefined when none completed).
   */
  readonly runMeasuringServerCpu = async (
    server: BenchServer,
    args: string[],
    core: number | undefined,
  ): Promise<{ result: LoadgenResult; cpuUsPerOp: number | undefined }> => {
    let cpuAtStart = 0;
    let cpuUsed = 0;
    const result = await runLoadgen({
      binary: this.loadgen,
      core,
      timeoutMs: 120_000,
      args,
      onMarker(marker) {
        if (marker === 'measure-start') cpuAtStart = server.cpuSeconds();
        else cpuUsed = server.cpuSeconds() - cpuAtStart;
      },
    });
    return { result, cpuUsPerOp: result.count > 0 ? (cpuUsed * 1e6) / result.count : undefined };
  };

  /** One table row: runs the load generator against both servers alternately and records the figures. */
  readonly measureCase = async (
    section: string,
    label: string,
    unit: string,
    servers: Partial<PerServer<BenchServer>>,
    args: (server: BenchServer) => string[],
  ): Promise<{ row: Row; results: PerServer<LoadgenResult[]>; serverCpuUs: PerServer<number[]> }> => {
    const serverCpuUs = noValues<number>();
    const results = await alternate(this.options.runs, servers, async (server) => {
      const { result, cpuUsPerOp } = await this.runMeasuringServerCpu(server, args(server), this.CLIENT_CORE);
      if (cpuUsPerOp !== undefined) serverCpuUs[server.name].push(cpuUsPerOp);
      if (result.client_cpu_pct > LOADGEN_SATURATED_PCT) {
        this.warnings.push(
          server.name === 'ceiling'
            ? `${section} ${label} (C reference): load generator at ${result.client_cpu_pct.toFixed(0)}% of a core — the client, not the server, limits this figure: the machine's ceiling is higher`
            : `${section} ${label} (${server.name}): load generator at ${result.client_cpu_pct.toFixed(0)}% of a core — it may be the bottleneck`,
        );
      }
      return result;
    });
    const row = this.addRow(
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
  };

  readonly commonArgs = (server: BenchServer): string[] => [
    '-p',
    String(server.port),
    '-P',
    server.path,
    '-d',
    String(this.options.seconds),
    '-w',
    String(this.options.warmup),
  ];

  readonly printTable = (headers: string[], lines: string[][]): void => {
    const widths = headers.map((h, i) => Math.max(h.length, ...lines.map((line) => (line[i] ?? '').length)));
    const render = (cells: string[]): string =>
      cells
        .map((cell, i) => (i === 0 ? cell.padEnd(widths[i] ?? 0) : cell.padStart(widths[i] ?? 0)))
        .join('  ');
    this.say(render(headers));
    for (const line of lines) this.say(render(line));
    this.say();
  };

  /** One fan-out run of 20 B messages: subscribers on `target`, the publisher on `publisher` (the same node or another). */
  readonly fanoutThroughNodes = async (
    target: BenchServer,
    publisher: BenchServer,
    subscribers: number,
    window: number,
    what: string,
  ): Promise<LoadgenResult> => {
    const result = await runLoadgen({
      binary: this.loadgen,
      core: this.CLIENT_CORE,
      timeoutMs: 120_000,
      args: [
        'fanout',
        ...this.commonArgs(target),
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
      this.warnings.push(`${what}: ${result.lost} lost, ${result.dups} duplicated`);
    }
    return result;
  };
}
