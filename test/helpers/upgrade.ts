import { once } from 'node:events';
import { connect as netConnect, type Socket } from 'node:net';

export interface UpgradeRequest {
  readonly method?: string;
  readonly path?: string;
  /** Header lines replacing the standard handshake headers named in them (case-insensitive). */
  readonly headers?: readonly string[];
  /** Standard header names to leave out, e.g. ['sec-websocket-key']. */
  readonly omit?: readonly string[];
  /** Source address (another loopback alias such as 127.0.0.2 counts as another client). */
  readonly localAddress?: string;
}

export interface UpgradeResponse {
  readonly socket: Socket;
  /** The response head, status line first, with \r\n line ends. */
  readonly head: string;
  readonly statusLine: string;
  readonly status: number;
  /** Header names lowercased. */
  readonly headers: Readonly<Record<string, string>>;
}

/**
 * Sends a WebSocket opening handshake by hand over a raw socket and reads the
 * response head, so a test sees exactly the bytes a client would. The socket is
 * left open (after 101 it carries frames); the caller destroys it.
 */
export async function sendUpgrade(port: number, request: UpgradeRequest = {}): Promise<UpgradeResponse> {
  const socket = netConnect({ port, host: '127.0.0.1', localAddress: request.localAddress });
  socket.on('error', () => {});
  await once(socket, 'connect');
  const standard: Record<string, string> = {
    host: `Host: 127.0.0.1:${port}`,
    upgrade: 'Upgrade: websocket',
    connection: 'Connection: Upgrade',
    'sec-websocket-key': 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==',
    'sec-websocket-version': 'Sec-WebSocket-Version: 13',
  };
  const extra = request.headers ?? [];
  for (const line of extra) delete standard[line.slice(0, line.indexOf(':')).toLowerCase()];
  for (const name of request.omit ?? []) delete standard[name];
  socket.write(
    [
      `${request.method ?? 'GET'} ${request.path ?? '/ws'} HTTP/1.1`,
      ...Object.values(standard),
      ...extra,
      '',
      '',
    ].join('\r\n'),
  );
  const head = await readHead(socket);
  const [statusLine = '', ...lines] = head.split('\r\n');
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const colon = line.indexOf(':');
    if (colon > 0) headers[line.slice(0, colon).toLowerCase()] = line.slice(colon + 1).trim();
  }
  return { socket, head, statusLine, status: Number(statusLine.split(' ')[1]), headers };
}

/** Reads up to the end of an HTTP response head (or until the server closes). */
export async function readHead(socket: Socket, timeoutMs = 5000): Promise<string> {
  let text = '';
  const deadline = performance.now() + timeoutMs;
  while (!text.includes('\r\n\r\n')) {
    const chunk = socket.read() as Buffer | null;
    if (chunk !== null) {
      text += chunk.toString('latin1');
      continue;
    }
    if (socket.readableEnded || socket.destroyed) break;
    if (performance.now() > deadline)
      throw new Error(`no response head within ${timeoutMs}ms; got ${JSON.stringify(text)}`);
    await Promise.race([
      once(socket, 'readable'),
      once(socket, 'close'),
      new Promise((resolve) => setTimeout(resolve, 100)),
    ]);
  }
  const end = text.indexOf('\r\n\r\n');
  if (end !== -1 && end + 4 < text.length) socket.unshift(Buffer.from(text.slice(end + 4), 'latin1'));
  return end === -1 ? text : text.slice(0, end);
}

/** Resolves when the socket is closed by the other side (or rejects after `timeoutMs`). */
export async function closedByServer(socket: Socket, timeoutMs = 5000): Promise<void> {
  if (socket.destroyed) return;
  socket.resume();
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    once(socket, 'close'),
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`socket still open after ${timeoutMs}ms`)), timeoutMs);
    }),
  ]).finally(() => clearTimeout(timer));
}
