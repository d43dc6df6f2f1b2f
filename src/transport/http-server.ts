import {
  createServer,
  type IncomingMessage,
  type Server,
  type ServerOptions,
  type ServerResponse,
} from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { Duplex } from 'node:stream';
import type { SecureContextOptions, TLSSocket, Server as TlsServer } from 'node:tls';
import { matchWebSocketPath, pathOf } from './routes.js';

/** A plain HTTP endpoint of the WebSocket port. */
export type PlainRoute = (request: IncomingMessage, response: ServerResponse) => void;

/**
 * Decides a plain (non-upgrade) GET of a WebSocket path before the 426 (`next`): with --auth=jwt
 * it answers what the upgrade would get (401/403), for browsers, which are never told why a
 * WebSocket handshake failed (issue 15).
 */
export type WebSocketPathGuard = (
  request: IncomingMessage,
  response: ServerResponse,
  room: string,
  next: () => void,
) => void;

export interface WebSocketHttpOptions {
  /** Largest request head accepted; larger ones get 431. */
  readonly maxHeaderSize: number;
  /** A connection that has not sent a complete request head by then gets 408 and is closed. */
  readonly handshakeTimeoutMs: number;
  readonly onUpgrade: (request: IncomingMessage, socket: Duplex, head: Buffer) => void;
  /** Answers (and counts) requests Node could not parse or that timed out. */
  readonly onClientError: (error: Error & { code?: string }, socket: Duplex) => void;
  /** Present: serve wss:// (an https.Server is an http.Server, so callers see one type). */
  readonly tls?: TlsServerOptions | undefined;
  /** Plain HTTP endpoints by exact path (the console, the publish API), tried before 426/404. */
  readonly routes?: ReadonlyMap<string, PlainRoute>;
  /** --http2: with TLS, ALPN offers h2 (the caller attaches an Http2Front to take those connections). */
  readonly http2?: boolean;
  /** See WebSocketPathGuard. */
  readonly guardWebSocketPath?: WebSocketPathGuard | undefined;
}

/**
 * Answers a plain request of the WebSocket port: a route in `routes`, else 426 on the WebSocket
 * path (after `guard`, when given), else 404.
 */
export function plainRequestHandler(
  routes: ReadonlyMap<string, PlainRoute> | undefined,
  guard?: WebSocketPathGuard,
): PlainRoute {
  return function handlePlainRequest(request, response) {
    const route = routes?.get(pathOf(request.url));
    if (route !== undefined) {
      route(request, response);
      return;
    }
    const match = matchWebSocketPath(pathOf(request.url));
    if (guard !== undefined && match.kind === 'websocket') {
      guard(request, response, match.route.room, () => answerUpgradeRequiredOrNotFound(request, response));
      return;
    }
    answerUpgradeRequiredOrNotFound(request, response);
  };
}

export interface TlsServerOptions {
  readonly secureContext: SecureContextOptions;
  /** Counts and logs a failed TLS handshake (Node destroys the socket itself). */
  readonly onHandshakeError: (error: Error & { code?: string }, socket: TLSSocket) => void;
  /** Receives the TLS server, to swap its certificate later (TlsReloader.attach). */
  readonly attach: (server: TlsServer) => void;
}

/**
 * The HTTP server of the WebSocket port. It serves no metrics: a plain request
 * to a path in `routes` goes there, one to the WebSocket path gets 426 (RFC 7231
 * §6.5.15, with the Upgrade header it needs), anything else 404. Upgrades go to
 * `onUpgrade`. With `tls` it serves wss://.
 *
 * Hardening of the handshake: Node's own limits do the work. `maxHeaderSize`
 * bounds the request head; `headersTimeout`/`requestTimeout` close sockets that
 * connect and never finish a request (including ones that send nothing), checked
 * often enough that the timeout holds to within a quarter of itself.
 */
export function createWebSocketHttpServer(options: WebSocketHttpOptions): Server {
  const timeout = options.handshakeTimeoutMs;
  const httpOptions: ServerOptions = {
    maxHeaderSize: options.maxHeaderSize,
    headersTimeout: timeout,
    requestTimeout: timeout,
    connectionsCheckingInterval: Math.min(1000, Math.max(25, Math.floor(timeout / 4))),
  };
  const tls = options.tls;
  const handlePlainRequest = plainRequestHandler(options.routes, options.guardWebSocketPath);
  let server: Server;
  if (tls === undefined) {
    server = createServer(httpOptions, handlePlainRequest);
  } else {
    // The TLS handshake gets the same deadline as the HTTP request head.
    const httpsServer = createHttpsServer(
      {
        ...httpOptions,
        ...tls.secureContext,
        handshakeTimeout: timeout,
        // --http2: ALPN offers h2 first (RFC 7301: the server picks); Http2Front takes those connections.
        ...(options.http2 ? { ALPNProtocols: ['h2', 'http/1.1'] } : {}),
      },
      handlePlainRequest,
    );
    // https.Server re-emits every 'tlsClientError' as 'clientError'. A failed TLS
    // handshake is counted once, as such, and never answered with HTTP.
    const failedHandshakes = new WeakSet<Duplex>();
    httpsServer.prependListener('tlsClientError', function onTlsClientError(error, socket) {
      failedHandshakes.add(socket);
      tls.onHandshakeError(error, socket);
    });
    httpsServer.on(
      'clientError',
      function onHttpsClientError(error: Error & { code?: string }, socket: Duplex) {
        if (failedHandshakes.has(socket)) socket.destroy();
        else options.onClientError(error, socket);
      },
    );
    tls.attach(httpsServer);
    server = httpsServer;
  }
  server.on('upgrade', options.onUpgrade);
  if (tls === undefined) server.on('clientError', options.onClientError);
  return server;
}

function answerUpgradeRequiredOrNotFound(request: IncomingMessage, response: ServerResponse): void {
  if (matchWebSocketPath(pathOf(request.url)).kind === 'websocket') {
    // Over HTTP/2 there is no Upgrade (RFC 9113 §8.6): a WebSocket is an extended CONNECT (RFC 8441).
    const http2 = request.httpVersion === '2.0';
    const body = http2
      ? '426 Upgrade Required: this endpoint speaks WebSocket; over HTTP/2 open it with an extended CONNECT (RFC 8441)\n'
      : '426 Upgrade Required: this endpoint speaks WebSocket (RFC 6455); connect with a WebSocket client\n';
    response.writeHead(426, {
      ...(http2 ? {} : { Upgrade: 'websocket', Connection: 'Upgrade' }),
      'Sec-WebSocket-Version': '13',
      'Content-Type': 'text/plain; charset=utf-8',
      'Content-Length': Buffer.byteLength(body),
    });
    response.end(body);
    return;
  }
  const body = '404 Not Found\n';
  response.writeHead(404, {
    'Content-Type': 'text/plain; charset=utf-8',
    'Content-Length': Buffer.byteLength(body),
  });
  response.end(body);
}
