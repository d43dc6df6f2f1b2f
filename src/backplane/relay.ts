import { randomBytes } from 'node:crypto';
import type { HistoryEntry } from '../history/history.js';
import { decodePositioned } from '../history/redis.js';
import type { RateLimitedLog } from '../log.js';
import type { BackplaneStats } from '../stats.js';
import type { Backplane } from './backplane.js';
import { decodeEnvelope, type Envelope, encodeEnvelope, isFromNode, NODE_ID_BYTES } from './envelope.js';
import type { Outbox } from './outbox.js';
import { roomChannel } from './room-keys.js';

export interface RelayOptions {
  readonly backplane: Backplane;
  /** --backplane-channel: the prefix of every room's channel; the nodes sharing it form one cluster. */
  readonly channel: string;
  readonly stats: BackplaneStats;
  readonly limitedLog: RateLimitedLog;
  /** Hands a message from another node to the local hub (every local client of `room`). */
  readonly deliverLocally: (room: string, data: Buffer, isBinary: boolean) => void;
  /**
   * How long a room stays subscribed after its last local member left, so a
   * client that reconnects at once does not cost an unsubscribe and a subscribe.
   */
  readonly roomLingerMs: number;
  /** Random unless given (tests). */
  readonly nodeId?: Buffer;
  /** Wall clock in ms with sub-ms precision; the envelope's sent-at time and the latency use it. */
  readonly now?: () => number;
  /**
   * With room history in Redis (issue 16): publishes go through the outbox (kept until Redis
   * stored them, resent after a reconnect) instead of the fail-fast driver, and every node's
   * messages, this node's own included, come back positioned to `deliverPositioned`.
   */
  readonly outbox?: Outbox;
  readonly deliverPositioned?: (room: string, epoch: string, entry: HistoryEntry) => void;
}

/** Remote nodes per room whose sequence is tracked for gap detection; beyond this the oldest is forgotten. */
const MAX_TRACKED_NODES = 1024;
/**
 * Rooms this node keeps a publish sequence for; beyond this the oldest is forgotten. A room's
 * sequence starts above every number this node has used (see nextSequence), so a forgotten room
 * never reuses a number: the history script (issue 16) drops a number it has stored already.
 */
const MAX_SEQUENCED_ROOMS = 100_000;

const preciseNow = (): number => performance.timeOrigin + performance.now();

/** A room this node is subscribed to: it has local members, or had until less than the linger ago. */
interface RoomSubscription {
  readonly room: string;
  readonly channel: string;
  /** When the last local member left (monotonic ms); 0 while the room has members. */
  idleSince: number;
  /** The backplane confirmed the subscription. */
  active: boolean;
  /** Last sequence seen per remote node; forgotten with the subscription, so a later one starts fresh. */
  readonly lastSequence: Map<string, number>;
  readonly onMessage: (message: Buffer) => void;
}

/**
 * Joins the local hub to the other nodes (issues 6 and 18). Every room has a
 * channel of its own (room-keys.ts), and a node subscribes to it only while
 * one of its clients is in the room (the hub says so: roomOpened/roomClosed),
 * plus roomLingerMs after the last one left; so a node never receives a
 * message of a room it has no client in, and a broadcast is published once,
 * to its room's channel.
 *
 * The hub has already delivered a client's broadcast locally when it calls
 * publish(): the relay wraps it in an envelope with this node's id and the
 * room's next sequence number (per node and room: a receiver sees only the
 * rooms it subscribes to, so that is what it can check for gaps) and hands it
 * to the backplane. Envelopes coming back are ignored when they are this
 * node's own (so no client gets a message twice), checked for gaps (what the
 * backplane lost is counted, never silent), and delivered to the local clients
 * of their room in arrival order, which is each sender's order.
 */
export class BackplaneRelay {
  readonly nodeId: Buffer;
  private readonly sequences = new Map<string, number>();
  /** Sequence numbers used so far, all rooms together: a room seen for the first time starts above it. */
  private used = 0;
  private readonly rooms = new Map<string, RoomSubscription>();
  /** Rooms without local members, waiting for the linger to end (insertion order = idle order). */
  private readonly lingering = new Set<RoomSubscription>();
  private lingerTimer: NodeJS.Timeout | undefined;
  private closed = false;
  private readonly now: () => number;

  constructor(private readonly options: RelayOptions) {
    this.nodeId = options.nodeId ?? randomBytes(NODE_ID_BYTES);
    this.now = options.now ?? preciseNow;
  }

  private activeRooms = 0;

  /** Rooms whose subscription is active (the backplane confirmed it), lingering ones included. */
  get subscribedRooms(): number {
    return this.activeRooms;
  }

  /**
   * The hub's first local member of `room` arrived: subscribe (or keep a
   * lingering subscription). Resolves once the subscription is active.
   */
  roomOpened(room: string): Promise<void> {
    if (this.closed) return Promise.resolve();
    const existing = this.rooms.get(room);
    if (existing !== undefined) {
      existing.idleSince = 0;
      this.lingering.delete(existing);
      return Promise.resolve();
    }
    const subscription: RoomSubscription = {
      room,
      channel: roomChannel(this.options.channel, room),
      idleSince: 0,
      active: false,
      lastSequence: new Map(),
      onMessage: (message) => this.onMessage(subscription, message),
    };
    this.rooms.set(room, subscription);
    this.options.stats.roomSubscribes++;
    return this.options.backplane.subscribe(subscription.channel, subscription.onMessage).then(() => {
      if (this.rooms.get(room) !== subscription || subscription.active) return;
      subscription.active = true;
      this.activeRooms++;
    });
  }

  /** The hub's last local member of `room` left: unsubscribe once the linger is over. */
  roomClosed(room: string): void {
    const subscription = this.rooms.get(room);
    if (subscription === undefined || this.closed) return;
    if (this.options.roomLingerMs <= 0) {
      this.unsubscribe(subscription);
      return;
    }
    subscription.idleSince = performance.now();
    this.lingering.add(subscription);
    // One timer for all lingering rooms (never one per room), running only while there are some.
    this.lingerTimer ??= setInterval(
      sweepLingering,
      Math.max(10, Math.min(1000, this.options.roomLingerMs / 4)),
      this,
    ).unref();
  }

  /** Unsubscribes the rooms whose linger is over; called by the timer. */
  sweep(): void {
    const deadline = performance.now() - this.options.roomLingerMs;
    for (const subscription of this.lingering) {
      if (subscription.idleSince > deadline) break;
      this.unsubscribe(subscription);
    }
    if (this.lingering.size === 0) this.stopTimer();
  }

  /** Stops the linger timer; the backplane's close() drops the subscriptions. */
  close(): void {
    this.closed = true;
    this.stopTimer();
  }

  /**
   * The BroadcastRelay of the hub: called after local delivery. Returns the message's sequence
   * number (its id with this node's: see history messageId) when the outbox keeps it until Redis
   * has stored it.
   */
  publish(room: string, data: Buffer, isBinary: boolean): number | undefined {
    const sequence = this.nextSequence(room);
    const envelope = encodeEnvelope({
      nodeId: this.nodeId,
      sequence,
      sentAt: this.now(),
      isBinary,
      room,
      payload: data,
    });
    const channel = roomChannel(this.options.channel, room);
    if (this.options.outbox) {
      this.options.outbox.push(room, channel, sequence, envelope);
      return sequence;
    }
    // A refusal is counted and logged by the driver (publishFailures, backplane_unavailable). The
    // number is reused, so a gap seen by other nodes always means a loss this node did not see.
    if (!this.options.backplane.publish(channel, envelope)) {
      this.sequences.set(room, sequence - 1);
      this.used--;
    }
    return undefined;
  }

  /**
   * Per room, +1 per message (a receiver sees only the rooms it subscribes to, so that is what it
   * can check for gaps); a room's first number is above every number used before in any room.
   */
  private nextSequence(room: string): number {
    const last = this.sequences.get(room);
    const sequence = last === undefined ? this.used + 1 : last + 1;
    if (last === undefined && this.sequences.size >= MAX_SEQUENCED_ROOMS) {
      const oldest = this.sequences.keys().next().value;
      if (oldest !== undefined) this.sequences.delete(oldest);
    }
    this.sequences.set(room, sequence);
    this.used = Math.max(this.used, sequence);
    return sequence;
  }

  private unsubscribe(subscription: RoomSubscription): void {
    this.lingering.delete(subscription);
    this.rooms.delete(subscription.room);
    if (subscription.active) this.activeRooms--;
    this.options.stats.roomUnsubscribes++;
    void this.options.backplane.unsubscribe(subscription.channel);
  }

  private stopTimer(): void {
    if (this.lingerTimer !== undefined) clearInterval(this.lingerTimer);
    this.lingerTimer = undefined;
  }

  private onMessage(subscription: RoomSubscription, message: Buffer): void {
    const positioned = this.options.deliverPositioned && decodePositioned(message);
    if (positioned) {
      this.onPositioned(subscription, positioned.epoch, positioned.offset, positioned.envelope);
      return;
    }
    if (isFromNode(message, this.nodeId)) return;
    const envelope = this.decode(subscription, message);
    if (envelope === undefined) return;
    const { stats } = this.options;
    this.checkSequence(subscription, envelope.nodeId, envelope.sequence);
    stats.receivedFromOtherNodes++;
    // Clocks of different hosts can disagree; a negative latency is clock skew, not time travel.
    stats.deliveryLatency.observe(Math.max(0, this.now() - envelope.sentAt) / 1000);
    this.options.deliverLocally(envelope.room, envelope.payload, envelope.isBinary);
  }

  /** A message stored in the room's history: every node's, this one's included, in offset order. */
  private onPositioned(subscription: RoomSubscription, epoch: string, offset: number, message: Buffer): void {
    const envelope = this.decode(subscription, message);
    if (envelope === undefined) return;
    const { stats } = this.options;
    if (!envelope.nodeId.equals(this.nodeId)) {
      this.checkSequence(subscription, envelope.nodeId, envelope.sequence);
      stats.receivedFromOtherNodes++;
      stats.deliveryLatency.observe(Math.max(0, this.now() - envelope.sentAt) / 1000);
    }
    this.options.deliverPositioned?.(envelope.room, epoch, {
      offset,
      data: envelope.payload,
      isBinary: envelope.isBinary,
      node: envelope.nodeId,
      sequence: envelope.sequence,
    });
  }

  /** Anyone with access to Redis can publish on a room's channel: an envelope must be valid and name that room. */
  private decode(subscription: RoomSubscription, message: Buffer): Envelope | undefined {
    const decoded = decodeEnvelope(message);
    const error = !decoded.ok
      ? decoded.error
      : decoded.envelope.room !== subscription.room
        ? 'the envelope names another room than its channel'
        : undefined;
    if (error === undefined && decoded.ok) return decoded.envelope;
    this.options.stats.invalid++;
    this.options.limitedLog.log(
      'backplane_invalid',
      'warn',
      `Ignored an invalid message on backplane channel ${subscription.channel}: ${error}`,
    );
    return undefined;
  }

  private checkSequence(subscription: RoomSubscription, nodeId: Buffer, sequence: number): void {
    const seen = subscription.lastSequence;
    const key = nodeId.toString('latin1');
    const last = seen.get(key);
    if (last === undefined) {
      if (seen.size >= MAX_TRACKED_NODES) {
        const oldest = seen.keys().next().value;
        if (oldest !== undefined) seen.delete(oldest);
      }
    } else if (sequence > last + 1) {
      const missed = sequence - last - 1;
      this.options.stats.missed += missed;
      this.options.limitedLog.log(
        'backplane_missed',
        'warn',
        `Missed ${missed} message${missed === 1 ? '' : 's'} of room ${JSON.stringify(subscription.room)} ` +
          `from node ${nodeId.toString('hex')} (lost by the backplane, e.g. while this node was disconnected)`,
      );
    }
    seen.set(key, sequence);
  }
}

function sweepLingering(relay: BackplaneRelay): void {
  relay.sweep();
}
