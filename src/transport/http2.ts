import type { Server as HttpServer, IncomingMessage, ServerResponse } from 'node:http';
import {
  constants,
  createServer,
  type Http2Server,
  type IncomingHttpHeaders,
  type ServerHttp2Session,
  type ServerHttp2Stream,
} from 'node:http2';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import type { RateLimitedLog } from '../log.js';
import type { Stats } from '../stats.js';
import { formatPeer } from './address.js';
import { checkHttp2Shapes, compatPairOf } from './ws-adapter.js';

/**
 * WebSockets over HTTP/2 (RFC 8441, issue 17). The WebSocket port keeps one listener: a
 * cleartext connection that opens with the HTTP/2 connection preface (prior knowledge, RFC 9113
 * §3.3) goes to the HTTP/2 server below, anything else to the HTTP/1.1 server as before; with
 * TLS, ALPN decides (`h2` or `http/1.1`). The HTTP/2 server never listens itself: it is handed
 * sockets. It advertises SETTINGS_ENABLE_CONNECT_PROTOCOL (RFC 8441 §3); an extended CONNECT goes
 * to `onConnect` (the transport admits it exactly as an HTTP/1.1 upgrade), any other request to
 * `onRequest` (the plain routes of the port).
 */

/** RFC 9113 §3.4: the client connection preface. */
const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

/** Per-stream receive window (the RFC 9113 default); a stalled stream holds at most this much of the connection's. */
const STREAM_WINDOW = 65_535;

export interface Http2FrontOptions {
  /** SETTINGS_MAX_CONCURRENT_STREAMS (--http2-max-streams). */
  readonly maxStreams: number;
  /** SETTINGS_MAX_HEADER_LIST_SIZE: the same bound as an HTTP/1.1 request head (--max-header-size). */
  readonly maxHeaderSize: number;
  /** A cleartext connection that has sent nothing by then gets 408 (as HTTP/1.1 does); an HTTP/2 connection with no stream is closed. */
  readonly handshakeTimeoutMs: number;
  /** --max-buffered-bytes: what each WebSocket stream may have waiting; the session's memory bound allows it for every stream. */
  readonly maxBufferedBytes: number;
  readonly onConnect: (stream: ServerHttp2Stream, headers: IncomingHttpHeaders) => void;
  /** Plain requests (the console, /stats, /publish, 426/404), as the HTTP/1.1 server answers them. */
  readonly onRequest: (request: IncomingMessage, response: ServerResponse) => void;
  /** Answers a connection that never sent a request (408), as the HTTP/1.1 server's clientError does. */
  readonly onClientError: (error: Error & { code?: string }, socket: Duplex) => void;
  readonly stats: Stats;
  readonly limitedLog: RateLimitedLog;
}

/** An HTTP/2 stream carrying (or asking for) a WebSocket: it has a session, a TCP socket has not. */
export function isHttp2Stream(socket: unknown): socket is ServerHttp2Stream {
  return typeof socket === 'object' && socket !== null && 'session' in socket && 'respond' in socket;
}

/**
 * Gives a stream the client's address as `remoteAddress`/`remotePort`, the two fields the
 * upgrade gate and the logs read from a socket. Node forgets a stream's session when the
 * stream is destroyed, so the address is copied while the session is there.
 */
export function markStreamPeer(stream: ServerHttp2Stream): void {
  const socket = stream.session?.socket;
  Object.defineProperties(stream, {
    remoteAddress: { value: socket?.remoteAddress, enumerable: false },
    remotePort: { value: socket?.remotePort, enumerable: false },
  });
}

/** Answers a request on an HTTP/2 stream with `status` and a one-line text body, then ends the stream. */
export function respondOnStream(
  stream: ServerHttp2Stream,
  status: number,
  headers: Readonly<Record<string, string>>,
  body: string,
): void {
  if (stream.destroyed || stream.closed || stream.headersSent) {
    stream.destroy();
    return;
  }
  const lowered: Record<string, string | number> = {};
  for (const [name, value] of Object.entries(headers)) {
    const lower = name.toLowerCase();
    // RFC 9113 §8.2.2: no connection-specific fields in HTTP/2.
    if (lower !== 'connection' && lower !== 'upgrade' && lower !== 'content-length') lowered[lower] = value;
  }
  stream.respond({
    ':status': status,
    'content-type': 'text/plain; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    ...lowered,
  });
  stream.end(body);
}

// Sessions and streams get one shared listener each where no state is needed.
function ignoreError(): void {}

export class Http2Front {
  /** Open HTTP/2 connections. */
  readonly sessions = new Set<ServerHttp2Session>();
  private readonly server: Http2Server;
  private readonly openStreams = new Map<ServerHttp2Session, number>();
  private closing = false;

  constructor(private readonly options: Http2FrontOptions) {
    // ws and Node used where they do not document it (ws-adapter shapes 6 and 7): checked once, here.
    const shapes = checkHttp2Shapes();
    for (const problem of shapes.problems) options.limitedLog.log('ws_adapter', 'warn', problem);
    // Each stream may hold --max-buffered-bytes of outgoing frames and a receive window; the
    // session's memory bound (which refuses new streams past it) must allow that for every stream.
    const perStreamMiB = (options.maxBufferedBytes + STREAM_WINDOW) / (1024 * 1024);
    this.server = createServer({
      settings: {
        enableConnectProtocol: shapes.extendedConnect,
        maxConcurrentStreams: options.maxStreams,
        maxHeaderListSize: options.maxHeaderSize,
        initialWindowSize: STREAM_WINDOW,
      },
      maxSessionMemory: Math.ceil(10 + perStreamMiB * options.maxStreams),
      maxHeaderListPairs: 256,
    });
    this.server.on('session', this.sessionOpened);
    this.server.on('stream', this.streamOpened);
  }

  /** HTTP/2 connections open now. */
  get sessionCount(): number {
    return this.sessions.size;
  }

  /**
   * Puts the HTTP/2 server in front of `server`'s own handling of new connections: cleartext
   * connections are told apart by their first bytes, TLS ones by ALPN.
   */
  attach(server: HttpServer, tls: boolean): void {
    const event = tls ? 'secureConnection' : 'connection';
    const http1 = server.listeners(event) as Array<(socket: Socket) => void>;
    server.removeAllListeners(event);
    if (tls) {
      server.on(event, (socket: TLSSocket) => {
        if (socket.alpnProtocol === 'h2') this.takeOver(socket);
        else for (const listener of http1) listener.call(server, socket);
      });
    } else {
      server.on(event, (socket: Socket) => this.sniff(socket, server, http1));
    }
  }

  /**
   * Reads a cleartext connection's first bytes: the HTTP/2 preface (24 bytes), or the first byte
   * that differs from it (an HTTP/1.1 request line), decides. The bytes are put back, so the
   * chosen server reads the connection from its first byte.
   */
  private sniff(socket: Socket, server: HttpServer, http1: Array<(socket: Socket) => void>): void {
    let seen: Buffer | undefined;
    const stop = (): void => {
      clearTimeout(timer);
      socket.removeListener('data', onData);
      socket.removeListener('error', ignoreError);
    };
    const onData = (chunk: Buffer): void => {
      seen = seen === undefined ? chunk : Buffer.concat([seen, chunk]);
      const compared = Math.min(seen.length, PREFACE.length);
      const http2 = seen.compare(PREFACE, 0, compared, 0, compared) === 0;
      if (http2 && seen.length < PREFACE.length) return;
      stop();
      socket.pause();
      socket.unshift(seen);
      if (http2) {
        this.takeOver(socket);
      } else {
        for (const listener of http1) listener.call(server, socket);
        process.nextTick(resumeSocket, socket);
      }
    };
    const timer = setTimeout(() => {
      stop();
      this.options.onClientError(
        Object.assign(new Error('no request within the handshake timeout'), {
          code: 'ERR_HTTP_REQUEST_TIMEOUT',
        }),
        socket,
      );
    }, this.options.handshakeTimeoutMs);
    timer.unref();
    socket.on('error', ignoreError);
    socket.once('close', stop);
    socket.on('data', onData);
  }

  private takeOver(socket: Socket): void {
    // The HTTP/1.1 server accepted this socket half-open (an HTTP/1.1 client may send FIN and
    // still read the answer). An HTTP/2 connection whose peer has sent FIN is over: without this
    // the session would never see its socket close (Node's own HTTP/2 server accepts sockets with
    // allowHalfOpen false).
    socket.allowHalfOpen = false;
    this.server.emit('connection', socket);
  }

  private readonly sessionOpened = (session: ServerHttp2Session): void => {
    this.sessions.add(session);
    this.openStreams.set(session, 0);
    this.options.stats.http2Sessions++;
    // The connection window is shared by every stream: sized so that a stream whose reader has
    // stalled (its own window full) never stalls the others (RFC 9113 §5.2).
    session.on('connect', () => session.setLocalWindowSize(STREAM_WINDOW * (this.options.maxStreams + 1)));
    session.on('error', (error: Error & { code?: string }) => {
      const socket = session.socket;
      const peer = formatPeer(socket?.remoteAddress, socket?.remotePort);
      this.options.limitedLog.log(
        'http2_session_error',
        'warn',
        `HTTP/2 connection from ${peer} failed: ${error.message}${error.code ? ` (${error.code})` : ''}`,
        { remote_addr: peer, http_version: '2' },
      );
    });
    session.on('close', () => {
      this.sessions.delete(session);
      this.openStreams.delete(session);
    });
    // A connection that carries no stream for the handshake timeout is closed (GOAWAY), as an
    // HTTP/1.1 connection that sends no request is; one carrying WebSockets is never idle-closed here.
    session.setTimeout(this.options.handshakeTimeoutMs, () => {
      if ((this.openStreams.get(session) ?? 0) === 0) session.close();
    });
  };

  private readonly streamOpened = (
    stream: ServerHttp2Stream,
    headers: IncomingHttpHeaders,
    _flags: number,
    rawHeaders: string[],
  ): void => {
    const session = stream.session as ServerHttp2Session | undefined;
    if (session !== undefined) {
      this.openStreams.set(session, (this.openStreams.get(session) ?? 0) + 1);
      stream.once('close', () => {
        const open = this.openStreams.get(session);
        if (open !== undefined) this.openStreams.set(session, open - 1);
      });
    }
    // A stream reset by the client must not become an unhandled 'error'.
    stream.on('error', ignoreError);
    markStreamPeer(stream);
    if (headers[':method'] === 'CONNECT') this.options.onConnect(stream, headers);
    else this.options.onRequest(...compatPairOf(stream, headers, rawHeaders));
    // A connection opened while this server drains (issue 17): its first request gets today's
    // answer (an extended CONNECT: 503 + Retry-After, as an HTTP/1.1 upgrade does), then GOAWAY
    // (RFC 9113 §6.8), so the client or proxy opens its next stream elsewhere; cutting the TCP
    // connection instead would tell it nothing.
    if (this.closing && session !== undefined && !session.closed) {
      session.close();
      this.options.stats.http2GoAways++;
    }
  };

  /**
   * Shutdown, first step: GOAWAY on every HTTP/2 connection (RFC 9113 §6.8; no new stream is
   * accepted), each closing once its streams have ended; a connection opened after this gets an
   * answer to its first request, then GOAWAY too (see streamOpened).
   */
  goAway(): void {
    this.closing = true;
    for (const session of this.sessions) {
      if (!session.closed) {
        session.close();
        this.options.stats.http2GoAways++;
      }
    }
  }

  /** Shutdown, last step: connections still open (a stream that never ended) are cut. */
  destroyAll(): void {
    this.closing = true;
    for (const session of this.sessions) session.destroy(undefined, constants.NGHTTP2_NO_ERROR);
  }
}

function resumeSocket(socket: Socket): void {
  socket.resume();
}
