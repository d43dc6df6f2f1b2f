import { once } from 'node:events';
import { type ClientOptions, WebSocket } from 'ws';

/** A server frame of the wshub.v1 subprotocol (issue 16). */
export interface V1Frame {
  readonly type: 'welcome' | 'message' | 'reset' | 'reconnect' | 'pending';
  readonly room: string;
  readonly epoch: string;
  readonly offset: number;
  /** With the backplane: the message's id (a `pending` frame and its later `message` frame share it). */
  readonly id?: string;
  readonly data?: string;
  readonly data_b64?: string;
}

/** A ws client speaking wshub.v1 that queues parsed frames, so a test can await them in order. */
export class V1Client {
  /** The positioned stream: welcome, message and reset frames, in arrival order. */
  readonly frames: V1Frame[] = [];
  /** `pending` frames (a message of this node that Redis had not positioned yet), kept apart from `frames`. */
  readonly pending: V1Frame[] = [];
  /** Every frame, pending ones included, in arrival order. */
  readonly all: V1Frame[] = [];
  readonly closed: Promise<{ code: number; reason: string }>;
  private waiters: Array<() => void> = [];

  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      if (isBinary) throw new Error('wshub.v1 server frames are text');
      const frame = JSON.parse(data.toString()) as V1Frame;
      this.all.push(frame);
      (frame.type === 'pending' ? this.pending : this.frames).push(frame);
      for (const wake of this.waiters.splice(0)) wake();
    });
    this.closed = new Promise((resolve) => {
      ws.once('close', (code: number, reason: Buffer) => resolve({ code, reason: String(reason) }));
    });
    ws.on('error', () => {});
  }

  static async open(url: string, options: ClientOptions = {}): Promise<V1Client> {
    const ws = new WebSocket(url, 'wshub.v1', options);
    const client = new V1Client(ws);
    await once(ws, 'open');
    if (ws.protocol !== 'wshub.v1') throw new Error(`server chose protocol "${ws.protocol}"`);
    return client;
  }

  /** Resolves once `count` frames have been received (all of them, since the start), or rejects after timeoutMs. */
  async waitFor(count: number, timeoutMs = 10_000): Promise<V1Frame[]> {
    const deadline = performance.now() + timeoutMs;
    while (this.frames.length < count) {
      const left = deadline - performance.now();
      if (left <= 0) {
        throw new Error(`only ${this.frames.length} of ${count} frames within ${timeoutMs}ms`);
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    return this.frames.slice(0, count);
  }

  send(data: string | Buffer, binary = false): Promise<void> {
    return new Promise((resolve, reject) =>
      this.ws.send(data, { binary }, (error) => (error ? reject(error) : resolve())),
    );
  }

  close(): Promise<{ code: number; reason: string }> {
    this.ws.close(1000);
    return this.closed;
  }
}

/** The messages' payloads, asserting their offsets run consecutively from `from + 1`. */
export function payloadsFrom(frames: readonly V1Frame[], from: number): string[] {
  let expected = from + 1;
  return frames.map((frame) => {
    if (frame.type !== 'message') throw new Error(`expected a message frame, got ${JSON.stringify(frame)}`);
    if (frame.offset !== expected) throw new Error(`offset ${frame.offset}, expected ${expected}`);
    expected++;
    return frame.data ?? '';
  });
}
