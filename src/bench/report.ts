import type { BenchMode } from './options.js';
import type { WorkerCounts } from './protocol.js';

export interface Percentiles {
  readonly count: number;
  readonly p50: number | null;
  readonly p90: number | null;
  readonly p99: number | null;
  readonly p99_9: number | null;
  readonly max: number | null;
  readonly mean: number | null;
}

/** One second of the run, all worker threads together (issue 19). */
export interface TimelineSecond {
  /** The end of this second, in seconds since the start (1, 2, …; the last one may be shorter). */
  readonly second: number;
  /** Connections open at its end. */
  readonly open: number;
  readonly sent: number;
  readonly received: number;
  readonly bytesReceived: number;
  /** Latencies of the messages received in this second. */
  readonly latencyMs: Omit<Percentiles, 'p99_9' | 'mean'>;
  readonly failedByReason: Readonly<Record<string, number>>;
  readonly closeCodes: Readonly<Record<string, number>>;
  readonly unexpectedCloses: number;
}

/** The run's latencies in buckets: counts[i] samples above boundsMs[i - 1] and at most boundsMs[i]. */
export interface LatencyHistogram {
  readonly boundsMs: readonly number[];
  readonly counts: readonly number[];
}

/** The final report; `--json` prints exactly this object, `--report=FILE.html` draws it. */
export interface BenchReport {
  readonly url: string;
  readonly mode: BenchMode;
  readonly workers: number;
  /** When sending started (ISO 8601), null when the run never started. */
  readonly startedAt: string | null;
  readonly connectRate: number;
  readonly connectTimeoutMs: number;
  /** From the first message sent to the end of sending. */
  readonly durationSeconds: number;
  readonly messageSize: number;
  readonly ratePerConnection: number;
  readonly connections: {
    readonly target: number;
    readonly established: number;
    readonly failed: number;
    /** refused, timeout, http_NNN, reset, dns, unreachable, tls, cancelled (still connecting at the end), other. */
    readonly failedByReason: Readonly<Record<string, number>>;
    /** Connections the server (or something in between) closed before the bench did. */
    readonly unexpectedCloses: number;
    readonly connectMs: Percentiles;
    /** --http2: the HTTP/2 connections opened and how many established WebSocket streams each carried on average; null without --http2. */
    readonly http2: { readonly connections: number; readonly streamsPerConnection: number } | null;
  };
  readonly messages: {
    readonly sent: number;
    readonly received: number;
    /** Echo mode: messages whose echo never arrived (including those in flight when a connection was closed on the bench). */
    readonly lost: number;
    readonly sendErrors: number;
    readonly bytesSent: number;
    readonly bytesReceived: number;
    readonly sentPerSecond: number;
    readonly receivedPerSecond: number;
    readonly receivedBytesPerSecond: number;
  };
  /** Send to receive, per stamped message received. */
  readonly latencyMs: Percentiles;
  /** Close code → how many connections ended with it. */
  readonly closeCodes: Readonly<Record<string, number>>;
  /**
   * Failed connections (not counting cancelled) + unexpected closes + messages lost on
   * connections that stayed open + send errors (an unexpected close counts once, not again
   * for the messages it took with it).
   */
  readonly errors: number;
  readonly maxErrors: number | null;
  /** False when errors exceed --max-errors or no connection was established: exit status 1. */
  readonly passed: boolean;
  /** Second by second, from the start to the end of the drain: throughput, latency, failures, closes. */
  readonly timeline: readonly TimelineSecond[];
  readonly latencyHistogram: LatencyHistogram;
}

const number = (n: number): string => n.toLocaleString('en-US');
const ms = (value: number | null): string => (value === null ? '-' : `${value.toFixed(3)} ms`);

function bytesPerSecond(value: number): string {
  if (value >= 1024 * 1024) return `${(value / (1024 * 1024)).toFixed(1)} MiB/s`;
  if (value >= 1024) return `${(value / 1024).toFixed(1)} KiB/s`;
  return `${value} B/s`;
}

function percentileLine(p: Percentiles): string {
  if (p.count === 0) return 'no samples';
  return `p50 ${ms(p.p50)}  p90 ${ms(p.p90)}  p99 ${ms(p.p99)}  p99.9 ${ms(p.p99_9)}  max ${ms(p.max)}  (${number(p.count)} samples)`;
}

export function formatReport(report: BenchReport): string {
  const { connections, messages } = report;
  const loop =
    report.ratePerConnection === 0 ? 'closed loop' : `${number(report.ratePerConnection)} msg/s each`;
  const failures = Object.entries(connections.failedByReason)
    .sort(([, a], [, b]) => b - a)
    .map(([reason, count]) => `${reason.replace(/^http_/, 'HTTP ')}: ${number(count)}`)
    .join(', ');
  const codes = Object.entries(report.closeCodes)
    .map(([code, count]) => `${code}: ${number(count)}`)
    .join(', ');
  const budget =
    report.maxErrors === null
      ? 'no --max-errors budget'
      : `${report.errors > report.maxErrors ? 'EXCEEDS' : 'within'} --max-errors=${report.maxErrors}`;
  const lines = [
    `wshub bench ${report.url}`,
    `  ${report.mode}, ${number(connections.target)} connections, ${loop}, ${number(report.messageSize)}-byte messages, ${report.workers} worker${report.workers === 1 ? '' : 's'}`,
    '',
    `connections   ${number(connections.established)} established, ${number(connections.failed)} failed${failures ? ` (${failures})` : ''}, ${number(connections.unexpectedCloses)} closed unexpectedly`,
    ...(connections.http2 === null
      ? []
      : [
          `http/2        ${number(connections.http2.connections)} connection${connections.http2.connections === 1 ? '' : 's'}, ${connections.http2.streamsPerConnection} WebSocket streams per connection`,
        ]),
    `connect time  ${percentileLine(connections.connectMs)}`,
    `messages      ${number(messages.sent)} sent, ${number(messages.received)} received${report.mode === 'echo' ? `, ${number(messages.lost)} lost` : ''}${messages.sendErrors ? `, ${number(messages.sendErrors)} send errors` : ''}`,
    `throughput    ${number(messages.sentPerSecond)} msg/s sent, ${number(messages.receivedPerSecond)} msg/s received, ${bytesPerSecond(messages.receivedBytesPerSecond)} over ${report.durationSeconds}s`,
    `latency       ${percentileLine(report.latencyMs)}`,
    `close codes   ${codes || 'none'}`,
    `errors        ${number(report.errors)} (${budget})${report.passed ? '' : connections.established === 0 ? ': FAILED, no connection established' : ': FAILED'}`,
    '',
  ];
  return lines.join('\n');
}

/** The live line shown on a terminal while the bench runs. */
export function formatProgress(counts: WorkerCounts, elapsedMs: number, durationMs: number): string {
  const elapsed = Math.min(elapsedMs, durationMs) / 1000;
  return (
    `${elapsed.toFixed(1)}s/${(durationMs / 1000).toFixed(0)}s  ` +
    `connections ${number(counts.open)} open, ${number(counts.failed)} failed  ` +
    `messages ${number(counts.sent)} sent, ${number(counts.received)} received  ` +
    `errors ${number(counts.failed + counts.unexpectedCloses + counts.sendErrors)}`
  );
}
