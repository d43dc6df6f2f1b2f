import type { IncomingMessage } from 'node:http';
import { STATUS_CODES } from 'node:http';
import type { IncomingHttpHeaders, ServerHttp2Stream } from 'node:http2';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { type PerMessageDeflateOptions, type ServerOptions, WebSocket, WebSocketServer } from 'ws';
import type { Position } from '../history/history.js';
import type { Hub } from '../hub/hub.js';
import type { Logger, RateLimitedLog } from '../log.js';
import type { DisconnectReason, RejectReason, Stats } from '../stats.js';
import { formatPeer } from './address.js';
import {
  offeredServerWindowBits,
  sharedDeflateOptions,
  sharedDeflateWindowBits,
  validDeflateOffers,
} from './compression.js';
import { Connection, type ConnectionOwner, connectionFields, type FaultState } from './connection.js';
import { describeFaults, type FaultPlan, MAX_DELAYED_MESSAGES } from './fault-injection.js';
import { isHttp2Stream, respondOnStream } from './http2.js';
import { Keepalive, type KeepaliveOptions } from './keepalive.js';
import { directWriteFd, Outbound } from './outbound.js';
import type { Admission, UpgradeGate } from './upgrade-gate.js';
import { type HandshakeAnswer, handleUpgradeOverStream, installReceiverGuard } from './ws-adapter.js';

type AdmittedUpgrade = Extract<Admission, { ok: true }>;

export interface TransportOptions {
  readonly maxMessageSize: number;
  /** --max-buffered-bytes: past it a client is too slow and is closed with 1008. */
  readonly maxBufferedBytes: number;
  /** Fragment and pending-read count limits (see receive-limits.ts). */
  readonly maxFragments: number;
  readonly maxBufferedChunks: number;
  /** permessage-deflate options when --compression is on, else false. */
  readonly perMessageDeflate: PerMessageDeflateOptions | false;
  readonly keepalive: KeepaliveOptions;
  readonly hub: Hub;
  readonly gate: UpgradeGate;
  readonly stats: Stats;
  readonly logger: Logger;
  readonly limitedLog: RateLimitedLog;
  /** Who this process is, for the ?hello fault-injection message. */
  readonly instance?: InstanceInfo;
  /** Subprotocols the server speaks (Sec-WebSocket-Protocol): 'wshub.v1' with room history (issue 16). */
  readonly subprotocols?: readonly string[];
}

export interface InstanceInfo {
  readonly hostname: string;
  /** Random per process start, so a restarted pod with the same name is told apart. */
  readonly id: string;
  readonly version: string;
}

/**
 * ws error codes (lib/receiver.js, lib/permessage-deflate.js) mapped to why the
 * connection ended. ws has already chosen the close code (RFC 6455 §7.4.1):
 * 1009 for size, 1007 for invalid UTF-8 and undecompressable data, 1008 for
 * the fragment and chunk counts, 1002 for every other protocol error.
 */
const WS_ERROR_REASONS: Readonly<Record<string, DisconnectReason>> = {
  WS_ERR_UNSUPPORTED_MESSAGE_LENGTH: 'message_too_large',
  WS_ERR_UNSUPPORTED_DATA_PAYLOAD_LENGTH: 'message_too_large',
  WS_ERR_INVALID_UTF8: 'invalid_utf8',
};

export function disconnectReasonOf(error: Error & { code?: string }): DisconnectReason {
  const code = error.code ?? '';
  const known = WS_ERROR_REASONS[code];
  if (known !== undefined) return known;
  // ws reports both count limits with one code; its messages tell them apart
  // (test/limits.test.ts fails if a ws upgrade changes them).
  if (code === 'WS_ERR_TOO_MANY_BUFFERED_PARTS') {
    return /chunks/i.test(error.message) ? 'too_many_buffered_chunks' : 'too_many_fragments';
  }
  // zlib's own codes (Z_DATA_ERROR, Z_BUF_ERROR, ...): the compressed payload is corrupt.
  if (code.startsWith('Z_')) return 'invalid_compressed_data';
  return 'protocol_error';
}

/**
 * Accepts WebSocket upgrades that the gate admits, tracks every open
 * connection, and hands messages to the hub.
 */
export class WebSocketTransport implements ConnectionOwner {
  readonly connections = new Set<Connection>();
  private readonly wss: WebSocketServer;
  private readonly outbound: Outbound;
  /** With --compression: negotiates for clients that ask for a smaller server window than ours. */
  private readonly smallWindowWss: WebSocketServer | undefined;
  private nextId = 1;
  /** The admitted upgrade ws is completing (see `upgraded`). */
  private upgrading: AdmittedUpgrade | undefined = undefined;
  private allClosedWaiters: Array<() => void> = [];
  readonly keepalive: Keepalive;

  constructor(readonly options: TransportOptions) {
    // Before any connection exists: ws's receiver must drop data once it has failed (issue 14).
    installReceiverGuard(options.logger);
    this.keepalive = new Keepalive(options.keepalive, this.connections, options.stats, options.limitedLog);
    const serverOptions = (perMessageDeflate: PerMessageDeflateOptions | false): ServerOptions => ({
      noServer: true,
      clientTracking: false,
      maxPayload: options.maxMessageSize,
      maxFragments: options.maxFragments,
      maxBufferedChunks: options.maxBufferedChunks,
      perMessageDeflate,
      WebSocket: Connection,
      handleProtocols: this.selectProtocol,
    });
    this.outbound = new Outbound({
      stats: options.stats,
      maxBufferedBytes: options.maxBufferedBytes,
      onSlowConsumer: (target, buffered) => this.slowConsumer(target as Connection, buffered),
      deflateThreshold: options.perMessageDeflate ? options.perMessageDeflate.threshold : undefined,
      deflateOptions: sharedDeflateOptions(options.perMessageDeflate),
    });
    this.wss = new WebSocketServer(serverOptions(options.perMessageDeflate));
    // ws refuses the whole handshake (400) when a client's server_max_window_bits is below the
    // server's; RFC 7692 lets the server use what the client asked for, which costs even less memory.
    this.smallWindowWss = options.perMessageDeflate
      ? new WebSocketServer(serverOptions({ ...options.perMessageDeflate, serverMaxWindowBits: undefined }))
      : undefined;
  }

  /** RFC 6455 §4.2.2: the first protocol the client offers that the server speaks; none otherwise (raw frames). */
  private readonly selectProtocol = (offered: Set<string>): string | false => {
    for (const protocol of offered) if (this.options.subprotocols?.includes(protocol)) return protocol;
    return false;
  };

  private serverFor(request: IncomingMessage): WebSocketServer {
    const maxWindowBits = this.options.perMessageDeflate
      ? this.options.perMessageDeflate.serverMaxWindowBits
      : undefined;
    if (this.smallWindowWss === undefined || typeof maxWindowBits !== 'number') return this.wss;
    const asked = offeredServerWindowBits(request.headers['sec-websocket-extensions']);
    return asked !== undefined && asked < maxWindowBits ? this.smallWindowWss : this.wss;
  }

  /** The 'upgrade' listener of the HTTP server. */
  readonly handleUpgrade = (request: IncomingMessage, socket: Duplex, head: Buffer): void => {
    const admission = this.options.gate.admit(request);
    if (!admission.ok) {
      this.refuse(socket, admission.reason, admission.status, admission.detail, admission.headers);
      return;
    }
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
      this.countRefusal(socket, 'bad_handshake', 400, 'refused by the WebSocket library');
    }
  };

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
  private readonly upgraded = (ws: WebSocket, request: IncomingMessage): void => {
    const admission = this.upgrading;
    if (admission === undefined) return;
    this.upgrading = undefined;
    const connection = ws as Connection;
    this.accept(connection, request.socket, admission.route.room, admission.clientAddress, admission.since);
    if (admission.faults !== undefined) this.startFaults(connection, admission.faults);
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
  ): void {
    this.countRefusal(socket, reason, status, detail);
    rejectUpgrade(socket, status, headers, detail);
  }

  private countRefusal(socket: Duplex, reason: RejectReason, status: number, detail: string): void {
    this.options.stats.upgradesRejected[reason]++;
    const { remoteAddress, remotePort } = socket as Socket;
    const peer = formatPeer(remoteAddress, remotePort);
    this.options.limitedLog.log(
      `upgrade_${reason}`,
      'warn',
      `WebSocket upgrade refused: ${peer} ${status} ${reason} (${detail})`,
      { remote_addr: peer, status, reason },
    );
  }

  // Nothing of the upgrade request is kept: the connection holds only what it needs later.
  private accept(
    connection: Connection,
    socket: Duplex,
    room: string,
    clientAddress: string,
    since: Position | undefined,
  ): void {
    connection.id = this.nextId++;
    connection.room = room;
    connection.clientAddress = clientAddress;
    connection.owner = this;
    connection.outbound = this.outbound;
    // permessage-deflate without server context takeover: a broadcast is compressed once per
    // server window and shared; with context takeover the bytes differ per connection and ws frames them.
    const deflateBits = connection.extensions === '' ? 0 : sharedDeflateWindowBits(connection);
    connection.deflateWindowBits = deflateBits ?? 0;
    connection.framedSocket = deflateBits === undefined ? undefined : socket;
    connection.framedFd = deflateBits === undefined ? -1 : directWriteFd(socket);
    this.connections.add(connection);
    this.options.gate.opened(clientAddress);
    this.keepalive.track(connection);
    this.options.stats.connectionsTotal++;
    this.options.stats.connectionsByHttpVersion[connection.httpVersion]++;
    const fields = connectionFields(connection);
    this.options.logger.info(`WebSocket connected: ${fields.remote_addr}`, fields);
    this.options.hub.join(connection, since);
  }

  receive(connection: Connection, data: Buffer, isBinary: boolean): void {
    const stats = this.options.stats;
    connection.messagesReceived++;
    stats.messagesReceived++;
    stats.bytesReceived += data.length;
    if (connection.faults === undefined) this.options.hub.receive(connection, data, isBinary);
    else this.receiveWithFaults(connection, connection.faults, data, isBinary);
  }

  /** Faults that act at once: ?hello, and ?close / ?drop with &immediately. */
  private startFaults(connection: Connection, faults: FaultPlan): void {
    // Only a plan that acts on messages needs the slower receive path.
    if (faults.delayMs > 0 || (!faults.immediately && (faults.close !== undefined || faults.drop))) {
      connection.faults = { plan: faults, delayedMessages: 0, delayedBytes: 0 };
    }
    const fields = connectionFields(connection);
    this.options.logger.info(`Fault injection for ${connection.peer}: ${describeFaults(faults)}`, fields);
    if (faults.hello) {
      const instance = this.options.instance;
      connection.send(
        JSON.stringify({
          type: 'hello',
          hostname: instance?.hostname,
          instance: instance?.id,
          version: instance?.version,
          connection_id: connection.id,
          room: connection.room,
          remote_addr: connection.peer,
          client_address: connection.clientAddress,
        }),
      );
    }
    if (faults.immediately) this.injectEnd(connection, faults);
  }

  private receiveWithFaults(
    connection: Connection,
    state: FaultState,
    data: Buffer,
    isBinary: boolean,
  ): void {
    const faults = state.plan;
    if (faults.drop) {
      this.injectEnd(connection, faults);
      return;
    }
    if (faults.delayMs === 0) {
      this.options.hub.receive(connection, data, isBinary);
      if (faults.close !== undefined) this.injectEnd(connection, faults);
      return;
    }
    // Held messages are bounded like an outbound queue: by count and by --max-buffered-bytes.
    const maxBytes = this.options.maxBufferedBytes;
    if (
      state.delayedMessages >= MAX_DELAYED_MESSAGES ||
      (state.delayedBytes > 0 && state.delayedBytes + data.length > maxBytes)
    ) {
      this.options.limitedLog.log(
        'fault_injection',
        'warn',
        `Closing ${connection.peer} with 1008: more than ${MAX_DELAYED_MESSAGES} messages or ${maxBytes} bytes waiting on ?delay`,
        { ...connectionFields(connection), reason: 'fault_injection' },
      );
      connection.closeBecause('fault_injection', 1008, 'too much waiting on ?delay');
      return;
    }
    state.delayedMessages++;
    state.delayedBytes += data.length;
    // Timers of equal delay fire in the order they were set, so the order of messages is kept.
    setTimeout(() => {
      state.delayedMessages--;
      state.delayedBytes -= data.length;
      if (connection.readyState !== WebSocket.OPEN) return;
      this.options.hub.receive(connection, data, isBinary);
      if (faults.close !== undefined) this.injectEnd(connection, faults);
    }, faults.delayMs).unref();
  }

  /** Ends the connection as the client asked: a close frame with its code, or a dropped TCP connection. */
  private injectEnd(connection: Connection, faults: FaultPlan): void {
    if (connection.readyState !== WebSocket.OPEN) return;
    if (faults.drop) {
      // Frames corked for this turn are discarded with the socket: that is what a cut connection does.
      connection.terminateBecause('fault_injection');
    } else if (faults.close !== undefined) {
      connection.closeBecause('fault_injection', faults.close.code, faults.close.reason);
    }
  }

  closed(connection: Connection, code: number): void {
    if (!this.connections.delete(connection)) return;
    // A failed write is found here, on the stream, rather than by an 'error' listener on every socket.
    const socketError = connection.socketError;
    if (socketError !== null) this.socketFailed(connection, socketError);
    this.options.gate.closed(connection.clientAddress);
    const stats = this.options.stats;
    stats.disconnectionsTotal++;
    if (connection.serverCloseReason !== undefined) stats.serverDisconnects[connection.serverCloseReason]++;
    this.options.hub.leave(connection);
    const peer = connection.peer;
    this.options.logger.info(`WebSocket disconnected: ${peer}`, {
      remote_addr: peer,
      conn_id: connection.id,
      room: connection.room,
      http_version: connection.httpVersion,
      close_code: code,
      reason: connection.serverCloseReason,
    });
    if (this.connections.size === 0) {
      const waiters = this.allClosedWaiters;
      this.allClosedWaiters = [];
      for (const resolve of waiters) resolve();
    }
  }

  failed(connection: Connection, error: Error & { code?: string }): void {
    const reason = disconnectReasonOf(error);
    connection.serverCloseReason ??= reason;
    this.options.limitedLog.log(
      reason,
      'warn',
      `WebSocket error from ${connection.peer}: ${error.message}${error.code ? ` (${error.code})` : ''}`,
      { ...connectionFields(connection), reason },
    );
  }

  /** The socket ended with an error (ws destroyed it); a failed write is the server's cut. */
  private socketFailed(connection: Connection, error: NodeJS.ErrnoException): void {
    if (error.syscall !== 'write') return;
    connection.serverCloseReason ??= 'write_error';
    this.options.limitedLog.log(
      'write_error',
      'warn',
      `WebSocket write to ${connection.peer} failed: ${error.code ?? error.message}; removing the client`,
      { ...connectionFields(connection), reason: 'write_error' },
    );
  }

  /** The outbound path refused a message for this connection: it cannot keep up. */
  private slowConsumer(connection: Connection, buffered: number): void {
    this.options.limitedLog.log(
      'slow_consumer',
      'warn',
      `Closing slow consumer ${connection.peer} with 1008: ${buffered} bytes waiting to be sent, limit ${this.options.maxBufferedBytes} (--max-buffered-bytes); message dropped`,
      { ...connectionFields(connection), reason: 'slow_consumer', buffered_bytes: buffered },
    );
    connection.closeBecause('slow_consumer', 1008, 'slow consumer: outbound buffer limit exceeded');
  }

  ponged(connection: Connection): void {
    this.keepalive.ponged(connection);
  }

  /** Resolves once no connection is open. */
  allClosed(): Promise<void> {
    if (this.connections.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.allClosedWaiters.push(resolve));
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
  } as unknown as IncomingMessage;
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
