import { Worker } from 'node:worker_threads';
import { decodeFromCompressedBase64, type Histogram } from 'hdr-histogram-js';
import { redactAccessToken } from '../config/websocket-url.js';
import { createHistogram } from './load.js';
import type { BenchOptions } from './options.js';
import {
  emptyCounts,
  type MainMessage,
  type WorkerCounts,
  type WorkerMessage,
  type WorkerPlan,
  type WorkerResult,
} from './protocol.js';
import type { BenchReport, LatencyHistogram, Percentiles, TimelineSecond } from './report.js';

export interface RunHooks {
  /** Called about four times a second with the totals so far and the elapsed time. */
  readonly onProgress?: (counts: WorkerCounts, elapsedMs: number) => void;
}

export interface BenchRun {
  readonly done: Promise<BenchReport>;
  /** Ends early (Ctrl-C): workers stop sending, drain, close, and the report covers what was done. */
  stop(): void;
}

const WORKER_URL = new URL('./worker.js', import.meta.url);
/** Lead time so every worker receives the start message before the start. */
const START_DELAY_MS = 50;

/** Splits the load over worker threads (one event loop per core), then adds their results up. */
export function runBench(options: BenchOptions, hooks: RunHooks = {}): BenchRun {
  let startAt = Number.POSITIVE_INFINITY;
  const drainMs = Math.min(5000, Math.max(1000, options.connectTimeoutMs));
  const latest: WorkerCounts[] = [];
  const workers: Worker[] = [];
  const results: Array<Promise<WorkerResult>> = [];
  const ready: Array<Promise<void>> = [];
  for (let index = 0; index < options.workers; index++) {
    const connections =
      Math.floor(options.connections / options.workers) +
      (index < options.connections % options.workers ? 1 : 0);
    const plan: WorkerPlan = {
      url: options.url,
      token: options.token,
      insecure: options.insecure,
      mode: options.mode,
      connections,
      connectRate: (options.connectRate * connections) / options.connections,
      connectTimeoutMs: options.connectTimeoutMs,
      size: options.size,
      rate: options.rate,
      drainMs,
      http2: options.http2,
      streamsPerConnection: options.streamsPerConnection,
    };
    latest.push(emptyCounts());
    const worker = new Worker(WORKER_URL, { workerData: plan });
    workers.push(worker);
    let markReady = (): void => {};
    ready.push(new Promise((resolve) => (markReady = resolve)));
    results.push(
      new Promise((resolve, reject) => {
        worker.on('message', function onWorkerMessage(message: WorkerMessage) {
          if (message.type === 'ready') markReady();
          else if (message.type === 'progress') latest[index] = message.counts;
          else resolve(message.result);
        });
        worker.once('error', reject);
        worker.once('exit', (code) =>
          reject(new Error(`bench worker ${index} exited with ${code} before reporting`)),
        );
      }),
    );
  }
  void Promise.all(ready).then(() => {
    startAt = Date.now() + START_DELAY_MS;
    const start: MainMessage = { type: 'start', startAt, stopAt: startAt + options.durationMs };
    for (const worker of workers) worker.postMessage(start);
  });
  const progress = setInterval(() => {
    if (Date.now() >= startAt) hooks.onProgress?.(sumCounts(latest), Date.now() - startAt);
  }, 250);
  const done = Promise.all(results)
    .then((all) => buildReport(options, all, startAt))
    .finally(() => {
      clearInterval(progress);
      for (const worker of workers) void worker.terminate();
    });
  return {
    done,
    stop() {
      for (const worker of workers) worker.postMessage({ type: 'stop' });
    },
  };
}

export function sumCounts(all: readonly WorkerCounts[]): WorkerCounts {
  const total = emptyCounts();
  for (const counts of all) {
    for (const key of Object.keys(total) as Array<keyof WorkerCounts>) total[key] += counts[key];
  }
  return total;
}

function addUp(target: Record<string, number>, source: Readonly<Record<string, number>>): void {
  for (const [key, value] of Object.entries(source)) target[key] = (target[key] ?? 0) + value;
}

function merged(encoded: readonly string[]): Histogram {
  const histogram = createHistogram();
  for (const one of encoded) histogram.add(decodeFromCompressedBase64(one, 32, false));
  return histogram;
}

const ms = (us: number): number => Math.round(us) / 1000;

function percentiles(encoded: readonly string[]): Percentiles {
  const histogram = merged(encoded);
  const count = histogram.totalCount;
  return {
    count,
    p50: count ? ms(histogram.getValueAtPercentile(50)) : null,
    p90: count ? ms(histogram.getValueAtPercentile(90)) : null,
    p99: count ? ms(histogram.getValueAtPercentile(99)) : null,
    p99_9: count ? ms(histogram.getValueAtPercentile(99.9)) : null,
    max: count ? ms(histogram.maxValue) : null,
    mean: count ? Math.round(histogram.mean) / 1000 : null,
  };
}

/** Every worker's second i added up into second i + 1 of the report. */
function timelineOf(results: readonly WorkerResult[]): TimelineSecond[] {
  const length = Math.max(0, ...results.map((result) => result.timeline.length));
  const timeline: TimelineSecond[] = [];
  for (let i = 0; i < length; i++) {
    const samples = results.flatMap((result) => result.timeline[i] ?? []);
    const failedByReason: Record<string, number> = {};
    const closeCodes: Record<string, number> = {};
    for (const sample of samples) {
      addUp(failedByReason, sample.failedByReason);
      addUp(closeCodes, sample.closeCodes);
    }
    const latency = merged(samples.map((sample) => sample.latency));
    const count = latency.totalCount;
    const sum = (read: (sample: (typeof samples)[number]) => number): number =>
      samples.reduce((total, sample) => total + read(sample), 0);
    timeline.push({
      second: i + 1,
      open: sum((sample) => sample.open),
      sent: sum((sample) => sample.sent),
      received: sum((sample) => sample.received),
      bytesReceived: sum((sample) => sample.bytesReceived),
      latencyMs: {
        count,
        p50: count ? ms(latency.getValueAtPercentile(50)) : null,
        p90: count ? ms(latency.getValueAtPercentile(90)) : null,
        p99: count ? ms(latency.getValueAtPercentile(99)) : null,
        max: count ? ms(latency.maxValue) : null,
      },
      failedByReason,
      closeCodes,
      unexpectedCloses: sum((sample) => sample.unexpectedCloses),
    });
  }
  return timeline;
}

/** 1-2-5 steps from 10 µs to an hour: readable bounds on a log scale. */
const HISTOGRAM_BOUNDS_MS = Array.from(
  { length: 27 },
  (_, i) => ([1, 2, 5][i % 3] as number) * 10 ** (Math.floor(i / 3) - 2),
);

/** The run's latencies in HISTOGRAM_BOUNDS_MS buckets, without the empty ones at both ends. */
function histogramOf(encoded: readonly string[]): LatencyHistogram {
  const histogram = merged(encoded) as Histogram & {
    recordedValuesIterator: {
      reset(): void;
      hasNext(): boolean;
      next(): { valueIteratedTo: number; countAtValueIteratedTo: number };
    };
  };
  const counts = new Array<number>(HISTOGRAM_BOUNDS_MS.length + 1).fill(0);
  const values = histogram.recordedValuesIterator;
  values.reset();
  while (values.hasNext()) {
    const { valueIteratedTo, countAtValueIteratedTo } = values.next();
    // The same value percentiles report: the bucket's highest equivalent value, in ms.
    const valueMs = ms(valueIteratedTo);
    let at = 0;
    while (at < HISTOGRAM_BOUNDS_MS.length && valueMs > (HISTOGRAM_BOUNDS_MS[at] as number)) at++;
    counts[at] = (counts[at] as number) + countAtValueIteratedTo;
  }
  const first = counts.findIndex((count) => count > 0);
  if (first < 0) return { boundsMs: [], counts: [] };
  const last = counts.length - 1 - [...counts].reverse().findIndex((count) => count > 0);
  return {
    boundsMs: HISTOGRAM_BOUNDS_MS.slice(first, last + 1),
    counts: counts.slice(first, last + 1),
  };
}

export function buildReport(
  options: BenchOptions,
  results: readonly WorkerResult[],
  startAt = Number.NaN,
): BenchReport {
  const counts = sumCounts(results.map((result) => result.counts));
  const failedByReason: Record<string, number> = {};
  const closeCodes: Record<string, number> = {};
  let lost = 0;
  let lostOnUnexpectedClose = 0;
  let http2Connections = 0;
  let from = Number.POSITIVE_INFINITY;
  let until = 0;
  for (const result of results) {
    addUp(failedByReason, result.failedByReason);
    addUp(closeCodes, result.closeCodes);
    lost += result.lost;
    lostOnUnexpectedClose += result.lostOnUnexpectedClose;
    http2Connections += result.http2Connections;
    if (result.sendingFrom > 0) from = Math.min(from, result.sendingFrom);
    until = Math.max(until, result.sendingUntil);
  }
  const seconds = Number.isFinite(from) && until > from ? (until - from) / 1000 : 0;
  const perSecond = (n: number): number => (seconds > 0 ? Math.round((n / seconds) * 10) / 10 : 0);
  const cancelled = failedByReason.cancelled ?? 0;
  const errors = counts.failed - cancelled + counts.unexpectedCloses + lost + counts.sendErrors;
  const passed = counts.established > 0 && (options.maxErrors === undefined || errors <= options.maxErrors);
  return {
    url: redactAccessToken(options.url),
    mode: options.mode,
    workers: options.workers,
    startedAt: Number.isFinite(startAt) ? new Date(startAt).toISOString() : null,
    connectRate: options.connectRate,
    connectTimeoutMs: options.connectTimeoutMs,
    durationSeconds: Math.round(seconds * 1000) / 1000,
    messageSize: options.size,
    ratePerConnection: options.rate,
    connections: {
      target: options.connections,
      established: counts.established,
      failed: counts.failed,
      failedByReason,
      unexpectedCloses: counts.unexpectedCloses,
      connectMs: percentiles(results.map((result) => result.connectLatency)),
      http2: options.http2
        ? {
            connections: http2Connections,
            streamsPerConnection:
              http2Connections === 0 ? 0 : Math.round((counts.established / http2Connections) * 10) / 10,
          }
        : null,
    },
    messages: {
      sent: counts.sent,
      received: counts.received,
      lost: lost + lostOnUnexpectedClose,
      sendErrors: counts.sendErrors,
      bytesSent: counts.bytesSent,
      bytesReceived: counts.bytesReceived,
      sentPerSecond: perSecond(counts.sent),
      receivedPerSecond: perSecond(counts.received),
      receivedBytesPerSecond: Math.round(perSecond(counts.bytesReceived)),
    },
    latencyMs: percentiles(results.map((result) => result.latency)),
    closeCodes,
    errors,
    maxErrors: options.maxErrors ?? null,
    passed,
    timeline: timelineOf(results),
    latencyHistogram: histogramOf(results.map((result) => result.latency)),
  };
}
