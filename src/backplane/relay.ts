import { randomBytes } from 'node:crypto';
import type { HistoryEntry } from '../history/history.js';
import { decodePositioned } from '../history/redis.js';
import type { RateLimitedLog } from '../log.js';
import type { BackplaneStats } from '../stats.js';
import type { Backplane } from './backplane.js';
import { decodeEnvelope, encodeEnvelope, isFromNode, NODE_ID_BYTES } from './envelope.js';
import type { Outbox } from './outbox.js';

export interface RelayOptions {
  readonly backplane: Backplane;
  /** The backplane channel; the nodes sharing it form one cluster. */
  readonly channel: string;
  readonly stats: BackplaneStats;
  readonly limitedLog: RateLimitedLog;
  /** Hands a message from another node to the local hub (every local client of `room`). */
  readonly deliverLocally: (room: string, data: Buffer, isBinary: boolean) => void;
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

/** Remote nodes whose sequence is tracked for gap detection; beyond this the oldest is forgotten. */
const MAX_TRACKED_NODES = 1024;

const preciseNow = (): number => performance.timeOrigin + performance.now();

/**
 * Joins the local hub to the other nodes (issue 6). The hub has already
 * delivered a client's broadcast locally when it calls publish(): the relay
 * wraps it in an envelope with this node's id and next sequence number and
 * hands it to the backplane. Envelopes coming back are ignored when they are
 * this node's own (so no client gets a message twice), checked for gaps (what
 * the backplane lost is counted, never silent), and delivered to the local
 * clients of their room in arrival order, which is each sender's order.
 */
export class BackplaneRelay {
  readonly nodeId: Buffer;
  private sequence = 0;
  private readonly lastSequence = new Map<string, number>();
  private readonly now: () => number;

  constructor(private readonly options: RelayOptions) {
    this.nodeId = options.nodeId ?? randomBytes(NODE_ID_BYTES);
    this.now = options.now ?? preciseNow;
  }

  /** Subscribes to the channel; resolves once the subscription is active (never rejects). */
  start(): Promise<void> {
    return this.options.backplane.subscribe(this.options.channel, this.onMessage);
  }

  /** The BroadcastRelay of the hub: called after local delivery. */
  publish(room: string, data: Buffer, isBinary: boolean): void {
    this.sequence++;
    const envelope = encodeEnvelope({
      nodeId: this.nodeId,
      sequence: this.sequence,
      sentAt: this.now(),
      isBinary,
      room,
      payload: data,
    });
    if (this.options.outbox) {
      this.options.outbox.push(room, this.options.channel, this.sequence, envelope);
      return;
    }
    // A refusal is counted and logged by the driver (publishFailures, backplane_unavailable). The
    // number is reused, so a gap seen by other nodes always means a loss this node did not see.
    if (!this.options.backplane.publish(this.options.channel, envelope)) this.sequence--;
  }

  private readonly onMessage = (message: Buffer): void => {
    const positioned = this.options.deliverPositioned && decodePositioned(message);
    if (positioned) {
      this.onPositioned(positioned.epoch, positioned.offset, positioned.envelope);
      return;
    }
    if (isFromNode(message, this.nodeId)) return;
    const { stats } = this.options;
    const decoded = decodeEnvelope(message);
    if (!decoded.ok) {
      this.invalid(decoded.error);
      return;
    }
    const envelope = decoded.envelope;
    this.checkSequence(envelope.nodeId, envelope.sequence);
    stats.receivedFromOtherNodes++;
    // Clocks of different hosts can disagree; a negative latency is clock skew, not time travel.
    stats.deliveryLatency.observe(Math.max(0, this.now() - envelope.sentAt) / 1000);
    this.options.deliverLocally(envelope.room, envelope.payload, envelope.isBinary);
  };

  /** A message stored in the room's history: every node's, this one's included, in offset order. */
  private onPositioned(epoch: string, offset: number, message: Buffer): void {
    const decoded = decodeEnvelope(message);
    const { stats } = this.options;
    if (!decoded.ok) {
      this.invalid(decoded.error);
      return;
    }
    const envelope = decoded.envelope;
    if (!envelope.nodeId.equals(this.nodeId)) {
      this.checkSequence(envelope.nodeId, envelope.sequence);
      stats.receivedFromOtherNodes++;
      stats.deliveryLatency.observe(Math.max(0, this.now() - envelope.sentAt) / 1000);
    }
    this.options.deliverPositioned?.(envelope.room, epoch, {
      offset,
      data: envelope.payload,
      isBinary: envelope.isBinary,
      node: envelope.nodeId,
    });
  }

  private invalid(error: string): void {
    this.options.stats.invalid++;
    this.options.limitedLog.log(
      'backplane_invalid',
      'warn',
      `Ignored an invalid message on backplane channel ${this.options.channel}: ${error}`,
    );
  }

  private checkSequence(nodeId: Buffer, sequence: number): void {
    const key = nodeId.toString('latin1');
    const last = this.lastSequence.get(key);
    if (last === undefined) {
      if (this.lastSequence.size >= MAX_TRACKED_NODES) {
        const oldest = this.lastSequence.keys().next().value;
        if (oldest !== undefined) this.lastSequence.delete(oldest);
      }
    } else if (sequence > last + 1) {
      const missed = sequence - last - 1;
      this.options.stats.missed += missed;
      this.options.limitedLog.log(
        'backplane_missed',
        'warn',
        `Missed ${missed} message${missed === 1 ? '' : 's'} from node ${nodeId.toString('hex')} ` +
          '(lost by the backplane, e.g. while this node was disconnected)',
      );
    }
    this.lastSequence.set(key, sequence);
  }
}
