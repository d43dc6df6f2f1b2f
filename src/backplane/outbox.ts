import type { RateLimitedLog } from '../log.js';
import type { BackplaneStats, HistoryStats } from '../stats.js';

/** One message this node published, kept until Redis has accepted it. */
export interface OutboxMessage {
  readonly room: string;
  readonly channel: string;
  readonly sequence: number;
  readonly envelope: Buffer;
  /** Messages of the same room dropped before this one (over the bound): the room's offsets skip them. */
  readonly lost: number;
  /**
   * Set at each send: the sequence of this node's previous message of the room that was sent and
   * not answered yet (0: none). Redis stores this one only once that one is stored, so no message
   * overtakes an earlier one of its room. On a Redis Cluster it could: during a failover ioredis
   * may run a later command on the new master while an earlier one failed on the dead one, and
   * the earlier one, sent again, would then pass for a duplicate (issue 18).
   */
  after: number;
  attempts: number;
  done: boolean;
}

export interface OutboxOptions {
  /** Runs the publish (history) script; resolves once Redis has stored the message or knew it already. */
  readonly send: (message: OutboxMessage) => Promise<unknown>;
  /** Whether the connection `send` uses is up; when it comes back, call resume(). */
  readonly isConnected: () => boolean;
  /** --backplane-max-pending: bytes kept at most; beyond, new messages are dropped (counted, and a hole in their room). */
  readonly maxBytes: number;
  readonly history: HistoryStats;
  readonly counters: BackplaneStats;
  readonly limitedLog: RateLimitedLog;
}

const RETRY_DELAY_MS = 100;

/** ioredis rejects commands in flight with this kind of error when the connection is lost; a ReplyError is Redis's answer. */
const isReplyError = (error: Error): boolean => error.name === 'ReplyError';

/**
 * The publishing side of lossless delivery (issue 16). Every message this node
 * publishes stays here until Redis answered its publish script, in order: the
 * messages are pipelined on one connection, and when the connection drops
 * (Redis killed, restarted, a network cut) every unanswered one is sent again,
 * in the same order, once Redis is back. A message Redis stored just before the
 * connection dropped is recognised by the script (its node's sequence number
 * is not above the last one stored) and not stored twice. Local delivery never
 * waits for any of this. Memory is bounded by `maxBytes`: beyond it a message is
 * dropped, counted and logged, and the room's next offset skips it, so clients
 * see a reset instead of a silent gap.
 */
export class Outbox {
  private queue: OutboxMessage[] = [];
  private head = 0;
  /** Sent and not answered yet. */
  private inFlight = 0;
  /** Index of the next message to send (from `head` up to here, all were sent). */
  private next = 0;
  /** A send failed: wait until every answer is in, then resend from the oldest unanswered. */
  private failed = false;
  private bytes = 0;
  private readonly lost = new Map<string, number>();
  /** Per room, the sequence of the last message sent and not answered yet (see OutboxMessage.after). */
  private readonly unanswered = new Map<string, number>();
  private drainWaiters: Array<() => void> = [];

  constructor(private readonly options: OutboxOptions) {}

  get depth(): number {
    return this.queue.length - this.head;
  }

  get byteCount(): number {
    return this.bytes;
  }

  push(room: string, channel: string, sequence: number, envelope: Buffer): void {
    const { maxBytes, history, counters, limitedLog } = this.options;
    if (this.bytes + envelope.length > maxBytes && this.depth > 0) {
      history.outboxDropped++;
      counters.publishFailures++;
      this.lost.set(room, (this.lost.get(room) ?? 0) + 1);
      limitedLog.log(
        'backplane_unavailable',
        'warn',
        `Message not relayed to other nodes: more than ${maxBytes} bytes are waiting for Redis (--backplane-max-pending); its room's clients get a reset`,
      );
      return;
    }
    const lost = this.lost.get(room) ?? 0;
    if (lost > 0) this.lost.delete(room);
    this.queue.push({ room, channel, sequence, envelope, lost, after: 0, attempts: 0, done: false });
    this.bytes += envelope.length;
    this.pump();
  }

  /** The connection is back: send what is waiting. */
  resume(): void {
    this.pump();
  }

  /** Resolves once everything was accepted, or after `timeoutMs` (graceful shutdown). */
  drain(timeoutMs: number): Promise<void> {
    if (this.depth === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, timeoutMs);
      timer.unref();
      this.drainWaiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  private pump(): void {
    if (this.failed || !this.options.isConnected()) return;
    while (this.next < this.queue.length) {
      const message = this.queue[this.next++] as OutboxMessage;
      if (message.done) continue;
      message.after = this.unanswered.get(message.room) ?? 0;
      this.unanswered.set(message.room, message.sequence);
      this.inFlight++;
      if (message.attempts++ > 0) this.options.history.redeliveries++;
      this.options.send(message).then(
        () => this.settled(message),
        (error: Error) => this.sendFailed(message, error),
      );
    }
  }

  private answered(message: OutboxMessage): void {
    this.inFlight--;
    if (this.unanswered.get(message.room) === message.sequence) this.unanswered.delete(message.room);
  }

  private settled(message: OutboxMessage): void {
    this.answered(message);
    message.done = true;
    this.options.counters.published++;
    this.advance();
    // On a Redis Cluster one shard can fail while another answers: the last answer of a failed
    // round may be a success, and the round's retry must still come (issue 18).
    if (this.failed && this.inFlight === 0) this.retrySoon();
  }

  private sendFailed(message: OutboxMessage, error: Error): void {
    this.answered(message);
    if (isReplyError(error)) {
      // Redis refused this message itself (e.g. out of memory, a script error): resending the
      // same command cannot help. Dropped, counted, and a hole in its room.
      message.done = true;
      this.options.history.outboxDropped++;
      this.options.counters.publishFailures++;
      this.lost.set(message.room, (this.lost.get(message.room) ?? 0) + 1);
      this.options.limitedLog.log(
        'backplane_unavailable',
        'warn',
        `Message not relayed to other nodes: Redis refused it (${error.message})`,
      );
      this.advance();
      if (this.failed && this.inFlight === 0) this.retrySoon();
      return;
    }
    this.failed = true;
    this.options.limitedLog.log(
      'outbox_retry',
      'warn',
      `Publishing to Redis failed (${error.message}); kept for a retry once Redis is back`,
    );
    if (this.inFlight === 0) this.retrySoon();
  }

  /** Every answer of a round with a failure is in: what is not done goes again, from the oldest. */
  private retrySoon(): void {
    this.failed = false;
    this.advance();
    this.next = this.head;
    // Not at once: the connection may not have noticed it is down yet. resume() comes on 'ready'.
    setTimeout(() => this.pump(), RETRY_DELAY_MS).unref();
  }

  private advance(): void {
    const queue = this.queue;
    while (this.head < queue.length && (queue[this.head] as OutboxMessage).done) {
      this.bytes -= (queue[this.head] as OutboxMessage).envelope.length;
      queue[this.head] = undefined as unknown as OutboxMessage;
      this.head++;
    }
    if (this.head === queue.length) {
      this.queue = [];
      this.head = 0;
      this.next = 0;
      const waiters = this.drainWaiters;
      this.drainWaiters = [];
      for (const resolve of waiters) resolve();
    } else if (this.head > 1024 && this.head * 2 > queue.length) {
      this.queue = queue.slice(this.head);
      this.next -= this.head;
      this.head = 0;
    }
  }
}
