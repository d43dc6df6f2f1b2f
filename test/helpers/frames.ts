import type { Socket } from 'node:net';

export interface ServerFrame {
  readonly fin: boolean;
  readonly opcode: number;
  readonly payload: Buffer;
}

/**
 * Parses the (unmasked) frames a server sends on a raw socket, for wire-level
 * tests: what arrives is exactly what a client would see.
 */
export class FrameReader {
  private buffered = Buffer.alloc(0);
  private readonly frames: ServerFrame[] = [];
  private waiter: (() => void) | undefined;
  private ended = false;

  constructor(readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.buffered = Buffer.concat([this.buffered, chunk]);
      this.parse();
      this.wake();
    });
    socket.on('close', () => {
      this.ended = true;
      this.wake();
    });
    socket.on('error', () => {});
  }

  /** The next frame; rejects when the socket closes first or after `timeoutMs`. */
  async next(timeoutMs = 10_000): Promise<ServerFrame> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const frame = this.frames.shift();
      if (frame) return frame;
      if (this.ended) throw new Error('socket closed before the next frame');
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no frame within ${timeoutMs}ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiter = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  }

  /** Reads frames until a close frame and returns its status code (and how many data frames came before). */
  async untilClose(timeoutMs = 10_000): Promise<{ code: number; reason: string; dataFrames: number }> {
    const deadline = Date.now() + timeoutMs;
    let dataFrames = 0;
    for (;;) {
      const frame = await this.next(Math.max(1, deadline - Date.now()));
      if (frame.opcode === 0x8) {
        return {
          code: frame.payload.length >= 2 ? frame.payload.readUInt16BE(0) : 1005,
          reason: frame.payload.subarray(2).toString('utf8'),
          dataFrames,
        };
      }
      if (frame.opcode === 0x1 || frame.opcode === 0x2) dataFrames++;
    }
  }

  private wake(): void {
    const waiter = this.waiter;
    this.waiter = undefined;
    waiter?.();
  }

  private parse(): void {
    for (;;) {
      const b = this.buffered;
      if (b.length < 2) return;
      let length = (b[1] as number) & 0x7f;
      let offset = 2;
      if (length === 126) {
        if (b.length < 4) return;
        length = b.readUInt16BE(2);
        offset = 4;
      } else if (length === 127) {
        if (b.length < 10) return;
        length = Number(b.readBigUInt64BE(2));
        offset = 10;
      }
      if (b.length < offset + length) return;
      this.frames.push({
        fin: ((b[0] as number) & 0x80) !== 0,
        opcode: (b[0] as number) & 0x0f,
        payload: Buffer.from(b.subarray(offset, offset + length)),
      });
      this.buffered = b.subarray(offset + length);
    }
  }
}
