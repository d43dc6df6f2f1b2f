import { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { TLSSocket } from 'node:tls';
import type { PerMessageDeflateOptions } from 'ws';
import type { Identity } from '../auth/claims.js';
import { describeRoom } from '../auth/patterns.js';
import { DISCONNECT, type Disconnect, type DisconnectReason } from '../disconnects.js';
import { reconnectFrame, SUBPROTOCOL_V1 } from '../history/history.js';
import type { Hub } from '../hub/hub.js';
import type { Logger, RateLimitedLog } from '../log.js';
import type { AuthFailureReason, ReconnectReason, Stats } from '../stats.js';
import { sharedDeflateOptions } from './compression.js';
import {
  type Connection,
  type ConnectionGuard,
  type ConnectionOwner,
  connectionFields,
} from './connection.js';
import { FaultActions, type InstanceInfo } from './fault-actions.js';
import { type AdmittedUpgrade, Handshake } from './handshake.js';
import { isHttp2Stream } from './http2.js';
import { Keepalive, type KeepaliveOptions, LIFETIME_JITTER } from './keepalive.js';
import { disconnectReasonOf } from './protocol-errors.js';
import type { UpgradeGate } from './upgrade-gate.js';
import { OPEN, Writer, WriterGroup } from './writer.js';
import {
  checkDescriptorShape,
  checkWsShapes,
  descriptorOf,
  installReceiverGuard,
  negotiatedDeflateWindowBits,
} from './ws-adapter.js';

export type { InstanceInfo } from './fault-actions.js';
export { rejectUpgrade } from './handshake.js';

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
  /** false: every client is receive-only (--client-publish=false). Default true. */
  readonly clientPublish?: boolean;
  /** Messages a client may send per second, bursts of as many (token bucket); 0 or absent: unlimited. */
  readonly maxMessagesPerSecond?: number;
}

/**
 * The WebSocket transport: tracks every open connection from the handshake (handshake.ts)
 * to its close, gives each its writer (writer.ts), hands messages to the hub, and turns
 * what ends a connection into one count, one log line and the gate's bookkeeping.
 */
export class WebSocketTransport implements ConnectionOwner {
  readonly connections = new Set<Connection>();
  readonly keepalive: Keepalive;
  private readonly handshake: Handshake;
  private readonly writers: WriterGroup<Connection>;
  private readonly faults: FaultActions;
  private nextId = 1;
  /** Whether a plain TCP socket has been checked for ws-adapter shape 4 (the descriptor). */
  private descriptorChecked = false;
  private allClosedWaiters: Array<() => void> = [];

  constructor(readonly options: TransportOptions) {
    // Before any connection exists: ws's receiver must drop data once it has failed (issue 14).
    installReceiverGuard(options.logger);
    const shapes = checkWsShapes();
    for (const problem of shapes.problems) options.logger.warn(problem);
    // Compression as negotiable: --compression, unless ws lacks what shared compressed frames need (ws-adapter).
    const deflate = shapes.compression ? options.perMessageDeflate : false;
    this.keepalive = new Keepalive(
      options.keepalive,
      this.connections,
      options.stats,
      options.limitedLog,
      this.lifetimeReached,
    );
    this.writers = new WriterGroup<Connection>({
      stats: options.stats,
      maxBufferedBytes: options.maxBufferedBytes,
      onSlowConsumer: (writer, buffered) => this.slowConsumer(writer.owner, buffered),
      deflateThreshold: deflate ? deflate.threshold : undefined,
      deflateOptions: sharedDeflateOptions(deflate),
    });
    this.faults = new FaultActions(options);
    this.handshake = new Handshake({ ...options, perMessageDeflate: deflate, accept: this.accept });
    this.handleUpgrade = this.handshake.handleUpgrade;
    this.handleClientError = this.handshake.handleClientError;
    this.handleExtendedConnect = this.handshake.handleExtendedConnect;
  }

  /** The 'upgrade' listener of the HTTP server. */
  readonly handleUpgrade: Handshake['handleUpgrade'];
  /** The 'clientError' listener of the HTTP server. */
  readonly handleClientError: Handshake['handleClientError'];
  /** An extended CONNECT on an HTTP/2 stream (RFC 8441, --http2). */
  readonly handleExtendedConnect: Handshake['handleExtendedConnect'];

  // Nothing of the upgrade request is kept: the connection holds only what it needs later.
  private readonly accept = (connection: Connection, admission: AdmittedUpgrade): void => {
    const clientAddress = admission.clientAddress;
    connection.id = this.nextId++;
    connection.room = admission.route.room;
    connection.clientAddress = clientAddress;
    connection.owner = this;
    const socket = connection.socket as Duplex;
    // An HTTP/2 stream (RFC 8441) is written through the stream only: its session owns the descriptor.
    const http2 = isHttp2Stream(socket);
    if (!this.descriptorChecked && socket instanceof Socket && !(socket instanceof TLSSocket)) {
      this.descriptorChecked = true;
      const problem = checkDescriptorShape(socket);
      if (problem !== undefined) this.options.logger.warn(problem);
    }
    // Every message is compressed once per server window (RFC 7692) and the frame shared.
    connection.writer = new Writer(
      this.writers,
      socket,
      http2 ? -1 : descriptorOf(socket),
      negotiatedDeflateWindowBits(connection._extensions),
      connection,
    );
    const identity = admission.identity;
    const { clientPublish = true, maxMessagesPerSecond = 0 } = this.options;
    if (identity !== undefined || !clientPublish || maxMessagesPerSecond > 0) {
      connection.guard = guardOf(connection.room, identity, clientPublish, maxMessagesPerSecond);
    }
    this.connections.add(connection);
    this.options.gate.opened(clientAddress, identity?.user);
    this.keepalive.track(connection);
    this.options.stats.connectionsTotal++;
    this.options.stats.connectionsByHttpVersion[connection.httpVersion]++;
    const fields = connectionFields(connection);
    this.options.logger.info(
      `WebSocket connected: ${fields.remote_addr}`,
      identity === undefined ? fields : { ...fields, user: identity.user },
    );
    this.options.hub.join(connection, admission.since);
    if (admission.faults !== undefined) this.faults.start(connection, admission.faults, admission.received);
  };

  receive(connection: Connection, data: Buffer, isBinary: boolean): void {
    const stats = this.options.stats;
    connection.messagesReceived++;
    stats.messagesReceived++;
    stats.bytesReceived += data.length;
    const guard = connection.guard;
    if (guard !== undefined && !this.mayDeliver(connection, guard)) return;
    if (connection.faults === undefined) this.options.hub.receive(connection, data, isBinary);
    else this.faults.receive(connection, connection.faults, data, isBinary);
  }

  /**
   * The access policy on the message path (issue 15): a connection that may not publish to
   * its room, or that sends faster than --max-messages-per-second, is closed with 1008 and
   * the message is not delivered; nor is anything it sends while that close completes.
   * Each refused message is counted.
   */
  private mayDeliver(connection: Connection, guard: ConnectionGuard): boolean {
    const refusedBefore = connection.serverCloseReason;
    if (refusedBefore === 'publish_denied' || refusedBefore === 'rate_limited') {
      this.options.stats.authFailures[refusedBefore === 'publish_denied' ? 'publish' : 'rate']++;
      return false;
    }
    if (!guard.mayPublish) {
      const why =
        this.options.clientPublish === false
          ? 'clients may not send messages (--client-publish=false)'
          : `the token's "publish" does not cover ${describeRoom(connection.room)}`;
      this.refuseMessage(connection, 'publish', DISCONNECT.publish_denied, why);
      return false;
    }
    const rate = this.options.maxMessagesPerSecond ?? 0;
    if (rate > 0) {
      const now = performance.now();
      guard.tokens = Math.min(rate, guard.tokens + ((now - guard.refilledAt) / 1000) * rate);
      guard.refilledAt = now;
      if (guard.tokens < 1) {
        this.refuseMessage(
          connection,
          'rate',
          DISCONNECT.rate_limited,
          `more than ${rate} messages per second (--max-messages-per-second)`,
        );
        return false;
      }
      guard.tokens -= 1;
    }
    return true;
  }

  private refuseMessage(
    connection: Connection,
    failure: AuthFailureReason,
    disconnect: Disconnect,
    why: string,
  ): void {
    this.options.stats.authFailures[failure]++;
    this.options.limitedLog.log(
      disconnect.reason,
      'warn',
      `Closing ${connection.peer} with ${disconnect.code}: ${why}; message not delivered`,
      {
        ...connectionFields(connection),
        reason: disconnect.reason,
        user: connection.guard?.user || undefined,
      },
    );
    connection.disconnect(disconnect);
  }

  closed(connection: Connection, code: number): void {
    if (!this.connections.delete(connection)) return;
    if (connection.faults !== undefined) this.faults.closed(connection.faults);
    // A failed write is found here, on the stream, rather than by an 'error' listener on every socket.
    const socketError = connection.socketError;
    if (socketError !== null) this.socketFailed(connection, socketError);
    const user = connection.guard?.user;
    this.options.gate.closed(connection.clientAddress, user === '' ? undefined : user);
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

  failed(connection: Connection, error: Error & { code?: string }): DisconnectReason {
    const reason = disconnectReasonOf(error);
    connection.serverCloseReason ??= reason;
    this.options.limitedLog.log(
      reason,
      'warn',
      `WebSocket error from ${connection.peer}: ${error.message}${error.code ? ` (${error.code})` : ''}`,
      { ...connectionFields(connection), reason },
    );
    return reason;
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
    connection.disconnect(DISCONNECT.slow_consumer);
  }

  ponged(connection: Connection): void {
    this.keepalive.ponged(connection);
  }

  pingIgnored(connection: Connection): void {
    this.faults.pingIgnored(connection);
  }

  /**
   * Closes a connection the client should come back from at once (issue 17): this node is going
   * away, or the connection reached its lifetime. A wshub.v1 client first gets a `reconnect` frame
   * (reconnect, resume, within `withinMs` with jitter), in order after everything already delivered
   * to it, then the catalogue's close frame. Raw clients get the close only.
   */
  goAway(
    connection: Connection,
    disconnect: Disconnect & { reason: ReconnectReason },
    withinMs: number,
  ): void {
    if (connection.protocol === SUBPROTOCOL_V1 && connection.readyState === OPEN) {
      connection.send(reconnectFrame(connection.room, disconnect.reason, withinMs));
      this.options.stats.reconnectFramesSent[disconnect.reason]++;
    }
    connection.disconnect(disconnect);
  }

  /**
   * --max-connection-lifetime: the same advance notice as a drain. Connections opened together reach
   * their lifetimes spread over ±LIFETIME_JITTER of it, at worst one every 2·jitter·lifetime/n ms:
   * each client is asked to come back within such a slot, so the reconnections are no burstier
   * than the closes.
   */
  private readonly lifetimeReached = (connection: Connection): void => {
    const spreadMs = 2 * LIFETIME_JITTER * this.options.keepalive.maxLifetimeMs;
    this.goAway(connection, DISCONNECT.max_lifetime, reconnectWithinMs(spreadMs / this.connections.size));
  };

  /** Resolves once no connection is open. */
  allClosed(): Promise<void> {
    if (this.connections.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.allClosedWaiters.push(resolve));
  }
}

/** Bounds of the `within_ms` a reconnect frame carries (see reconnectWithinMs). */
const RECONNECT_WITHIN_MIN_MS = 100;
const RECONNECT_WITHIN_MAX_MS = 5000;
/** When every client is closed at once (no --drain-window), they spread their reconnections over this long. */
const RECONNECT_WITHIN_AT_ONCE_MS = 1000;

/**
 * How long a wshub.v1 client told to reconnect spreads its reconnection over (uniform, full jitter).
 * When the server closes one connection every `slotMs` already (a drain window, lifetimes with
 * jitter), reconnecting within a slot keeps the reconnection rate at the close rate. Closed all at
 * once (`slotMs` 0), the clients spread over a second themselves; a larger --drain-window is what
 * spreads a big node further.
 */
export function reconnectWithinMs(slotMs: number): number {
  const wanted = slotMs > 0 ? slotMs : RECONNECT_WITHIN_AT_ONCE_MS;
  return Math.round(Math.min(RECONNECT_WITHIN_MAX_MS, Math.max(RECONNECT_WITHIN_MIN_MS, wanted)));
}

/** A new connection's guard (see ConnectionGuard); the token's exp moves to the keepalive clock. */
function guardOf(
  room: string,
  identity: Identity | undefined,
  clientPublish: boolean,
  maxMessagesPerSecond: number,
): ConnectionGuard {
  const now = performance.now();
  const exp = identity?.expiresAt;
  return {
    user: identity?.user ?? '',
    mayPublish: clientPublish && (identity === undefined || identity.mayPublish(room)),
    expiresAt: exp === undefined ? 0 : Math.max(1, now + (exp * 1000 - Date.now())),
    tokens: maxMessagesPerSecond,
    refilledAt: now,
  };
}
