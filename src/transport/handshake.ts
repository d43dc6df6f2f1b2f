import type { IncomingMessage } from 'node:http';
import { STATUS_CODES } from 'node:http';
import type { IncomingHttpHeaders, ServerHttp2Stream } from 'node:http2';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { type PerMessageDeflateOptions, type ServerOptions, type WebSocket, WebSocketServer } from 'ws';
import type { RateLimitedLog } from '../log.js';
import type { AuthFailureReason, RejectReason, Stats } from '../stats.js';
import { formatPeer } from './address.js';
import { offeredServerWindowBits, validDeflateOffers } from './compression.js';
import { Connection } from './connection.js';
import { countKnobs, type Http2RequestView } from './fault-injection.js';
import { isHttp2Stream, respondOnStream } from './http2.js';
import type { Admission, UpgradeGate } from './upgrade-gate.js';
import { type HandshakeAnswer, handleUpgradeOverStream } from './ws-adapter.js';

export type AdmittedUpgrade = Extract<Admission, { ok: true }>;
type RefusedUpgrade = Extract<Admission, { ok: false }>;

export interface HandshakeOptions {
  readonly maxMessageSize: number;
  /** Fragment and pending-read count limits (see receive-limits.ts). */
  readonly maxFragments: number;
  readonly maxBufferedChunks: number;
  /** permessage-deflate options as negotiable, or false. */
  readonly perMessageDeflate: PerMessageDeflateOptions | false;
  readonly gate: UpgradeGate;
  readonly stats: Stats;
  readonly limitedLog: RateLimitedLog;
  /** Subprotocols the server speaks (Sec-WebSocket-Protocol): 'wshub.v1' with room history (issue 16). */
  readonly subprotocols?: readonly string[];
  /** An upgrade is complete: the connection is open (its socket handed over, its receiver set up). */
  readonly accept: (connection: Connection, admission: AdmittedUpgrade) => void;
}

/**
 * The WebSocket handshake (RFC 6455 §4.2): admits or refuses each upgrade request (the
 * gate decides; refusals are answered, counted and logged here), lets ws complete the
 * admitted ones (negotiating permessage-deflate, RFC 7692) into a `Connection`, and answers
 * requests Node's HTTP parser refused (431, 408, 400).
 */
export class Handshake {
  private readonly wss: WebSocketServer;
  /** With --compression: negotiates for clients that ask for a smaller server window than ours. */
  private readonly smallWindowWss: WebSocketServer | undefined;
  /** The admitted upgrade ws is completing (see `upgraded`). */
  private upgrading: AdmittedUpgrade | undefined = undefined;

  constructor(private readonly options: HandshakeOptions) {
    const serverOptions = (perMessageDeflate: PerMessageDeflateOptions | false): ServerOptions => ({
      noServer: true,
      clientTracking: false,
      maxPayload: options.maxMessageSize,
      maxFragments: options.maxFragments,
      maxBufferedChunks: options.maxBufferedChunks,
      perMessageDeflate,
      // ws completes the handshake and hands the socket to Connection#setSocket (ws-adapter shape 1).
      WebSocket: Connection as unknown as typeof WebSocket,
      handleProtocols: this.selectProtocol,
    });
    const deflate = options.perMessageDeflate;
    this.wss = new WebSocketServer(serverOptions(deflate));
    // ws refuses the whole handshake (400) when a client's server_max_window_bits is below the
    // server's; RFC 7692 lets the server use what the client asked for, which costs even less memory.
    this.smallWindowWss = deflate
      ? new WebSocketServer(serverOptions({ ...deflate, serverMaxWindowBits: undefined }))
      : undefined;
  }

  /** RFC 6455 §4.2.2: the first protocol the client offers that the server speaks; none otherwise (raw frames). */
  private readonly selectProtocol = (offered: Set<string>): string | false => {
    for (const protocol of offered) if (this.options.subprotocols?.includes(protocol)) return protocol;
    return false;
  };

  private serverFor(request: IncomingMessage): WebSocketServer {
    const deflate = this.options.perMessageDeflate;
    const maxWindowBits = deflate ? deflate.serverMaxWindowBits : undefined;
    if (this.smallWindowWss === undefined || typeof maxWindowBits !== 'number') return this.wss;
    const asked = offeredServerWindowBits(request.headers['sec-websocket-extensions']);
    return asked !== undefined && asked < maxWindowBits ? this.smallWindowWss : this.wss;
  }

  /** The 'upgrade' listener of the HTTP server (and, through handleExtendedConnect, of HTTP/2 CONNECTs). */
  readonly handleUpgrade = (request: IncomingMessage, socket: Duplex, head: Buffer): void => {
    const admission = this.options.gate.admit(request);
    if (!admission.ok) {
      this.refuseAdmission(socket, admission);
      return;
    }
    if (admission.token !== undefined) {
      this.authenticateThenUpgrade(request, socket, head, admission);
      return;
    }
    this.completeUpgrade(request, socket, head, admission);
  };

  /**
   * --auth=jwt (issue 15): the token is verified (asynchronously: signatures, maybe a JWKS
   * fetch), then the gate decides the rest and ws completes the upgrade in one synchronous
   * step, so the connection counts stay exact (ARCHITECTURE.md "Admission and keepalive").
   * An HTTP/2 stream goes the same way: its refusals are HTTP/2 responses (rejectUpgrade).
   */
  private authenticateThenUpgrade(
    request: IncomingMessage,
    socket: Duplex,
    head: Buffer,
    admission: AdmittedUpgrade,
  ): void {
    // Node's HTTP server removed its own 'error' listener when it handed the socket over.
    socket.on('error', ignoreSocketError);
    const gate = this.options.gate;
    gate.authenticate(admission).then((verification) => {
      socket.removeListener('error', ignoreSocketError);
      // The client went away while its token was being verified: nothing to answer.
      if (socket.destroyed || !socket.writable) {
        gate.abandon(verification);
        socket.destroy();
        return;
      }
      const decided = gate.admitAuthenticated(admission, verification);
      if (decided.ok) this.completeUpgrade(request, socket, head, decided);
      else this.refuseAdmission(socket, decided);
    });
  }

  private completeUpgrade(
    request: IncomingMessage,
    socket: Duplex,
    head: Buffer,
    admission: AdmittedUpgrade,
  ): void {
    if (this.options.perMessageDeflate) declineInvalidDeflateOffers(request);
    this.upgrading = admission;
    if (isHttp2Stream(socket)) {
      handleUpgradeOverStream(
        this.serverFor(request),
        request,
        socket,
        answerOnStream(socket),
        this.upgraded,
      );
    } else {
      this.serverFor(request).handleUpgrade(request, socket, head, this.upgraded);
    }
    // ws completes an upgrade synchronously; if it did not call back, it refused the
    // request itself (e.g. a malformed Sec-WebSocket-Protocol) or the socket was gone.
    if (this.upgrading !== undefined) {
      this.upgrading = undefined;
      this.options.gate.notOpened(admission);
      this.countRefusal(socket, 'bad_handshake', 400, 'refused by the WebSocket library');
    }
  }

  /** A refusal of the gate; one of the access policy is counted in wshub_auth_failures_total too. */
  private refuseAdmission(socket: Duplex, refused: RefusedUpgrade): void {
    if (refused.faults !== undefined) countKnobs(this.options.stats, refused.faults);
    if (refused.authFailure !== undefined) this.options.stats.authFailures[refused.authFailure]++;
    this.refuse(socket, refused.reason, refused.status, refused.detail, refused.headers, refused.authFailure);
  }

  /**
   * An extended CONNECT on an HTTP/2 stream (RFC 8441 §4, --http2). It is admitted and
   * negotiated exactly as an HTTP/1.1 upgrade: the same gate (path, draining, version, origin,
   * limits, faults) and ws's own negotiation (permessage-deflate from `sec-websocket-extensions`),
   * given the request as HTTP/1.1 would carry it. The answer is a 200 (or the refusal's status)
   * on the stream, and the stream then carries RFC 6455 frames.
   */
  readonly handleExtendedConnect = (stream: ServerHttp2Stream, headers: IncomingHttpHeaders): void => {
    if (headers[':protocol'] !== 'websocket') {
      this.refuse(
        stream,
        'bad_handshake',
        400,
        'an extended CONNECT must carry :protocol websocket (RFC 8441)',
      );
      return;
    }
    this.handleUpgrade(http1ViewOf(stream, headers), stream, EMPTY_HEAD);
  };

  /**
   * ws's upgrade callback: one function for every upgrade, no closure per handshake. It gets
   * the admission from `upgrading`, which holds it only while ws completes the upgrade.
   */
  private readonly upgraded = (ws: WebSocket): void => {
    const admission = this.upgrading;
    if (admission === undefined) return;
    this.upgrading = undefined;
    this.options.accept(ws as unknown as Connection, admission);
  };

  /**
   * The 'clientError' listener of the HTTP server: a request that never became a
   * complete, parseable request (too-large headers, no request within the
   * handshake timeout, malformed HTTP). Answered as Node would, counted and logged.
   */
  readonly handleClientError = (error: Error & { code?: string }, socket: Duplex): void => {
    const answer = CLIENT_ERROR_ANSWERS[error.code ?? ''];
    if (answer === undefined && (error.code === 'ECONNRESET' || error.code === 'EPIPE')) {
      socket.destroy();
      return;
    }
    const { reason, status, detail } = answer ?? {
      reason: 'bad_request',
      status: 400,
      detail: 'malformed HTTP request',
    };
    if ((socket as Socket).bytesWritten > 0) {
      // A response is already under way on this connection: it cannot carry another.
      this.countRefusal(socket, reason, status, detail);
      socket.destroy();
      return;
    }
    this.refuse(socket, reason, status, detail);
  };

  /** Answers a refused upgrade with `status`, counts it under `reason` and logs it (rate-limited). */
  private refuse(
    socket: Duplex,
    reason: RejectReason,
    status: number,
    detail: string,
    headers?: Readonly<Record<string, string>>,
    authFailure?: AuthFailureReason,
  ): void {
    this.countRefusal(socket, reason, status, detail, authFailure);
    rejectUpgrade(socket, status, headers, detail);
  }

  /** Counts and logs a refusal; the detail never carries the token (auth/verifier.ts words it). */
  private countRefusal(
    socket: Duplex,
    reason: RejectReason,
    status: number,
    detail: string,
    authFailure?: AuthFailureReason,
  ): void {
    this.options.stats.upgradesRejected[reason]++;
    const { remoteAddress, remotePort } = socket as Socket;
    const peer = formatPeer(remoteAddress, remotePort);
    const why = authFailure === undefined ? reason : `${reason}/${authFailure}`;
    this.options.limitedLog.log(
      `upgrade_${authFailure ?? reason}`,
      'warn',
      `WebSocket upgrade refused: ${peer} ${status} ${why} (${detail})`,
      { remote_addr: peer, status, reason, auth_failure: authFailure },
    );
  }
}

/** Leaves only valid permessage-deflate offers in the request for ws to negotiate (see validDeflateOffers). */
function declineInvalidDeflateOffers(request: IncomingMessage): void {
  const header = request.headers['sec-websocket-extensions'];
  if (header === undefined) return;
  const valid = validDeflateOffers(header);
  if (valid === undefined) delete request.headers['sec-websocket-extensions'];
  else request.headers['sec-websocket-extensions'] = valid;
}

/** Node's clientError codes (lib/_http_server.js) and how each is answered. */
const CLIENT_ERROR_ANSWERS: Readonly<
  Record<string, { readonly reason: RejectReason; readonly status: number; readonly detail: string }>
> = {
  HPE_HEADER_OVERFLOW: { reason: 'header_too_large', status: 431, detail: 'request headers too large' },
  ERR_HTTP_REQUEST_TIMEOUT: {
    reason: 'handshake_timeout',
    status: 408,
    detail: 'no complete request within the handshake timeout',
  },
};

// A refused client may reset the connection while its answer is written; the
// socket is destroyed either way, and the error must not go unhandled.
function ignoreSocketError(): void {}

const EMPTY_HEAD = Buffer.alloc(0);
/**
 * RFC 8441 §5: no Sec-WebSocket-Key over HTTP/2. ws's handshake needs one to compute an accept
 * value that is then dropped with the rest of the HTTP/1.1-only answer (ws-adapter.ts).
 */
const UNUSED_KEY = 'AAAAAAAAAAAAAAAAAAAAAA==';

/**
 * An extended CONNECT as the HTTP/1.1 upgrade request it stands for (RFC 8441 §5: the same
 * path, query and header fields; GET + Upgrade instead of CONNECT + :protocol). Its `socket` is
 * the stream, which carries the client's address (markStreamPeer).
 */
function http1ViewOf(stream: ServerHttp2Stream, h2Headers: IncomingHttpHeaders): IncomingMessage {
  const headers: Record<string, string | string[] | undefined> = {};
  for (const [name, value] of Object.entries(h2Headers)) if (!name.startsWith(':')) headers[name] = value;
  headers.host = h2Headers[':authority'] ?? headers.host;
  headers.upgrade = 'websocket';
  headers.connection = 'Upgrade';
  headers['sec-websocket-key'] = UNUSED_KEY;
  return {
    method: 'GET',
    url: h2Headers[':path'] ?? '/',
    httpVersion: '2.0',
    headers,
    socket: stream,
    // For ?hello (fault-injection.ts describeRequest): the fields as received, and where TLS is.
    receivedHeaders: h2Headers,
    connectionSocket: stream.session?.socket,
  } satisfies Http2RequestView & Record<string, unknown> as unknown as IncomingMessage;
}

/** ws's handshake answer, on an HTTP/2 stream: its 101 becomes a 200 (RFC 8441 §5), a refusal keeps its status. */
function answerOnStream(stream: ServerHttp2Stream): (reply: HandshakeAnswer) => void {
  return (reply) => {
    if (reply.status === 101) {
      if (!stream.destroyed && !stream.headersSent) stream.respond({ ':status': 200, ...reply.headers });
    } else {
      respondOnStream(stream, reply.status, reply.headers, reply.body);
    }
  };
}

/** Answers a refused upgrade with a plain HTTP response and closes the socket. */
export function rejectUpgrade(
  socket: Duplex,
  status: number,
  headers: Readonly<Record<string, string>> = {},
  detail?: string,
): void {
  if (isHttp2Stream(socket)) {
    // The HTTP/2 connection stays: only this stream is answered and ended.
    respondOnStream(
      socket,
      status,
      headers,
      `${status} ${STATUS_CODES[status] ?? ''}${detail ? `: ${detail}` : ''}\n`,
    );
    return;
  }
  socket.on('error', ignoreSocketError);
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  const body = `${status} ${STATUS_CODES[status] ?? ''}${detail ? `: ${detail}` : ''}\n`;
  const lines = [
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}`,
    'Connection: close',
    'Content-Type: text/plain; charset=utf-8',
    `Content-Length: ${Buffer.byteLength(body)}`,
    ...Object.entries(headers).map(([name, value]) => `${name}: ${value}`),
  ];
  // As ws's abortHandshake does: once the answer is flushed the socket is destroyed,
  // so a client that never closes its side cannot hold the descriptor open.
  socket.once('finish', socket.destroy);
  socket.end(`${lines.join('\r\n')}\r\n\r\n${body}`);
}
