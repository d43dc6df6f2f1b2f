import type { BenchMode } from './options.js';

/** What the main thread tells one worker to do (workerData). */
export interface WorkerPlan {
  readonly url: string;
  /** Authorization: Bearer on every connection; '' for none. */
  readonly token: string;
  readonly insecure: boolean;
  readonly mode: BenchMode;
  /** Connections this worker opens. */
  readonly connections: number;
  /** This worker's share of the connect rate, per second. */
  readonly connectRate: number;
  readonly connectTimeoutMs: number;
  readonly size: number;
  readonly rate: number;
  /** How long to wait for replies still in flight once sending stops. */
  readonly drainMs: number;
  readonly http2: boolean;
  readonly streamsPerConnection: number;
}

/** Running totals a worker reports a few times a second. */
export interface WorkerCounts {
  established: number;
  /** Connections open right now. */
  open: number;
  failed: number;
  sent: number;
  received: number;
  bytesSent: number;
  bytesReceived: number;
  unexpectedCloses: number;
  sendErrors: number;
}

/** One second of one worker's run (issue 19: the report's charts over time). */
export interface SecondSample {
  /** Connections open at the end of the second. */
  readonly open: number;
  readonly sent: number;
  readonly received: number;
  readonly bytesReceived: number;
  /** Connections that failed in this second, by reason. */
  readonly failedByReason: Readonly<Record<string, number>>;
  /** Connections that ended in this second, by close code. */
  readonly closeCodes: Readonly<Record<string, number>>;
  readonly unexpectedCloses: number;
  /** HDR histogram (µs) of the latencies recorded in this second, compressed base64. */
  readonly latency: string;
}

export interface WorkerResult {
  readonly counts: WorkerCounts;
  readonly failedByReason: Readonly<Record<string, number>>;
  readonly closeCodes: Readonly<Record<string, number>>;
  /** Echo mode: messages whose echo never came back, on connections the bench closed itself. */
  readonly lost: number;
  /** ... and on connections closed by the other side (already counted as unexpected closes). */
  readonly lostOnUnexpectedClose: number;
  /** HDR histograms (µs), compressed base64, so they can be added up exactly. */
  readonly latency: string;
  readonly connectLatency: string;
  /** When this worker's first message was sent and its sending stopped (epoch ms). */
  readonly sendingFrom: number;
  readonly sendingUntil: number;
  /** Second i covers [startAt + i s, startAt + (i + 1) s); the last one ends with the run. */
  readonly timeline: readonly SecondSample[];
  /** --http2: HTTP/2 connections this worker opened (its WebSockets were streams of these). */
  readonly http2Connections: number;
}

export type WorkerMessage =
  | { readonly type: 'ready' }
  | { readonly type: 'progress'; readonly counts: WorkerCounts }
  | { readonly type: 'done'; readonly result: WorkerResult };

export type MainMessage =
  /** Sent once every worker is ready, so none starts late because its thread loaded slower. */
  { readonly type: 'start'; readonly startAt: number; readonly stopAt: number } | { readonly type: 'stop' };

export function emptyCounts(): WorkerCounts {
  return {
    established: 0,
    open: 0,
    failed: 0,
    sent: 0,
    received: 0,
    bytesSent: 0,
    bytesReceived: 0,
    unexpectedCloses: 0,
    sendErrors: 0,
  };
}
