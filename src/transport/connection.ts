import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { WebSocket } from 'ws';
import type { Peer } from '../hub/hub.js';
import type { OutboundMessage } from '../hub/message.js';
import type { Fields } from '../log.js';
import type { DisconnectReason, HttpVersion } from '../stats.js';
import { formatPeer } from './address.js';
import { quietRepeatedEnds } from './end-once.js';
import type { FaultPlan } from './fault-injection.js';
import { isHttp2Stream } from './http2.js';
import type { Outbound, OutboundTarget } from './outbound.js';

/** What a connection reports its events to (the transport). */
export interface ConnectionOwner {
  receive(connection: Connection, data: Buffer, isBinary: boolean): void;
  closed(connection: Connection, code: number): void;
  failed(connection: Connection, error: Error & { code?: string }): void;
  ponged(connection: Connection): void;
}

/** What a client asked to be done to its connection (--allow-fault-injection), and its messages held by ?delay. */
export interface FaultState {
  readonly plan: FaultPlan;
  delayedMessages: number;
  delayedBytes: number;
}

/**
 * One client connection. It is the ws socket itself (ws constructs this class
 * for every accepted upgrade), so per-connection state is a few fields on one
 * object: no wrapper, no per-connection closures. Every field costs 8 bytes per
 * connection (a double another 16, boxed), so what can be derived is derived
 * (`peer`) and what few connections use lives in an object only they have
 * (`faults`). Idle memory per connection is an issue-5 target (bench/README.md).
 */
export class Connection extends WebSocket implements Peer, OutboundTarget {
  /** ws's own reference to the TCP (or TLS) socket; it keeps it after the close. */
  declare private readonly _socket: Socket | null;
  id = 0;
  room = '';
  owner: ConnectionOwner | undefined = undefined;
  outbound: Outbound | undefined = undefined;
  framedSocket: Duplex | undefined = undefined;
  framedFd = -1;
  /** 0, or the server window of a permessage-deflate agreement whose compressed frames are shared (see OutboundTarget). */
  deflateWindowBits = 0;
  /** The address connection limits count this connection under (see UpgradeGate). */
  clientAddress = '';
  /** Set when the server decides to end the connection, before it closes. */
  serverCloseReason: DisconnectReason | undefined = undefined;
  /** Only for a client whose fault-injection plan acts on its messages. */
  faults: FaultState | undefined = undefined;
  pendingFirst: OutboundMessage | undefined = undefined;
  pendingRest: OutboundMessage[] | undefined = undefined;
  pendingCount = 0;
  pendingBytes = 0;

  // Keepalive state (transport/keepalive.ts); times are performance.now() milliseconds.
  /** Data messages received; the keepalive sweep compares it with `messagesSeen` to see activity. */
  messagesReceived = 0;
  messagesSeen = 0;
  /** Set only with an idle timeout. */
  lastActiveAt = 0;
  /** When the outstanding ping was sent, or -1 when no ping is outstanding. */
  pingSentAt = -1;
  nextPingAt = Number.POSITIVE_INFINITY;
  /** When the connection reaches --max-connection-lifetime; 0 without one (an integer: no boxed double). */
  expiresAt = 0;

  /**
   * The client as the logs show it (192.168.1.100:54321), computed when a line is
   * written rather than stored: Node caches the socket's peer address once the
   * upgrade gate has read it, so it is still known after the socket has closed.
   */
  get peer(): string {
    const socket = this._socket;
    return socket === null ? 'unknown' : formatPeer(socket.remoteAddress, socket.remotePort);
  }

  /** Which HTTP version carried the handshake: '2' for an extended CONNECT on an HTTP/2 stream (RFC 8441). */
  get httpVersion(): HttpVersion {
    return isHttp2Stream(this._socket) ? '2' : '1.1';
  }

  /** The error that ended the socket, if one did (Node keeps it on the stream). */
  get socketError(): NodeJS.ErrnoException | null {
    return (this._socket?.errored as NodeJS.ErrnoException | null | undefined) ?? null;
  }

  /**
   * ws reports a connection's events through emit(). The four the transport needs go
   * straight to its owner: no listener per event and connection (each one an entry
   * in this connection's listener table), and no listener lookup per message.
   * Listeners added with on() still get every event.
   */
  override emit(event: string | symbol, ...args: unknown[]): boolean {
    const owner = this.owner;
    if (owner !== undefined) {
      switch (event) {
        case 'message':
          owner.receive(this, args[0] as Buffer, args[1] as boolean);
          return this.listenerCount('message') === 0 || super.emit(event, ...args);
        case 'close':
          owner.closed(this, args[0] as number);
          break;
        case 'error':
          owner.failed(this, args[0] as Error);
          // No 'error' listener is needed: the owner has handled it, and ws closes the connection.
          return this.listenerCount('error') === 0 || super.emit(event, ...args);
        case 'pong':
          owner.ponged(this);
          break;
      }
    }
    return super.emit(event, ...args);
  }

  /** ws's sender has nothing queued or being compressed (ws 8 lib/sender.js: `_state` DEFAULT, empty `_queue`). */
  get senderIdle(): boolean {
    const sender = (this as unknown as { _sender?: { _state?: unknown; _queue?: { length: number } } })
      ._sender;
    // Anything else (a ws that keeps this state differently) counts as busy: frames then go through ws, in order.
    return sender?._state === 0 && sender._queue?.length === 0;
  }

  /** Bytes waiting for this client: in ws and the socket, and corked for this turn. */
  get queuedBytes(): number {
    return this.bufferedAmount + this.pendingBytes;
  }

  deliver(message: OutboundMessage): void {
    this.outbound?.deliver(this, message);
  }

  // Frames corked for this turn go out before any frame ws writes itself (close, ping, pong, send).
  override close(code?: number, data?: string | Buffer): void {
    if (this.pendingCount > 0) this.outbound?.flush(this);
    quietRepeatedEnds(this);
    super.close(code, data);
  }

  override ping(data?: unknown, mask?: boolean, cb?: (err: Error) => void): void {
    if (this.pendingCount > 0) this.outbound?.flush(this);
    super.ping(data, mask, cb);
  }

  override pong(data?: unknown, mask?: boolean, cb?: (err: Error) => void): void {
    if (this.pendingCount > 0) this.outbound?.flush(this);
    super.pong(data, mask, cb);
  }

  /** Closes with a close frame (the peer gets `code`) and records why. */
  closeBecause(reason: DisconnectReason, code: number, text: string): void {
    this.serverCloseReason ??= reason;
    this.close(code, text);
  }

  /** Drops the TCP connection without a close handshake and records why. */
  terminateBecause(reason: DisconnectReason): void {
    this.serverCloseReason = reason;
    this.terminate();
  }
}

/** The log fields that identify a connection (issue 8: JSON logs join on them). */
export function connectionFields(connection: Connection): Fields {
  return {
    remote_addr: connection.peer,
    conn_id: connection.id,
    room: connection.room,
    http_version: connection.httpVersion,
  };
}
