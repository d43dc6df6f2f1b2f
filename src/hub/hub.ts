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
}

export interface Hub {
  join(peer: Peer): void;
  receive(peer: Peer, data: Buffer, isBinary: boolean): void;
  leave(peer: Peer): void;
}
