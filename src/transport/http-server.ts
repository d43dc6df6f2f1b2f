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
  const routes = options.routes;
  const handlePlainRequest = (request: IncomingMessage, response: ServerResponse): void => {
    const route = routes?.get(pathOf(request.url));
    if (route !== undefined) route(request, response);
    else answerUpgradeRequiredOrNotFound(request, response);
  };
  let server: Server;
  if (tls === undefined) {
    server = createServer(httpOptions, handlePlainRequest);
  } else {
    // The TLS handshake gets the same deadline as the HTTP request head.
    const httpsServer = createHttpsServer(
      { ...httpOptions, ...tls.secureContext, handshakeTimeout: timeout },
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
    const body =
      '426 Upgrade Required: this endpoint speaks WebSocket (RFC 6455); connect with a WebSocket client\n';
    response.writeHead(426, {
      Upgrade: 'websocket',
      Connection: 'Upgrade',
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
