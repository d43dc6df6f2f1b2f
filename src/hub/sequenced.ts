import {
  type HistoryEntry,
  type HistoryRead,
  type HistoryReader,
  messageFrame,
  messageId,
  type Position,
  pendingFrame,
  resetFrame,
  SUBPROTOCOL_V1,
  welcomeFrame,
} from '../history/history.js';
import type { RateLimitedLog } from '../log.js';
import type { HistoryStats, ResetReason } from '../stats.js';
import type { Peer } from './hub.js';
import { OutboundMessage } from './message.js';

export interface SequencedRoomsOptions {
  readonly reader: HistoryReader;
  /**
   * Whether this node already delivered `entry` to its raw (non-v1) peers: it
   * published it itself (client broadcast or publish API), delivering it locally
   * first. Such entries go only to v1 peers when their position becomes known.
   */
  readonly isLocal: (entry: HistoryEntry) => boolean;
  readonly stats: HistoryStats;
  readonly limitedLog: RateLimitedLog;
  /** --max-buffered-bytes: a replay pauses while its receiver has more than half of this waiting. */
  readonly maxBufferedBytes: number;
  /** With the history in Redis: this node's id (the ids of `pending` frames, see published()). */
  readonly nodeId?: Buffer;
  /** Whether the connection to the store is up: while it is not, nothing waits PENDING_AFTER_MS. */
  readonly storeReachable?: () => boolean;
  /** Monotonic milliseconds (tests). */
  readonly now?: () => number;
}

/**
 * How long Redis may give no position at all while a message published on this node waits for
 * one, before this node's wshub.v1 peers get its waiting messages as `pending` frames (issue 16:
 * local delivery never pauses). Redis answers within a millisecond or two when it is up; a freeze
 * is noticed here, a crash at once (storeLost). A Redis that is behind (a burst queued up) still
 * positions messages all the time: that is no outage, and frames stay positioned.
 */
export const PENDING_AFTER_MS = 250;
const PENDING_CHECK_MS = 50;
/**
 * Checks in a row that saw no position arrive: each check is a turn of the event loop of its own,
 * with the sockets read in between, so a loop that was merely busy (a burst of client messages)
 * does not look like a silent Redis.
 */
const STALLED_CHECKS = PENDING_AFTER_MS / PENDING_CHECK_MS;

/** A message this node published, waiting for its position. */
interface Own {
  readonly sequence: number;
  readonly data: Buffer;
  readonly isBinary: boolean;
  readonly at: number;
}

/** Live messages held while a room catches up (or a replay is paced) before giving up on holding them. */
const MAX_HELD = 10_000;
/** A failed history read is retried after this long (also on every backplane reconnect). */
const RETRY_MS = 500;
const REPLAY_PAUSE_MS = 5;

interface Held {
  readonly epoch: string;
  readonly entry: HistoryEntry;
}

/** A wshub.v1 peer between join and live delivery: waiting for the room's position, or being replayed to. */
class Joiner {
  state: 'waiting' | 'replaying' = 'waiting';
  /** The live history changed under a replay (epoch, hole): it ends with a reset instead. */
  stale = false;
  closed = false;
  /** Replayed then live entries to send, in offset order; `index` is the next. */
  queue: readonly HistoryEntry[] = [];
  index = 0;
  /** Live entries that arrived during the replay. */
  buffer: HistoryEntry[] = [];
  /** Offset of the last message sent to the peer. */
  sent = 0;
  timer: NodeJS.Timeout | undefined = undefined;
  constructor(
    readonly peer: Peer,
    readonly since: Position | undefined,
  ) {}
}

/** One room with at least one local peer: who is in it and where this node's delivery stands. */
class RoomLog {
  readonly raw = new Set<Peer>();
  readonly v1 = new Set<Peer>();
  readonly joiners = new Map<Peer, Joiner>();
  /** The position delivered to this node's peers; epoch undefined until the first read. */
  epoch: string | undefined = undefined;
  last = 0;
  syncing = false;
  /** Another sync is wanted after the running one (a reconnect, an overflow). */
  again = false;
  held: Held[] = [];
  /** This node's messages not yet delivered with their position nor handed out as pending; own[ownHead..] are live. */
  own: Own[] = [];
  ownHead = 0;
  /**
   * Redis is late (PENDING_AFTER_MS): this node's messages go to these v1 peers (those present when
   * it started: later ones never saw the earlier pending messages, so they wait for positions) as
   * `pending` at once, until the last one handed out (`pendingUpTo`) comes back positioned.
   */
  pendingPeers: Set<Peer> | undefined = undefined;
  pendingUpTo = 0;
  constructor(readonly room: string) {}

  get empty(): boolean {
    return this.raw.size === 0 && this.v1.size === 0 && this.joiners.size === 0;
  }
}

/**
 * The rooms of a hub with history (issue 16). Messages reach it with their
 * position; each room delivers them to its local peers strictly in offset
 * order, exactly once: a duplicate (offset already delivered) is dropped, a
 * gap (a message that did not arrive, e.g. while the backplane reconnected) is
 * filled from the history store before anything later is delivered, and a
 * lost history (new epoch, hole) is announced to wshub.v1 peers with a
 * `reset` frame. A wshub.v1 peer is welcomed at the room's position, or
 * resumed: the messages after its `since` are replayed (paced by its outbound
 * buffer) while live ones are buffered, then spliced by offset — no gap, no
 * duplicate at the seam. Each message's v1 frame is built once per node and
 * shared by every v1 receiver (and kept with a memory-stored entry for replays).
 */
export class SequencedRooms {
  private readonly logs = new Map<string, RoomLog>();
  private readonly retry = new Set<RoomLog>();
  private retryTimer: NodeJS.Timeout | undefined = undefined;
  /** Rooms with messages of this node waiting for their position; one timer checks them all. */
  private readonly waiting = new Set<RoomLog>();
  private pendingTimer: NodeJS.Timeout | undefined = undefined;
  /** A positioned message arrived (any room) since the last check: Redis is answering. */
  private progressed = false;
  /** Checks in a row without one. */
  private idleChecks = 0;

  private readonly now: () => number;

  constructor(private readonly options: SequencedRoomsOptions) {
    this.now = options.now ?? (() => performance.now());
  }

  get roomCount(): number {
    return this.logs.size;
  }

  join(peer: Peer, since: Position | undefined): void {
    let log = this.logs.get(peer.room);
    const created = log === undefined;
    if (log === undefined) {
      log = new RoomLog(peer.room);
      this.logs.set(peer.room, log);
    }
    if (peer.protocol !== SUBPROTOCOL_V1) {
      log.raw.add(peer);
    } else {
      const joiner = new Joiner(peer, since);
      log.joiners.set(peer, joiner);
      if (!created && !log.syncing && log.epoch !== undefined) this.startJoiner(log, joiner);
    }
    if (created) this.sync(log);
  }

  leave(peer: Peer): void {
    const log = this.logs.get(peer.room);
    if (log === undefined) return;
    log.raw.delete(peer);
    log.v1.delete(peer);
    log.pendingPeers?.delete(peer);
    const joiner = log.joiners.get(peer);
    if (joiner !== undefined) {
      joiner.closed = true;
      clearTimeout(joiner.timer);
      log.joiners.delete(peer);
    }
    if (log.empty) {
      this.logs.delete(peer.room);
      this.retry.delete(log);
    }
  }

  /** Local raw peers of `room` (a local message is delivered to them at once, before its position is known). */
  rawPeers(room: string): ReadonlySet<Peer> | undefined {
    return this.logs.get(room)?.raw;
  }

  /** A message with its position (from the local store, or from the backplane for every node's messages). */
  accept(room: string, epoch: string, entry: HistoryEntry): void {
    this.progressed = true;
    const log = this.logs.get(room);
    if (log === undefined) return;
    if (log.syncing || log.epoch === undefined) {
      this.hold(log, epoch, entry);
      return;
    }
    if (epoch === log.epoch && entry.offset <= log.last) {
      this.options.stats.duplicatesDropped++;
      return;
    }
    if (epoch !== log.epoch || entry.offset > log.last + 1) {
      // A new epoch or a gap: catch up from the store first, then this one.
      this.hold(log, epoch, entry);
      this.sync(log);
      return;
    }
    this.deliver(log, entry);
  }

  /**
   * This node published a message with the history in Redis (it is in the outbox, its raw peers
   * have it): its v1 peers get it with its position, or as `pending` if Redis takes too long.
   */
  published(room: string, sequence: number, data: Buffer, isBinary: boolean): void {
    const log = this.logs.get(room);
    if (log === undefined) return;
    if (log.pendingPeers !== undefined) {
      this.handOutPending(log, sequence, data, isBinary);
      return;
    }
    log.own.push({ sequence, data, isBinary, at: this.now() });
    if (log.own.length - log.ownHead >= MAX_HELD || this.options.storeReachable?.() === false) {
      this.startPending(log);
      return;
    }
    this.waiting.add(log);
    if (this.pendingTimer === undefined) {
      this.idleChecks = 0;
      this.progressed = false;
      this.pendingTimer = setInterval(checkPending, PENDING_CHECK_MS, this).unref();
    }
  }

  /** The connection to the store dropped: no need to wait PENDING_AFTER_MS to know it is late. */
  storeLost(): void {
    for (const log of this.waiting)
      if (this.logs.get(log.room) === log && log.ownHead < log.own.length) this.startPending(log);
    this.waiting.clear();
  }

  /**
   * When nothing was positioned for PENDING_AFTER_MS, rooms whose oldest waiting message is older
   * than that hand their messages out as pending.
   */
  checkPending(): void {
    const late = this.now() - PENDING_AFTER_MS;
    this.idleChecks = this.progressed ? 0 : this.idleChecks + 1;
    this.progressed = false;
    const stalled = this.idleChecks >= STALLED_CHECKS;
    for (const log of this.waiting) {
      const oldest = log.own[log.ownHead];
      if (this.logs.get(log.room) !== log || oldest === undefined) this.waiting.delete(log);
      else if (stalled && oldest.at <= late) {
        this.waiting.delete(log);
        this.startPending(log);
      }
    }
    if (this.waiting.size === 0) {
      clearInterval(this.pendingTimer);
      this.pendingTimer = undefined;
    }
  }

  private startPending(log: RoomLog): void {
    log.pendingPeers = new Set(log.v1);
    const { own, ownHead } = log;
    log.own = [];
    log.ownHead = 0;
    for (let i = ownHead; i < own.length; i++) {
      const { sequence, data, isBinary } = own[i] as Own;
      this.handOutPending(log, sequence, data, isBinary);
    }
    this.options.limitedLog.log(
      'history_pending',
      'warn',
      `Room ${log.room === '' ? '(default)' : log.room}: Redis has positioned nothing for ${PENDING_AFTER_MS} ms (or the connection dropped) while this node's messages wait; its wshub.v1 clients get them as pending frames until it does`,
    );
  }

  private handOutPending(log: RoomLog, sequence: number, data: Buffer, isBinary: boolean): void {
    log.pendingUpTo = sequence;
    const { nodeId, stats } = this.options;
    const peers = log.pendingPeers;
    if (nodeId === undefined || peers === undefined || peers.size === 0) return;
    stats.pending++;
    const frame = new OutboundMessage(
      pendingFrame(log.room, messageId(nodeId, sequence), data, isBinary),
      false,
      true,
    );
    for (const peer of peers) peer.deliver(frame);
  }

  /** This node's message `sequence` reached the v1 peers with its position: it and older ones no longer wait. */
  private positionedOwn(log: RoomLog, sequence: number): void {
    const own = log.own;
    while (log.ownHead < own.length && (own[log.ownHead] as Own).sequence <= sequence) {
      own[log.ownHead] = undefined as unknown as Own;
      log.ownHead++;
    }
    if (log.ownHead === own.length) {
      log.own = [];
      log.ownHead = 0;
    } else if (log.ownHead > 1024 && log.ownHead * 2 > own.length) {
      log.own = own.slice(log.ownHead);
      log.ownHead = 0;
    }
    if (log.pendingPeers !== undefined && sequence >= log.pendingUpTo) log.pendingPeers = undefined;
  }

  /** Catch every room up with the store (after the backplane reconnected: messages may have passed meanwhile). */
  resync(): void {
    for (const log of this.logs.values()) this.sync(log);
  }

  private hold(log: RoomLog, epoch: string, entry: HistoryEntry): void {
    // The store has every message: beyond the bound the next sync fetches them instead.
    if (log.held.length < MAX_HELD) log.held.push({ epoch, entry });
    else log.again = true;
  }

  private deliver(log: RoomLog, entry: HistoryEntry): void {
    log.last = entry.offset;
    const local = this.options.isLocal(entry);
    if (local && entry.sequence !== undefined) this.positionedOwn(log, entry.sequence);
    if (log.raw.size > 0 && !local) {
      const message = new OutboundMessage(entry.data, entry.isBinary, true);
      for (const peer of log.raw) peer.deliver(message);
    }
    if (log.v1.size > 0) {
      const frame = this.frameOf(log, entry);
      for (const peer of log.v1) peer.deliver(frame);
    }
    for (const joiner of log.joiners.values()) {
      if (joiner.state !== 'replaying') continue;
      if (joiner.buffer.length < MAX_HELD) joiner.buffer.push(entry);
      else joiner.stale = true;
    }
  }

  private frameOf(log: RoomLog, entry: HistoryEntry): OutboundMessage {
    let frame = entry.v1 as OutboundMessage | undefined;
    if (frame === undefined) {
      frame = new OutboundMessage(messageFrame(log.room, log.epoch as string, entry), false, true);
      entry.v1 = frame;
    }
    return frame;
  }

  private sync(log: RoomLog): void {
    if (log.syncing) {
      log.again = true;
      return;
    }
    log.syncing = true;
    log.again = false;
    this.options.reader.read(log.room, log.epoch, log.last).then(
      (read) => this.synced(log, read),
      (error: Error) => {
        log.syncing = false;
        this.options.limitedLog.log(
          'history_unavailable',
          'warn',
          `Room history unavailable (${error.message}); delivery to wshub.v1 clients of the room waits until it is back`,
        );
        this.scheduleRetry(log);
      },
    );
  }

  private synced(log: RoomLog, read: HistoryRead): void {
    log.syncing = false;
    if (this.logs.get(log.room) !== log) return;
    if (log.epoch === undefined) {
      log.epoch = read.epoch;
      log.last = read.offset;
    } else if (read.epoch !== log.epoch) {
      // The history was lost (Redis restarted empty, the TTL passed): everyone continues from the new epoch's start.
      const previous = log.epoch;
      log.epoch = read.epoch;
      log.last = 0;
      this.resetAll(log, 'history_lost', `its epoch changed from ${previous} to ${read.epoch}`);
      log.again = true;
    } else {
      for (const entry of read.messages ?? []) {
        if (entry.offset <= log.last) continue;
        if (entry.offset > log.last + 1) {
          log.last = entry.offset - 1;
          this.resetAll(log, 'history_lost', `messages up to offset ${log.last} are not in its history`);
        }
        this.deliver(log, entry);
      }
      if (read.offset > log.last) {
        log.last = read.offset;
        this.resetAll(log, 'history_lost', `messages up to offset ${log.last} are not in its history`);
      }
    }
    for (const joiner of log.joiners.values()) if (joiner.state === 'waiting') this.startJoiner(log, joiner);
    const held = log.held;
    log.held = [];
    for (const { epoch, entry } of held) this.accept(log.room, epoch, entry);
    if (log.again) this.sync(log);
  }

  private scheduleRetry(log: RoomLog): void {
    this.retry.add(log);
    if (this.retryTimer !== undefined) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      const logs = [...this.retry];
      this.retry.clear();
      for (const pending of logs) if (this.logs.get(pending.room) === pending) this.sync(pending);
    }, RETRY_MS);
    this.retryTimer.unref();
  }

  /** Tells every v1 peer of the room that the history broke: what follows continues from the room's position. */
  private resetAll(log: RoomLog, reason: ResetReason, why: string): void {
    const position = { epoch: log.epoch as string, offset: log.last };
    if (log.v1.size > 0) {
      const frame = new OutboundMessage(resetFrame(log.room, position), false, true);
      for (const peer of log.v1) {
        peer.deliver(frame);
        this.options.stats.resets[reason]++;
      }
    }
    for (const joiner of log.joiners.values()) if (joiner.state === 'replaying') joiner.stale = true;
    this.options.limitedLog.log(
      'history_lost',
      'warn',
      `Room ${log.room === '' ? '(default)' : log.room}: ${why}; wshub.v1 clients get a reset to ${position.epoch}:${position.offset}`,
    );
  }

  private startJoiner(log: RoomLog, joiner: Joiner): void {
    const here: Position = { epoch: log.epoch as string, offset: log.last };
    const since = joiner.since;
    if (since === undefined || (since.epoch === here.epoch && since.offset === here.offset)) {
      this.welcome(log, joiner, here);
      return;
    }
    if (since.epoch !== here.epoch || since.offset > here.offset) {
      this.welcomeReset(log, joiner, 'other_epoch');
      return;
    }
    joiner.state = 'replaying';
    joiner.buffer = [];
    this.options.reader.read(log.room, here.epoch, since.offset).then(
      (read) => this.replay(log, joiner, since, read),
      () => {
        // The store went away between the two reads: start over once it is back.
        joiner.state = 'waiting';
        joiner.buffer = [];
        this.scheduleRetry(log);
      },
    );
  }

  private welcome(log: RoomLog, joiner: Joiner, here: Position): void {
    joiner.peer.deliver(new OutboundMessage(welcomeFrame(log.room, here), false));
    this.promote(log, joiner);
  }

  private welcomeReset(log: RoomLog, joiner: Joiner, reason: ResetReason): void {
    const here: Position = { epoch: log.epoch as string, offset: log.last };
    joiner.peer.deliver(new OutboundMessage(welcomeFrame(log.room, here), false));
    joiner.peer.deliver(new OutboundMessage(resetFrame(log.room, here), false));
    this.options.stats.resets[reason]++;
    this.promote(log, joiner);
  }

  private promote(log: RoomLog, joiner: Joiner): void {
    log.joiners.delete(joiner.peer);
    log.v1.add(joiner.peer);
  }

  private replay(log: RoomLog, joiner: Joiner, since: Position, read: HistoryRead): void {
    if (joiner.closed || this.logs.get(log.room) !== log) return;
    const messages = read.messages;
    if (joiner.stale || read.epoch !== log.epoch || messages === undefined) {
      this.welcomeReset(log, joiner, 'other_epoch');
      return;
    }
    const first = messages[0];
    if (first === undefined ? read.offset > since.offset : first.offset !== since.offset + 1) {
      this.welcomeReset(log, joiner, 'too_old');
      return;
    }
    this.options.stats.replays++;
    joiner.peer.deliver(new OutboundMessage(welcomeFrame(log.room, since), false));
    joiner.sent = since.offset;
    joiner.queue = messages;
    joiner.index = 0;
    this.pump(log, joiner);
  }

  /** Sends the replay, then what arrived live meanwhile, pausing while the peer's buffer is half full. */
  private pump(log: RoomLog, joiner: Joiner): void {
    joiner.timer = undefined;
    if (joiner.closed) return;
    const { peer } = joiner;
    const pauseAbove = this.options.maxBufferedBytes / 2;
    const stats = this.options.stats;
    for (;;) {
      if (joiner.stale) {
        // The replay can no longer be continued without a gap: say so, and go on live from here.
        const here: Position = { epoch: log.epoch as string, offset: log.last };
        peer.deliver(new OutboundMessage(resetFrame(log.room, here), false));
        stats.resets.history_lost++;
        this.promote(log, joiner);
        return;
      }
      while (joiner.index < joiner.queue.length) {
        if ((peer.queuedBytes ?? 0) > pauseAbove) {
          joiner.timer = setTimeout(() => this.pump(log, joiner), REPLAY_PAUSE_MS);
          return;
        }
        const entry = joiner.queue[joiner.index++] as HistoryEntry;
        if (entry.offset <= joiner.sent) continue;
        joiner.sent = entry.offset;
        peer.deliver(this.frameOf(log, entry));
        stats.replayedMessages++;
      }
      if (joiner.buffer.length === 0) break;
      joiner.queue = joiner.buffer;
      joiner.buffer = [];
      joiner.index = 0;
    }
    this.promote(log, joiner);
  }
}

function checkPending(rooms: SequencedRooms): void {
  rooms.checkPending();
}
