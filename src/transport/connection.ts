import type { Duplex } from 'node:stream';
import { WebSocket } from 'ws';
import type { Peer } from '../hub/hub.js';
import type { OutboundMessage } from '../hub/message.js';
import type { Fields } from '../log.js';
import type { DisconnectReason } from '../stats.js';
import type { FaultPlan } from './fault-injection.js';
import type { Outbound, OutboundTarget } from './outbound.js';

/** What a connection reports its events to (the transport). */
export interface ConnectionOwner {
  receive(connection: Connection, data: Buffer, isBinary: boolean): void;
  closed(connection: Connection, code: number): void;
  failed(connection: Connection, error: Error & { code?: string }): void;
  socketFailed(connection: Connection, error: NodeJS.ErrnoException): void;
  ponged(connection: Connection): void;
}

/**
 * One client connection. It is the ws socket itself (ws constructs this class
 * for every accepted upgrade), so per-connection state is a few fields on one
 * object: no wrapper, no per-connection closures.
 */
export class Connection extends WebSocket implements Peer, OutboundTarget {
  id = 0;
  room = '';
  peer = '';
  owner: ConnectionOwner | undefined = undefined;
  outbound: Outbound | undefined = undefined;
  framedSocket: Duplex | undefined = undefined;
  /** 0, or the server window of a permessage-deflate agreement whose compressed frames are shared (see OutboundTarget). */
  deflateWindowBits = 0;
  /** The address connection limits count this connection under (see UpgradeGate). */
  clientAddress = '';
  /** Set when the server decides to end the connection, before it closes. */
  serverCloseReason: DisconnectReason | undefined = undefined;
  /** Faults this client asked for (--allow-fault-injection), and its messages waiting on ?delay. */
  faults: FaultPlan | undefined = undefined;
  delayedMessages = 0;
  delayedBytes = 0;
  pendingFirst: OutboundMessage | undefined = undefined;
  pendingRest: OutboundMessage[] | undefined = undefined;
  pendingCount = 0;
  pendingBytes = 0;

  // Keepalive state (transport/keepalive.ts); times are performance.now() milliseconds.
  /** Data messages received; the keepalive sweep compares it with `messagesSeen` to see activity. */
  messagesReceived = 0;
  messagesSeen = 0;
  lastActiveAt = 0;
  /** When the outstanding ping was sent, or -1 when no ping is outstanding. */
  pingSentAt = -1;
  nextPingAt = Number.POSITIVE_INFINITY;
  expiresAt = Number.POSITIVE_INFINITY;

  /** ws's sender has nothing queued or being compressed (ws 8 lib/sender.js: `_state` DEFAULT, empty `_queue`). */
  get senderIdle(): boolean {
    const sender = (this as unknown as { _sender?: { _state?: unknown; _queue?: { length: number } } })
      ._sender;
    // Anything else (a ws that keeps this state differently) counts as busy: frames then go through ws, in order.
    return sender?._state === 0 && sender._queue?.length === 0;
  }

  deliver(message: OutboundMessage): void {
    this.outbound?.deliver(this, message);
  }

  // Frames corked for this turn go out before any frame ws writes itself (close, ping, pong, send).
  override close(code?: number, data?: string | Buffer): void {
    if (this.pendingCount > 0) this.outbound?.flush(this);
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
  return { remote_addr: connection.peer, conn_id: connection.id, room: connection.room };
}
