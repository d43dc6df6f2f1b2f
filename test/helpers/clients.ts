import { once } from 'node:events';
import { connect as netConnect, type Socket } from 'node:net';
import { WebSocket } from 'ws';

export interface Received {
  readonly data: Buffer;
  readonly isBinary: boolean;
}

/** A ws client that queues what it receives, so a test can await the next message or the close. */
export class TestClient {
  readonly received: Received[] = [];
  readonly closed: Promise<{ code: number; reason: string }>;
  private waiters: Array<(message: Received) => void> = [];

  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      const message = { data, isBinary };
      const waiter = this.waiters.shift();
      if (waiter) waiter(message);
      else this.received.push(message);
    });
    // Not events.once: it rejects on 'error', leaving an unhandled rejection for a client nobody closes.
    this.closed = new Promise((resolve) => {
      ws.once('close', (code: number, reason: Buffer) => resolve({ code, reason: String(reason) }));
    });
    ws.on('error', () => {});
  }

  static async open(
    url: string,
    options: ConstructorParameters<typeof WebSocket>[2] = {},
  ): Promise<TestClient> {
    const ws = new WebSocket(url, options);
    const client = new TestClient(ws);
    await once(ws, 'open');
    return client;
  }

  next(timeoutMs = 5000): Promise<Received> {
    const queued = this.received.shift();
    if (queued) return Promise.resolve(queued);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no message within ${timeoutMs}ms`)), timeoutMs);
      this.waiters.push((message) => {
        clearTimeout(timer);
        resolve(message);
      });
    });
  }

  /** The next `count` messages, in order of arrival. */
  async take(count: number, timeoutMs = 10_000): Promise<Received[]> {
    const deadline = performance.now() + timeoutMs;
    const messages: Received[] = [];
    while (messages.length < count) {
      const left = deadline - performance.now();
      if (left <= 0) throw new Error(`only ${messages.length} of ${count} messages within ${timeoutMs}ms`);
      messages.push(await this.next(left));
    }
    return messages;
  }

  send(data: string | Buffer, options: { binary?: boolean; fin?: boolean } = {}): Promise<void> {
    return new Promise((resolve, reject) =>
      this.ws.send(data, options, (error) => (error ? reject(error) : resolve())),
    );
  }

  close(code = 1000): Promise<{ code: number; reason: string }> {
    this.ws.close(code);
    return this.closed;
  }
}

/**
 * A raw TCP socket that has completed a WebSocket handshake by hand, for wire-level tests.
 * `sendWithRequest`: bytes (frames) sent in the same TCP write as the request.
 */
export async function rawHandshake(
  port: number,
  path = '/ws',
  extraHeaders: string[] = [],
  sendWithRequest: Buffer = Buffer.alloc(0),
): Promise<{ socket: Socket; response: string }> {
  const socket = netConnect(port, '127.0.0.1');
  await once(socket, 'connect');
  const request = Buffer.from(
    [
      `GET ${path} HTTP/1.1`,
      `Host: 127.0.0.1:${port}`,
      'Upgrade: websocket',
      'Connection: Upgrade',
      'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==',
      'Sec-WebSocket-Version: 13',
      ...extraHeaders,
      '',
      '',
    ].join('\r\n'),
    'latin1',
  );
  socket.write(Buffer.concat([request, sendWithRequest]));
  let response = '';
  while (!response.includes('\r\n\r\n')) {
    const [chunk] = (await once(socket, 'data')) as [Buffer];
    response += chunk.toString('latin1');
  }
  return { socket, response };
}

/** Sends a raw HTTP request and returns the whole response as text (the server closes or we stop at the body). */
export async function rawHttp(port: number, request: string): Promise<string> {
  const socket = netConnect(port, '127.0.0.1');
  await once(socket, 'connect');
  socket.write(request);
  const chunks: Buffer[] = [];
  socket.on('data', (chunk: Buffer) => chunks.push(chunk));
  await Promise.race([once(socket, 'close'), new Promise((resolve) => setTimeout(resolve, 2000))]);
  socket.destroy();
  return Buffer.concat(chunks).toString('latin1');
}

/** A client frame: FIN + opcode, masked as RFC 6455 §5.3 requires of clients. */
export function clientFrame(
  opcode: number,
  payload: Buffer,
  options: { fin?: boolean; rsv?: number } = {},
): Buffer {
  const fin = options.fin === false ? 0 : 0x80;
  const mask = Buffer.from([0x12, 0x34, 0x56, 0x78]);
  const length = payload.length;
  const header =
    length < 126
      ? Buffer.from([fin | (options.rsv ?? 0) | opcode, 0x80 | length])
      : length < 65536
        ? Buffer.from([fin | (options.rsv ?? 0) | opcode, 0x80 | 126, length >> 8, length & 0xff])
        : (() => {
            const h = Buffer.alloc(10);
            h[0] = fin | (options.rsv ?? 0) | opcode;
            h[1] = 0x80 | 127;
            h.writeBigUInt64BE(BigInt(length), 2);
            return h;
          })();
  const masked = Buffer.alloc(length);
  for (let i = 0; i < length; i++) masked[i] = (payload[i] as number) ^ (mask[i % 4] as number);
  return Buffer.concat([header, mask, masked]);
}
