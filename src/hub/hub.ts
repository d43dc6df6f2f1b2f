import type { Position } from '../history/history.js';
import type { OutboundMessage } from './message.js';

/**
 * The hub decides who receives a message. It knows peers only through this
 * interface, never the transport's classes, so transport/ depends on hub/ and
 * not the other way round.
 */
export interface Peer {
  readonly id: number;
  /** Room the peer joined ('' is the default room). */
  readonly room: string;
  /**
   * Writes the message to this peer, or drops it (counted, with a reason) when
   * the peer cannot take it. Never throws, never waits: a slow peer must not
   * delay the others.
   */
  deliver(message: OutboundMessage): void;
  /** The negotiated subprotocol ('' for none); 'wshub.v1' receives positioned frames (issue 16). */
  readonly protocol?: string;
  /** Bytes waiting to be written to this peer; a replay pauses while it is large. */
  readonly queuedBytes?: number;
}

export interface Hub {
  /** `since`: the position a wshub.v1 peer resumes from (?since=EPOCH:OFFSET). */
  join(peer: Peer, since?: Position): void;
  receive(peer: Peer, data: Buffer, isBinary: boolean): void;
  leave(peer: Peer): void;
}
