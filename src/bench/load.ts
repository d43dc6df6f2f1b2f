import type { ClientRequest, IncomingMessage } from 'node:http';
import { performance } from 'node:perf_hooks';
import { build, encodeIntoCompressedBase64, type Histogram } from 'hdr-histogram-js';
import { WebSocket } from 'ws';
import { Http2WebSocketConnection } from '../client/http2.js';
import { bearerHeaders } from '../config/websocket-url.js';
import { STAMP_BYTES } from './options.js';
import {
  emptyCounts,
  type SecondSample,
  type WorkerMessage,
  type WorkerPlan,
  type WorkerResult,
} from './protocol.js';

/** Epoch milliseconds with sub-microsecond resolution, comparable across worker threads. */
export const clock = (): number => performance.timeOrigin + performance.now();

const MARKER = 0x42485357; // "WSHB" read as a little-endian uint32
const TICK_MS = 10;
/** Above this many bytes queued on a socket, open-loop sends wait (the socket is not keeping up). */
const MAX_BUFFERED = 1024 * 1024;
const MAX_PAYLOAD = 256 * 1024 * 1024;

export function createHistogram(): Histogram {
  // Microseconds from 1 µs to one hour, 3 significant digits (HdrHistogram's usual setting).
  return build({
    bitBucketSize: 32,
    lowestDiscernibleValue: 1,
    highestTrackableValue: 3_600_000_000,
    numberOfSignificantValueDigits: 3,
    useWebAssembly: false,
  });
}

/** Why a connection could not be established: a bounded, readable name. */
export function failureReason(error: Error & { code?: string }): string {
  const code = error.code ?? '';
  if (code === 'ECONNREFUSED') return 'refused';
  if (code === 'ETIMEDOUT' || /handshake has timed out/i.test(error.message)) return 'timeout';
  if (code === 'ECONNRESET' || code === 'EPIPE' || /socket hang up/i.test(error.message)) return 'reset';
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return 'dns';
  if (code === 'EHOSTUNREACH' || code === 'ENETUNREACH' || code === 'EADDRNOTAVAIL') return 'unreachable';
  if (code.startsWith('ERR_TLS') || code.includes('CERT') || code.startsWith('ERR_SSL')) return 'tls';
  if (/^Unexpected server response: (\d+)/.test(error.message)) {
    return `http_${/(\d+)/.exec(error.message)?.[1]}`;
  }
  return 'other';
}

class BenchConnection {
  opened = false;
  closingByUs = false;
  failed = false;
  /** Own messages sent and echoes received (echo mode: their difference is what is in flight). */
  sent = 0;
  echoed = 0;
  firstSendAt = 0;
  closedUnexpectedly = false;
  startedAt = 0;

  constructor(readonly ws: WebSocket) {}
}

/**
 * The load one worker thread generates: opens its share of the connections at
 * its share of the rate, sends stamped messages (open loop at --rate, or closed
 * loop), times every stamped message that comes back, and reports counts.
 */
export class LoadGenerator {
  private readonly counts = emptyCounts();
  private readonly failedByReason: Record<string, number> = {};
  private readonly closeCodes: Record<string, number> = {};
  /** All latencies of the run: each second's are added here when the second ends. */
  private readonly latency = createHistogram();
  /** The current second's latencies (the only histogram a message is recorded in). */
  private readonly secondLatency = createHistogram();
  private readonly connectLatency = createHistogram();
  private second = emptySecond();
  private readonly timeline: SecondSample[] = [];
  private readonly connections: BenchConnection[] = [];
  private readonly template: Buffer;
  private sending = false;
  private stopRequested = false;
  private sendingFrom = 0;
  private sendingUntil = 0;
  private lastReceiveAt = 0;
  private timers: NodeJS.Timeout[] = [];
  private finish: (() => void) | undefined;

  constructor(
    private readonly plan: WorkerPlan,
    private readonly post: (message: WorkerMessage) => void,
  ) {
    this.template = Buffer.alloc(plan.size, 0x78);
    this.template.writeUInt32LE(MARKER, 8);
  }

  /**
   * Runs the plan from `startAt` to `stopAt` (epoch ms, the same for every
   * worker, chosen once all of them are loaded); resolves with the result
   * (also posted as 'done').
   */
  async run(startAt: number, stopAt: number): Promise<WorkerResult> {
    const plan = this.plan;
    await sleepUntil(startAt);
    this.sending = true;
    const rollSecond = (): void => {
      this.endSecond();
      roller = setTimeout(rollSecond, startAt + (this.timeline.length + 1) * 1000 - Date.now());
    };
    let roller = setTimeout(rollSecond, startAt + 1000 - Date.now());
    const progress = setInterval(() => this.post({ type: 'progress', counts: { ...this.counts } }), 250);
    this.timers.push(progress);
    if (plan.rate > 0) this.timers.push(setInterval(() => this.tick(), TICK_MS));
    const timeUp = new Promise<void>((resolve) => {
      this.finish = () => {
        if (this.sending) this.sendingUntil = clock();
        this.sending = false;
        resolve();
      };
      this.timers.push(setTimeout(this.finish, Math.max(0, stopAt - Date.now())));
    });
    if (this.stopRequested) this.finish?.();
    const interval = 1000 / plan.connectRate;
    for (let i = 0; i < plan.connections && this.sending; i++) {
      const wait = startAt + i * interval - Date.now();
      if (wait > 1) await Promise.race([sleep(wait), timeUp]);
      if (this.sending) this.open();
    }
    await timeUp;
    await this.drain();
    await this.closeAll();
    for (const timer of this.timers) clearInterval(timer);
    clearTimeout(roller);
    this.endSecond();
    const result = this.result();
    this.post({ type: 'done', result });
    return result;
  }

  /** Ends the run early (Ctrl-C): stop sending, drain, close, report. */
  stop(): void {
    this.stopRequested = true;
    this.finish?.();
  }

  /** The HTTP/2 connection new WebSocket streams go to (--http2), replaced once it carries --streams-per-connection. */
  private http2Connection: Http2WebSocketConnection | undefined;
  private readonly http2Connections: Http2WebSocketConnection[] = [];

  private openWebSocket(): WebSocket {
    const plan = this.plan;
    if (!plan.http2) {
      return new WebSocket(plan.url, {
        perMessageDeflate: false,
        handshakeTimeout: plan.connectTimeoutMs,
        rejectUnauthorized: !plan.insecure,
        maxPayload: MAX_PAYLOAD,
        headers: bearerHeaders(plan.token),
      });
    }
    let connection = this.http2Connection;
    if (
      connection === undefined ||
      connection.opened >= plan.streamsPerConnection ||
      connection.session.closed
    ) {
      connection = new Http2WebSocketConnection(plan.url, {
        rejectUnauthorized: !plan.insecure,
        maxPayload: MAX_PAYLOAD,
      });
      this.http2Connection = connection;
      this.http2Connections.push(connection);
    }
    return connection.open(plan.url, plan.connectTimeoutMs, bearerHeaders(plan.token));
  }

  private open(): void {
    const ws = this.openWebSocket();
    const connection = new BenchConnection(ws);
    connection.startedAt = clock();
    this.connections.push(connection);
    ws.on('open', () => this.opened(connection));
    ws.on('message', (data: Buffer) => this.received(connection, data));
    ws.on('unexpected-response', (_request: ClientRequest, response: IncomingMessage) =>
      this.rejected(connection, response),
    );
    ws.on('error', (error: Error) => this.errored(connection, error));
    ws.on('close', (code: number) => this.closed(connection, code));
  }

  private opened(connection: BenchConnection): void {
    connection.opened = true;
    this.counts.established++;
    this.counts.open++;
    const now = clock();
    this.connectLatency.recordValue(Math.max(1, Math.round((now - connection.startedAt) * 1000)));
    if (!this.sending) {
      connection.closingByUs = true;
      connection.ws.close(1000);
      return;
    }
    if (this.plan.rate > 0) {
      // Spread the first sends over one interval so connections do not send in lockstep.
      connection.firstSendAt = now + Math.random() * (1000 / this.plan.rate);
    } else {
      this.send(connection);
    }
  }

  private send(connection: BenchConnection): void {
    const now = clock();
    if (this.sendingFrom === 0) this.sendingFrom = now;
    this.template.writeDoubleLE(now, 0);
    connection.sent++;
    this.counts.sent++;
    this.second.sent++;
    this.counts.bytesSent += this.template.length;
    connection.ws.send(this.template, { binary: true }, (error) => {
      if (error) this.counts.sendErrors++;
    });
  }

  private tick(): void {
    if (!this.sending) return;
    const now = clock();
    const rate = this.plan.rate;
    const burst = Math.max(1, Math.ceil((rate * TICK_MS * 4) / 1000));
    for (const connection of this.connections) {
      if (!connection.opened || connection.closingByUs || connection.firstSendAt > now) continue;
      if (connection.ws.readyState !== WebSocket.OPEN || connection.ws.bufferedAmount > MAX_BUFFERED)
        continue;
      const due = Math.floor(((now - connection.firstSendAt) * rate) / 1000) + 1 - connection.sent;
      for (let i = 0; i < Math.min(due, burst); i++) this.send(connection);
    }
  }

  private received(connection: BenchConnection, data: Buffer): void {
    const now = clock();
    this.lastReceiveAt = now;
    this.counts.received++;
    this.counts.bytesReceived += data.length;
    this.second.received++;
    this.second.bytesReceived += data.length;
    if (data.length < STAMP_BYTES || data.readUInt32LE(8) !== MARKER) return;
    const sentAt = data.readDoubleLE(0);
    this.secondLatency.recordValue(Math.max(1, Math.round((now - sentAt) * 1000)));
    if (this.plan.mode !== 'echo') return;
    connection.echoed++;
    if (this.plan.rate === 0 && this.sending && connection.ws.readyState === WebSocket.OPEN) {
      this.send(connection);
    }
  }

  private rejected(connection: BenchConnection, response: IncomingMessage): void {
    this.fail(connection, `http_${response.statusCode}`);
    response.resume();
    // Aborts the handshake: ws then emits 'error' (already counted) and 'close'.
    connection.ws.terminate();
  }

  private errored(connection: BenchConnection, error: Error): void {
    if (connection.opened || connection.failed) return;
    this.fail(connection, connection.closingByUs ? 'cancelled' : failureReason(error));
  }

  private fail(connection: BenchConnection, reason: string): void {
    if (connection.failed) return;
    connection.failed = true;
    this.counts.failed++;
    this.failedByReason[reason] = (this.failedByReason[reason] ?? 0) + 1;
    this.second.failedByReason[reason] = (this.second.failedByReason[reason] ?? 0) + 1;
  }

  private closed(connection: BenchConnection, code: number): void {
    if (!connection.opened) {
      // A close before the handshake finished is a failure already counted by its error.
      this.fail(connection, connection.closingByUs ? 'cancelled' : 'other');
      return;
    }
    this.counts.open--;
    this.closeCodes[code] = (this.closeCodes[code] ?? 0) + 1;
    this.second.closeCodes[code] = (this.second.closeCodes[code] ?? 0) + 1;
    if (!connection.closingByUs) {
      this.second.unexpectedCloses++;
      this.counts.unexpectedCloses++;
      connection.closedUnexpectedly = true;
    }
  }

  private inFlight(): number {
    let outstanding = 0;
    for (const connection of this.connections) {
      if (connection.opened && connection.ws.readyState === WebSocket.OPEN) {
        outstanding += connection.sent - connection.echoed;
      }
    }
    return outstanding;
  }

  /** Waits for replies still on their way: echo until none is missing, broadcast until the stream goes quiet. */
  private async drain(): Promise<void> {
    const deadline = Date.now() + this.plan.drainMs;
    while (Date.now() < deadline) {
      if (this.plan.mode === 'echo' ? this.inFlight() === 0 : clock() - this.lastReceiveAt > 250) return;
      await sleep(10);
    }
  }

  private async closeAll(): Promise<void> {
    const closing: Array<Promise<void>> = [];
    for (const connection of this.connections) {
      connection.closingByUs = true;
      const ws = connection.ws;
      if (ws.readyState === WebSocket.CLOSED) continue;
      closing.push(new Promise((resolve) => ws.once('close', () => resolve())));
      if (ws.readyState === WebSocket.CONNECTING) ws.terminate();
      else if (ws.readyState === WebSocket.OPEN) ws.close(1000);
    }
    const timer = setTimeout(() => {
      for (const connection of this.connections) connection.ws.terminate();
    }, 2000);
    await Promise.all(closing);
    clearTimeout(timer);
    for (const connection of this.http2Connections) connection.close();
  }

  /** Closes the current second of the timeline: its counts, and its latencies added to the run's. */
  private endSecond(): void {
    this.latency.add(this.secondLatency);
    this.timeline.push({
      ...this.second,
      open: this.counts.open,
      latency: encodeIntoCompressedBase64(this.secondLatency),
    });
    this.secondLatency.reset();
    this.second = emptySecond();
  }

  private result(): WorkerResult {
    let lost = 0;
    let lostOnUnexpectedClose = 0;
    if (this.plan.mode === 'echo') {
      for (const connection of this.connections) {
        const missing = connection.sent - connection.echoed;
        if (connection.closedUnexpectedly) lostOnUnexpectedClose += missing;
        else lost += missing;
      }
    }
    return {
      counts: { ...this.counts },
      failedByReason: { ...this.failedByReason },
      closeCodes: { ...this.closeCodes },
      lost,
      lostOnUnexpectedClose,
      latency: encodeIntoCompressedBase64(this.latency),
      connectLatency: encodeIntoCompressedBase64(this.connectLatency),
      sendingFrom: this.sendingFrom,
      sendingUntil: this.sendingUntil,
      timeline: this.timeline,
      http2Connections: this.http2Connections.length,
    };
  }
}

function emptySecond() {
  return {
    sent: 0,
    received: 0,
    bytesReceived: 0,
    unexpectedCloses: 0,
    failedByReason: {} as Record<string, number>,
    closeCodes: {} as Record<string, number>,
  };
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));
}

function sleepUntil(epochMs: number): Promise<void> {
  return sleep(epochMs - Date.now());
}
