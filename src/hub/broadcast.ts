import type { Hub, Peer } from './hub.js';
import { OutboundMessage } from './message.js';

/**
 * Where a broadcast goes after local delivery: other wshub nodes (the backplane
 * plugs in here). It receives the sender's room and the payload, never a peer.
 */
export interface BroadcastRelay {
  publish(room: string, data: Buffer, isBinary: boolean): void;
}

export interface BroadcastHubOptions {
  /** Leave the sender out of its own broadcast (--broadcast-exclude-sender). */
  readonly excludeSender: boolean;
}

/**
 * Seed 002: every message a client sends reaches every client of the sender's
 * room ('' is the default room, /ws). The message is created once and handed to
 * each receiver in one synchronous loop, so every receiver sees one sender's
 * messages in the order they were sent.
 */
export class BroadcastHub implements Hub {
  private readonly rooms = new Map<string, Set<Peer>>();
  private relay: BroadcastRelay | undefined = undefined;

  constructor(private readonly options: BroadcastHubOptions) {}

  /** Forwards every client broadcast, after local delivery, to `relay` (e.g. a backplane). */
  attachRelay(relay: BroadcastRelay): void {
    this.relay = relay;
  }

  join(peer: Peer): void {
    let members = this.rooms.get(peer.room);
    if (members === undefined) {
      members = new Set();
      this.rooms.set(peer.room, members);
    }
    members.add(peer);
  }

  leave(peer: Peer): void {
    const members = this.rooms.get(peer.room);
    if (members === undefined || !members.delete(peer)) return;
    if (members.size === 0) this.rooms.delete(peer.room);
  }

  receive(sender: Peer, data: Buffer, isBinary: boolean): void {
    this.deliverLocally(
      sender.room,
      new OutboundMessage(data, isBinary, true),
      this.options.excludeSender ? sender : undefined,
    );
    this.relay?.publish(sender.room, data, isBinary);
  }

  /**
   * Delivers a message that did not come from a local client (another node,
   * a publish API) to every local peer of `room`. Returns how many peers it was handed to.
   */
  broadcast(room: string, data: Buffer, isBinary: boolean): number {
    return this.deliverLocally(room, new OutboundMessage(data, isBinary, true), undefined);
  }

  /**
   * A message from the server side (the publish API): to every local peer of
   * `room` and, like a client's broadcast, on to the other nodes. Returns how
   * many local peers it was handed to.
   */
  publish(room: string, data: Buffer, isBinary: boolean): number {
    const handed = this.deliverLocally(room, new OutboundMessage(data, isBinary, true), undefined);
    this.relay?.publish(room, data, isBinary);
    return handed;
  }

  /** Number of rooms with at least one local peer. */
  get roomCount(): number {
    return this.rooms.size;
  }

  private deliverLocally(room: string, message: OutboundMessage, except: Peer | undefined): number {
    const members = this.rooms.get(room);
    if (members === undefined) return 0;
    let handed = 0;
    for (const peer of members) {
      if (peer === except) continue;
      peer.deliver(message);
      handed++;
    }
    return handed;
  }
}
