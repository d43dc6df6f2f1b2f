import type { HistoryEntry, Position } from '../history/history.js';
import type { Hub, Peer } from './hub.js';
import { OutboundMessage } from './message.js';
import { SequencedRooms, type SequencedRoomsOptions } from './sequenced.js';

/**
 * Where a broadcast goes after local delivery: other wshub nodes (the backplane
 * plugs in here). It receives the sender's room and the payload, never a peer.
 */
export interface BroadcastRelay {
  /**
   * Returns the message's sequence number on this node when the message is kept until the
   * backplane has given it its position (room history in Redis), so the hub can hand it to this
   * node's wshub.v1 peers as `pending` should that take long.
   */
  publish(room: string, data: Buffer, isBinary: boolean): number | undefined;
  /** `room` got its first local peer: from now on this node wants the room's messages from elsewhere (issue 18). */
  roomOpened(room: string): unknown;
  /** `room` lost its last local peer: this node no longer needs its messages. */
  roomClosed(room: string): void;
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

/** What the console's busiest-rooms table shows of one room (issue 19). */
export interface RoomActivity {
  readonly room: string;
  readonly members: number;
  /** Messages broadcast into the room since the previous look (one per message, whatever the number of receivers). */
  readonly messages: number;
  /** Messages handed to its local members since the previous look. */
  readonly delivered: number;
}

/**
 * A room's local members, and two integers the message path adds to (nothing
 * allocated per message); busiestRooms() reads them at most once per look.
 */
class Room extends Set<Peer> {
  messages = 0;
  delivered = 0;
  messagesSeen = 0;
  deliveredSeen = 0;
}

/**
 * Seed 002: every message a client sends reaches every client of the sender's
 * room ('' is the default room, /ws). The message is created once and handed to
 * each receiver in one synchronous loop, so every receiver sees one sender's
 * messages in the order they were sent.
 */
export class BroadcastHub implements Hub {
  private readonly rooms = new Map<string, Room>();
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
    for (const room of this.rooms.keys()) relay.roomOpened(room);
  }

  join(peer: Peer, since?: Position): void {
    // With history the rooms deliver themselves; `rooms` still keeps who is where for busiestRooms().
    this.sequenced?.join(peer, since);
    let members = this.rooms.get(peer.room);
    if (members === undefined) {
      members = new Room();
      this.rooms.set(peer.room, members);
      this.relay?.roomOpened(peer.room);
    }
    members.add(peer);
  }

  leave(peer: Peer): void {
    this.sequenced?.leave(peer);
    const members = this.rooms.get(peer.room);
    if (members === undefined || !members.delete(peer)) return;
    if (members.size === 0) {
      this.rooms.delete(peer.room);
      this.relay?.roomClosed(peer.room);
    }
  }

  receive(sender: Peer, data: Buffer, isBinary: boolean): void {
    this.deliverLocally(
      sender.room,
      new OutboundMessage(data, isBinary, true),
      this.options.excludeSender ? sender : undefined,
    );
    this.positionLocally(sender.room, data, isBinary);
    this.publishOn(sender.room, data, isBinary);
  }

  /** To the other nodes; with history in Redis the rooms watch for their position meanwhile. */
  private publishOn(room: string, data: Buffer, isBinary: boolean): void {
    const sequence = this.relay?.publish(room, data, isBinary);
    if (sequence !== undefined) this.sequenced?.published(room, sequence, data, isBinary);
  }

  /**
   * A message with its position, from the backplane (with history every node's
   * messages come back this way, this node's own included): delivered in
   * offset order, once, to the room's local peers.
   */
  positioned(room: string, epoch: string, entry: HistoryEntry): void {
    this.sequenced?.accept(room, epoch, entry);
  }

  /** The history store's connection dropped: this node's v1 peers get its messages as pending now. */
  storeLost(): void {
    this.sequenced?.storeLost();
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
    this.publishOn(room, data, isBinary);
    return handed;
  }

  /** The rooms with at least one local peer. */
  roomNames(): IterableIterator<string> {
    return this.rooms.keys();
  }

  /** Number of rooms with at least one local peer. */
  get roomCount(): number {
    return this.sequenced?.roomCount ?? this.rooms.size;
  }

  /**
   * The `limit` rooms with the most messages since the previous call (ties: more
   * members first), with what happened in each since then. One pass over the
   * rooms and a `limit`-long insertion list: the console calls it at most once a
   * second, never the message path.
   */
  busiestRooms(limit: number): RoomActivity[] {
    const top: RoomActivity[] = [];
    if (limit <= 0) return top;
    for (const [room, members] of this.rooms) {
      const messages = members.messages - members.messagesSeen;
      const delivered = members.delivered - members.deliveredSeen;
      members.messagesSeen = members.messages;
      members.deliveredSeen = members.delivered;
      if (top.length === limit && !busier(messages, members.size, top[limit - 1] as RoomActivity)) continue;
      let at = top.length;
      while (at > 0 && busier(messages, members.size, top[at - 1] as RoomActivity)) at--;
      top.splice(at, 0, { room, members: members.size, messages, delivered });
      if (top.length > limit) top.pop();
    }
    return top;
  }

  /** To the room's raw peers at once (with history, v1 peers get it when its position is known). */
  private deliverLocally(room: string, message: OutboundMessage, except: Peer | undefined): number {
    const counted = this.rooms.get(room);
    if (counted === undefined) return 0;
    const members = this.sequenced ? this.sequenced.rawPeers(room) : counted;
    let handed = 0;
    if (members !== undefined) {
      for (const peer of members) {
        if (peer === except) continue;
        peer.deliver(message);
        handed++;
      }
    }
    // With history, wshub.v1 peers get the message once its position is known (not counted in `delivered`).
    counted.messages++;
    counted.delivered += handed;
    return handed;
  }
}

const busier = (messages: number, members: number, than: RoomActivity): boolean =>
  messages > than.messages || (messages === than.messages && members > than.members);
