import type { HistoryEntry, Position } from '../history/history.js';
import type { Hub, Peer } from './hub.js';
import { OutboundMessage } from './message.js';
import { SequencedRooms, type SequencedRoomsOptions } from './sequenced.js';

/**
 * Where a broadcast goes after local delivery: other wshub nodes (the backplane
 * plugs in here). It receives the sender's room and the payload, never a peer.
 */
export interface BroadcastRelay {
  publish(room: string, data: Buffer, isBinary: boolean): void;
}

export interface BroadcastHubOptions {
  /** Leave the sender out of its own broadcast (--broadcast-exclude-sender; raw clients only). */
  readonly excludeSender: boolean;
  /** Room history (--history-size, issue 16): positions, wshub.v1 peers, resume. */
  readonly history?: HubHistory;
}

export interface HubHistory extends Omit<SequencedRoomsOptions, 'isLocal'> {
  /**
   * Single node: stores a message and assigns its position here, at once.
   * Without it the backplane assigns positions, and every node's messages (this
   * node's own included) come back through positioned().
   */
  readonly append?: (room: string, data: Buffer, isBinary: boolean) => { epoch: string; entry: HistoryEntry };
  /** With the backplane: whether an entry was published by this node (see SequencedRoomsOptions.isLocal). */
  readonly isLocal?: (entry: HistoryEntry) => boolean;
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
  private readonly sequenced: SequencedRooms | undefined;
  private readonly append: HubHistory['append'];

  constructor(private readonly options: BroadcastHubOptions) {
    const history = options.history;
    this.append = history?.append;
    this.sequenced =
      history &&
      new SequencedRooms({
        ...history,
        // Single node: every message was delivered to the raw peers before it got its position.
        isLocal: history.isLocal ?? (() => true),
      });
  }

  /** Forwards every client broadcast, after local delivery, to `relay` (e.g. a backplane). */
  attachRelay(relay: BroadcastRelay): void {
    this.relay = relay;
  }

  join(peer: Peer, since?: Position): void {
    if (this.sequenced) {
      this.sequenced.join(peer, since);
      return;
    }
    let members = this.rooms.get(peer.room);
    if (members === undefined) {
      members = new Set();
      this.rooms.set(peer.room, members);
    }
    members.add(peer);
  }

  leave(peer: Peer): void {
    if (this.sequenced) {
      this.sequenced.leave(peer);
      return;
    }
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
    this.positionLocally(sender.room, data, isBinary);
    this.relay?.publish(sender.room, data, isBinary);
  }

  /**
   * A message with its position, from the backplane (with history every node's
   * messages come back this way, this node's own included): delivered in
   * offset order, once, to the room's local peers.
   */
  positioned(room: string, epoch: string, entry: HistoryEntry): void {
    this.sequenced?.accept(room, epoch, entry);
  }

  /** The backplane reconnected: fetch from the history what passed meanwhile. */
  resync(): void {
    this.sequenced?.resync();
  }

  private positionLocally(room: string, data: Buffer, isBinary: boolean): void {
    if (this.append === undefined) return;
    const { epoch, entry } = this.append(room, data, isBinary);
    this.sequenced?.accept(room, epoch, entry);
  }

  /**
   * Delivers a message that did not come from a local client (another node,
   * a publish API) to every local peer of `room`. Returns how many peers it was handed to.
   */
  broadcast(room: string, data: Buffer, isBinary: boolean): number {
    const handed = this.deliverLocally(room, new OutboundMessage(data, isBinary, true), undefined);
    this.positionLocally(room, data, isBinary);
    return handed;
  }

  /**
   * A message from the server side (the publish API): to every local peer of
   * `room` and, like a client's broadcast, on to the other nodes. Returns how
   * many local peers it was handed to.
   */
  publish(room: string, data: Buffer, isBinary: boolean): number {
    const handed = this.deliverLocally(room, new OutboundMessage(data, isBinary, true), undefined);
    this.positionLocally(room, data, isBinary);
    this.relay?.publish(room, data, isBinary);
    return handed;
  }

  /** Number of rooms with at least one local peer. */
  get roomCount(): number {
    return this.sequenced?.roomCount ?? this.rooms.size;
  }

  /** To the room's raw peers at once (with history, v1 peers get it when its position is known). */
  private deliverLocally(room: string, message: OutboundMessage, except: Peer | undefined): number {
    const members = this.sequenced ? this.sequenced.rawPeers(room) : this.rooms.get(room);
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
