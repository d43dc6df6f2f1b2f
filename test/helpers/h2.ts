import { once } from 'node:events';
import {
  type ClientHttp2Session,
  type ClientHttp2Stream,
  connect,
  type IncomingHttpHeaders,
  type SecureClientSessionOptions,
} from 'node:http2';
import type { Socket } from 'node:net';
import { clientFrame } from './clients.js';
import { FrameReader } from './frames.js';

/**
 * An HTTP/2 WebSocket client for tests, independent of the code under test: Node's http2
 * client for the connection and the extended CONNECT (RFC 8441 §4), and frames built and parsed
 * by hand (clientFrame / FrameReader), not by ws.
 */
export class H2Client {
  private constructor(readonly session: ClientHttp2Session) {}

  /** `origin` is http://host:port (h2c, prior knowledge) or https://host:port (h2 by ALPN). */
  static async connect(origin: string, options: SecureClientSessionOptions = {}): Promise<H2Client> {
    const session = connect(origin, options);
    session.on('error', () => {});
    // A large connection window: a stalled stream of ours must not stall the others (RFC 9113 §5.2).
    await once(session, 'connect');
    session.setLocalWindowSize(64 * 1024 * 1024);
    // The server's SETTINGS must have arrived before an extended CONNECT may be sent (RFC 8441 §4).
    if (session.remoteSettings.enableConnectProtocol !== true) await once(session, 'remoteSettings');
    return new H2Client(session);
  }

  get enableConnectProtocol(): boolean | undefined {
    return this.session.remoteSettings.enableConnectProtocol;
  }

  /** Sends an extended CONNECT for `path` (with its query); resolves with the response and, on 200, the WebSocket. */
  async open(
    path: string,
    headers: Record<string, string> = {},
    authority?: string,
  ): Promise<{ status: number; headers: IncomingHttpHeaders; body: string; ws: H2WebSocket | undefined }> {
    const stream = this.session.request(
      {
        ':method': 'CONNECT',
        ':protocol': 'websocket',
        ':path': path,
        ...(authority === undefined ? {} : { ':authority': authority }),
        'sec-websocket-version': '13',
        ...headers,
      },
      { endStream: false },
    );
    stream.on('error', () => {});
    const [responseHeaders] = (await once(stream, 'response')) as [IncomingHttpHeaders];
    const status = Number(responseHeaders[':status']);
    if (status !== 200) {
      const chunks: Buffer[] = [];
      stream.on('data', (chunk: Buffer) => chunks.push(chunk));
      await Promise.race([once(stream, 'end'), once(stream, 'close')]);
      return {
        status,
        headers: responseHeaders,
        body: Buffer.concat(chunks).toString('utf8'),
        ws: undefined,
      };
    }
    return { status, headers: responseHeaders, body: '', ws: new H2WebSocket(stream) };
  }

  /** Opens a WebSocket and fails the test unless the server answers 200. */
  async openOk(path: string, headers: Record<string, string> = {}): Promise<H2WebSocket> {
    const answer = await this.open(path, headers);
    if (answer.ws === undefined) throw new Error(`expected 200, got ${answer.status}: ${answer.body}`);
    return answer.ws;
  }

  /** A plain GET on this connection. */
  async get(path: string): Promise<{ status: number; headers: IncomingHttpHeaders; body: string }> {
    const stream = this.session.request({ ':method': 'GET', ':path': path });
    stream.on('error', () => {});
    const [headers] = (await once(stream, 'response')) as [IncomingHttpHeaders];
    const chunks: Buffer[] = [];
    stream.on('data', (chunk: Buffer) => chunks.push(chunk));
    await once(stream, 'end');
    return { status: Number(headers[':status']), headers, body: Buffer.concat(chunks).toString('utf8') };
  }

  close(): void {
    this.session.destroy();
  }
}

/** One WebSocket on one HTTP/2 stream. */
export class H2WebSocket {
  readonly frames: FrameReader;

  constructor(readonly stream: ClientHttp2Stream) {
    this.frames = new FrameReader(stream as unknown as Socket);
  }

  sendText(text: string): void {
    this.stream.write(clientFrame(0x1, Buffer.from(text)));
  }

  sendFrame(opcode: number, payload: Buffer, options: { fin?: boolean; rsv?: number } = {}): void {
    this.stream.write(clientFrame(opcode, payload, options));
  }

  /** The next data frame's payload as text (pings are answered, as a client must). */
  async nextText(timeoutMs = 5000): Promise<string> {
    for (;;) {
      const frame = await this.frames.next(timeoutMs);
      if (frame.opcode === 0x9) {
        this.sendFrame(0xa, frame.payload);
        continue;
      }
      if (frame.opcode === 0x8) throw new Error(`closed by the server: ${frame.payload.readUInt16BE(0)}`);
      return frame.payload.toString('utf8');
    }
  }

  close(code = 1000): void {
    const payload = Buffer.alloc(2);
    payload.writeUInt16BE(code, 0);
    this.stream.write(clientFrame(0x8, payload));
  }
}
