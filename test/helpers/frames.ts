import { once } from 'node:events';
import type { Socket } from 'node:net';

/** One frame as it arrived from the server, unmasked payload included. */
export interface ServerFrame {
  readonly fin: boolean;
  /** RSV1..RSV3 as the top bits of the first byte (0x40 = RSV1). */
  readonly rsv: number;
  readonly opcode: number;
  readonly masked: boolean;
  readonly payload: Buffer;
}

/**
 * Parses one frame at the start of `data` (RFC 6455 §5.2). Returns the frame and
 * how many bytes it used, or undefined when `data` does not hold a whole frame yet.
 */
export function parseFrame(data: Buffer): { frame: ServerFrame; length: number } | undefined {
  if (data.length < 2) return undefined;
  const first = data[0] as number;
  const second = data[1] as number;
  let offset = 2;
  let length = second & 0x7f;
  if (length === 126) {
    if (data.length < 4) return undefined;
    length = data.readUInt16BE(2);
    offset = 4;
  } else if (length === 127) {
    if (data.length < 10) return undefined;
    length = Number(data.readBigUInt64BE(2));
    offset = 10;
  }
  const masked = (second & 0x80) !== 0;
  const maskOffset = offset;
  if (masked) offset += 4;
  if (data.length < offset + length) return undefined;
  const payload = Buffer.from(data.subarray(offset, offset + length));
  if (masked) {
    for (let i = 0; i < payload.length; i++) {
      payload[i] = (payload[i] as number) ^ (data[maskOffset + (i % 4)] as number);
    }
  }
  return {
    frame: { fin: (first & 0x80) !== 0, rsv: first & 0x70, opcode: first & 0x0f, masked, payload },
    length: offset + length,
  };
}

/** The status code of a close frame's payload, or undefined for an empty close frame. */
export function closeCodeOf(frame: ServerFrame): number | undefined {
  return frame.payload.length >= 2 ? frame.payload.readUInt16BE(0) : undefined;
}

/**
 * Reads the frames a server writes to a raw socket (after rawHandshake), and
 * notices when the server ends the TCP connection.
 */
export class FrameReader {
  private buffered: Buffer;
  private readonly frames: ServerFrame[] = [];
  private waiters: Array<() => void> = [];
  /** Resolves when the server has ended (FIN) or reset the TCP connection. */
  readonly ended: Promise<'end' | 'close'>;
  private isEnded = false;

  constructor(
    readonly socket: Socket,
    leftover: Buffer = Buffer.alloc(0),
  ) {
    this.buffered = leftover;
    socket.on('data', (chunk: Buffer) => {
      this.buffered = Buffer.concat([this.buffered, chunk]);
      this.drain();
    });
    socket.on('error', () => {});
    this.ended = Promise.race([
      once(socket, 'end').then(() => 'end' as const),
      once(socket, 'close').then(() => 'close' as const),
    ]).finally(() => {
      this.isEnded = true;
      this.wake();
    });
    this.drain();
  }

  private drain(): void {
    for (;;) {
      const parsed = parseFrame(this.buffered);
      if (parsed === undefined) break;
      this.frames.push(parsed.frame);
      this.buffered = this.buffered.subarray(parsed.length);
    }
    this.wake();
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const wake of waiters) wake();
  }

  /** The next frame from the server; rejects when none arrives in time or the connection ended first. */
  async next(timeoutMs = 5000): Promise<ServerFrame> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const frame = this.frames.shift();
      if (frame !== undefined) return frame;
      if (this.isEnded) throw new Error('the server ended the connection before sending another frame');
      const left = deadline - performance.now();
      if (left <= 0) throw new Error(`no frame from the server within ${timeoutMs}ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** Waits for the server's close frame (skipping data, ping and pong frames) and returns it. */
  async nextClose(timeoutMs = 5000): Promise<ServerFrame> {
    for (;;) {
      const frame = await this.next(timeoutMs);
      if (frame.opcode === 0x8) return frame;
    }
  }

  /** Reads frames until a close frame and returns its status code (and how many data frames came before). */
  async untilClose(timeoutMs = 10_000): Promise<{ code: number; reason: string; dataFrames: number }> {
    const deadline = performance.now() + timeoutMs;
    let dataFrames = 0;
    for (;;) {
      const frame = await this.next(Math.max(1, deadline - performance.now()));
      if (frame.opcode === 0x8) {
        return {
          code: closeCodeOf(frame) ?? 1005,
          reason: frame.payload.subarray(2).toString('utf8'),
          dataFrames,
        };
      }
      if (frame.opcode === 0x1 || frame.opcode === 0x2) dataFrames++;
    }
  }

  /** Resolves with how the server ended the TCP connection, or rejects if it has not within the time. */
  async waitForEnd(timeoutMs = 5000): Promise<'end' | 'close'> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`the server did not close the TCP connection within ${timeoutMs}ms`)),
        timeoutMs,
      );
    });
    try {
      return await Promise.race([this.ended, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }
}
