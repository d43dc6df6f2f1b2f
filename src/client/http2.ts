import {
  type ClientHttp2Session,
  type ClientHttp2Stream,
  connect,
  constants,
  type IncomingHttpHeaders,
} from 'node:http2';
import { WebSocket } from 'ws';
import {
  attachClientStream,
  checkHttp2ClientShape,
  createClientWebSocket,
  failClientWebSocket,
} from '../transport/ws-adapter.js';

/**
 * For `wshub client --http2` and `wshub bench --http2`, before anything is opened: throws a
 * UsageError (one line, exit 2) when the installed ws cannot run a WebSocket over a stream
 * (ws-adapter shape 8).
 */
export { checkHttp2ClientShape };

export interface Http2ConnectionOptions {
  readonly ca?: Buffer | undefined;
  readonly rejectUnauthorized: boolean;
  readonly maxPayload: number;
}

/** Bytes one stream may have in flight towards us; the connection's window covers many such streams. */
const STREAM_WINDOW = 1024 * 1024;

/**
 * One HTTP/2 connection (h2c with prior knowledge for ws://, h2 by ALPN for wss://) that opens
 * WebSockets as streams with extended CONNECT (RFC 8441 §4): `wshub client --http2` opens one,
 * `wshub bench --http2` many per connection. The CONNECT waits for the server's SETTINGS, which
 * must enable the extended CONNECT (§3).
 */
export class Http2WebSocketConnection {
  readonly session: ClientHttp2Session;
  private readonly ready: Promise<void>;
  /**
   * WebSocket streams asked of this connection so far, counted when asked: streams asked before the
   * server's SETTINGS arrive wait for them, and `wshub bench --http2` must not put more than
   * --streams-per-connection of those on one connection (at a high --connect-rate, all of them).
   */
  opened = 0;

  constructor(
    url: string,
    private readonly options: Http2ConnectionOptions,
  ) {
    const target = new URL(url);
    const origin = `${target.protocol === 'wss:' ? 'https:' : 'http:'}//${target.host}`;
    this.session = connect(origin, {
      ...(options.ca === undefined ? {} : { ca: options.ca }),
      rejectUnauthorized: options.rejectUnauthorized,
      settings: { enablePush: false, initialWindowSize: STREAM_WINDOW },
    });
    this.ready = new Promise((resolve, reject) => {
      const session = this.session;
      session.once('error', reject);
      session.once('close', () =>
        reject(new Error('the HTTP/2 connection closed before the server sent its SETTINGS')),
      );
      session.once('remoteSettings', (settings) => {
        session.setLocalWindowSize(STREAM_WINDOW * 256);
        if (settings.enableConnectProtocol === true) resolve();
        else {
          reject(
            new Error(
              'the server does not offer WebSockets over HTTP/2 (no SETTINGS_ENABLE_CONNECT_PROTOCOL; is it started with --http2?)',
            ),
          );
        }
      });
    });
    // Later errors reach the streams; the session's own must not be unhandled.
    this.session.on('error', ignore);
    this.ready.catch(ignore);
  }

  /**
   * A WebSocket (still CONNECTING) for `url` on a new stream of this connection. It opens when
   * the server answers 200; any other answer is an 'error' ("Unexpected server response: 503",
   * as ws words it) and a 'close' with 1006.
   */
  open(url: string, timeoutMs = 0, headers: Readonly<Record<string, string>> = {}): WebSocket {
    this.opened++;
    const target = new URL(url);
    let stream: ClientHttp2Stream | undefined;
    let timer: NodeJS.Timeout | undefined;
    const fail = (error: Error): void => {
      clearTimeout(timer);
      if (stream !== undefined && !stream.closed) stream.close(constants.NGHTTP2_CANCEL);
      failClientWebSocket(ws, error);
    };
    // terminate() while connecting cancels the stream being opened.
    const ws = createClientWebSocket(() =>
      fail(new Error('WebSocket was closed before the connection was established')),
    );
    if (timeoutMs > 0) {
      timer = setTimeout(() => fail(new Error('Opening handshake has timed out')), timeoutMs);
      timer.unref();
    }
    this.ready.then(() => {
      if (ws.readyState !== WebSocket.CONNECTING) return;
      try {
        stream = this.session.request(
          {
            ':method': 'CONNECT',
            ':protocol': 'websocket',
            ':path': `${target.pathname}${target.search}`,
            'sec-websocket-version': '13',
            // HTTP/2 field names are lower case (RFC 9113 §8.2.1).
            ...Object.fromEntries(
              Object.entries(headers).map(([name, value]) => [name.toLowerCase(), value]),
            ),
          },
          { endStream: false },
        );
      } catch (error) {
        fail(error as Error);
        return;
      }
      const opening = stream;
      opening.on('error', fail);
      opening.once('response', (headers: IncomingHttpHeaders) => {
        const status = Number(headers[':status']);
        if (status === 200 && ws.readyState === WebSocket.CONNECTING) {
          clearTimeout(timer);
          attachClientStream(ws, opening, this.options.maxPayload);
          return;
        }
        fail(Object.assign(new Error(`Unexpected server response: ${status}`), { status, headers }));
      });
    }, fail);
    return ws;
  }

  /** GOAWAY, then the connection closes once its streams have ended. */
  close(): void {
    if (!this.session.closed) this.session.close();
  }
}

function ignore(): void {}
