import type { RateLimitedLog } from '../log.js';
import type { Backplane, BackplaneCounters, BackplaneHealth, BackplaneState } from './backplane.js';

/**
 * The IPC driver (issue 5, --workers): the workers of one wshub process are the
 * nodes, the primary process is the medium. A worker's messages go to the
 * primary over the cluster IPC channel (`serialization: 'advanced'`, so
 * Buffers travel as bytes, never as JSON), and the primary's IpcBroker sends
 * them on to every other worker subscribed to the channel, in arrival order.
 *
 * Guarantees (backplane.ts), and how this driver meets them:
 * - At most once: nothing is stored or retried.
 * - Per-publisher order: one IPC channel per worker is a FIFO pipe, and the
 *   broker forwards each batch to every other worker in the order it arrived.
 * - Loopback: a worker hands its own messages to its own handler locally
 *   (they never cross the pipe twice).
 * - Outages: the medium is the primary process. It does not come back: when
 *   the IPC channel closes (the primary died) Node's cluster ends the worker at
 *   once. Until then publish() fails fast only when `maxPendingBytes` are
 *   written to the pipe and not yet taken by the kernel (a stalled primary);
 *   the broker likewise drops, for one worker only, what that worker's pipe
 *   cannot take. Both losses are counted: publishFailures on the sender, and
 *   the receiver's relay sees the gap in the sender's sequence (missed).
 *
 * Per-room routing (issue 18) works here as with Redis: a worker subscribes to
 * a room's channel while it has a member in it, and the broker forwards a
 * batch only to the workers subscribed to its channel, so a worker without a
 * member in a room never receives (or deserializes) its messages.
 *
 * Messages published in one event-loop turn on one channel travel as one IPC
 * message: a single Buffer of [u32 length][bytes]… records, so a burst costs
 * one serialization and one pipe write, not one per message.
 */

/** One end of an IPC channel: `process` in a worker, a cluster `Worker` in the primary, a MessagePort in tests. */
export interface IpcLink {
  /** The callback runs once the message was handed to the OS (or failed). */
  send(message: object, callback: (error: Error | null) => void): void;
  onMessage(listener: (message: unknown) => void): void;
  /** Called once when the channel closes for good. */
  onDisconnect(listener: () => void): void;
  readonly connected: boolean;
}

/** The messages of the IPC backplane; every wshub IPC message has a `wshub` field naming its kind. */
export const IPC_SUBSCRIBE = 'backplane:subscribe';
export const IPC_SUBSCRIBED = 'backplane:subscribed';
export const IPC_UNSUBSCRIBE = 'backplane:unsubscribe';
export const IPC_LEAVE = 'backplane:leave';
export const IPC_BATCH = 'backplane:batch';

interface BatchMessage {
  readonly wshub: typeof IPC_BATCH;
  readonly channel: string;
  /** [u32 big-endian length][bytes], repeated. */
  readonly records: Uint8Array;
  readonly count: number;
}

type IpcMessage =
  | {
      readonly wshub: typeof IPC_SUBSCRIBE | typeof IPC_SUBSCRIBED | typeof IPC_UNSUBSCRIBE;
      readonly channel: string;
    }
  | { readonly wshub: typeof IPC_LEAVE }
  | BatchMessage;

/** Whether an IPC message is one of wshub's of one family (`backplane:`, `cluster:`): other messages are not ours. */
export function isWshubMessage(message: unknown, family: string): boolean {
  const kind =
    typeof message === 'object' && message !== null ? (message as { wshub?: unknown }).wshub : undefined;
  return typeof kind === 'string' && kind.startsWith(family);
}

const isIpcMessage = (message: unknown): message is IpcMessage => isWshubMessage(message, 'backplane:');

const RECORD_HEADER = 4;

function encodeRecords(messages: readonly Buffer[], bytes: number): Buffer {
  const records = Buffer.allocUnsafe(bytes + RECORD_HEADER * messages.length);
  let offset = 0;
  for (const message of messages) {
    records.writeUInt32BE(message.length, offset);
    message.copy(records, offset + RECORD_HEADER);
    offset += RECORD_HEADER + message.length;
  }
  return records;
}

/** Calls `each` with every record of a batch, as views into it (no copy). */
function forEachRecord(records: Uint8Array, each: (message: Buffer) => void): boolean {
  const buffer = Buffer.from(records.buffer, records.byteOffset, records.byteLength);
  let offset = 0;
  while (offset < buffer.length) {
    if (offset + RECORD_HEADER > buffer.length) return false;
    const length = buffer.readUInt32BE(offset);
    const end = offset + RECORD_HEADER + length;
    if (end > buffer.length) return false;
    each(buffer.subarray(offset + RECORD_HEADER, end));
    offset = end;
  }
  return true;
}

interface PendingBatch {
  readonly messages: Buffer[];
  bytes: number;
}

export interface IpcBackplaneOptions {
  readonly link: IpcLink;
  readonly counters: BackplaneCounters;
  readonly limitedLog: RateLimitedLog;
  /** Bytes handed to the pipe and not yet written, at most; beyond it publish() fails fast. */
  readonly maxPendingBytes: number;
}

/** The worker's end: the Backplane the relay of each worker uses. */
export class IpcBackplane implements Backplane {
  private readonly handlers = new Map<string, (message: Buffer) => void>();
  private readonly awaitingAck = new Map<string, Array<() => void>>();
  private batches = new Map<string, PendingBatch>();
  private flushScheduled = false;
  private pendingBytes = 0;
  private closed = false;
  private disconnected = false;

  constructor(private readonly options: IpcBackplaneOptions) {
    options.link.onMessage(this.onLinkMessage);
    options.link.onDisconnect(this.onLinkDisconnect);
    this.disconnected = !options.link.connected;
  }

  publish(channel: string, message: Buffer): boolean {
    const { counters } = this.options;
    if (this.closed || this.disconnected) {
      counters.publishFailures++;
      this.logDrop(this.closed ? 'the backplane is closed' : 'the primary process is gone');
      return false;
    }
    // One message always fits, however large: the bound is on what waits behind it.
    if (this.pendingBytes > 0 && this.pendingBytes + message.length > this.options.maxPendingBytes) {
      counters.publishFailures++;
      this.logDrop(`${this.pendingBytes} bytes are still waiting for the IPC pipe to the primary`);
      return false;
    }
    this.pendingBytes += message.length;
    let batch = this.batches.get(channel);
    if (batch === undefined) {
      batch = { messages: [], bytes: 0 };
      this.batches.set(channel, batch);
    }
    batch.messages.push(message);
    batch.bytes += message.length;
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(flushIpcBackplane, this);
    }
    return true;
  }

  subscribe(channel: string, onMessage: (message: Buffer) => void): Promise<void> {
    this.handlers.set(channel, onMessage);
    if (this.closed) return Promise.resolve();
    return new Promise((resolve) => {
      const waiting = this.awaitingAck.get(channel);
      if (waiting !== undefined) {
        waiting.push(resolve);
        return;
      }
      this.awaitingAck.set(channel, [resolve]);
      if (!this.disconnected) this.options.link.send({ wshub: IPC_SUBSCRIBE, channel }, ignoreSendResult);
    });
  }

  /**
   * The broker stops forwarding the channel once it reads this (the pipe is
   * FIFO, so after every batch already sent); there is nothing to wait for.
   */
  async unsubscribe(channel: string): Promise<void> {
    this.handlers.delete(channel);
    // A pending subscription ends here, so a later subscribe() sends a SUBSCRIBE of its own after this.
    const waiters = this.awaitingAck.get(channel);
    this.awaitingAck.delete(channel);
    for (const resolve of waiters ?? []) resolve();
    if (!this.closed && !this.disconnected) {
      this.options.link.send({ wshub: IPC_UNSUBSCRIBE, channel }, ignoreSendResult);
    }
  }

  health(): BackplaneHealth {
    return {
      state: this.state(),
      detail: this.disconnected && !this.closed ? 'the primary process is gone (IPC channel closed)' : '',
    };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.handlers.clear();
    this.batches.clear();
    if (this.options.link.connected) this.options.link.send({ wshub: IPC_LEAVE }, ignoreSendResult);
    const waiters = [...this.awaitingAck.values()].flat();
    this.awaitingAck.clear();
    for (const resolve of waiters) resolve();
  }

  /** Sends what this turn published, one IPC message per channel, then loops it back locally. */
  flush(): void {
    this.flushScheduled = false;
    const batches = this.batches;
    if (batches.size === 0) return;
    this.batches = new Map();
    for (const [channel, batch] of batches) {
      const count = batch.messages.length;
      const released = batch.bytes;
      if (this.disconnected) {
        this.lost(count, released, 'the primary process is gone');
        continue;
      }
      const message: BatchMessage = {
        wshub: IPC_BATCH,
        channel,
        records: encodeRecords(batch.messages, batch.bytes),
        count,
      };
      this.options.link.send(message, (error) => {
        if (error) this.lost(count, released, error.message);
        else {
          this.pendingBytes -= released;
          this.options.counters.published += count;
        }
      });
      const own = this.handlers.get(channel);
      if (own !== undefined) {
        for (const published of batch.messages) {
          if (this.closed) break;
          this.options.counters.received++;
          own(published);
        }
      }
    }
  }

  private lost(count: number, bytes: number, why: string): void {
    this.pendingBytes -= bytes;
    this.options.counters.publishFailures += count;
    this.logDrop(why);
  }

  private state(): BackplaneState {
    if (this.closed) return 'closed';
    if (this.disconnected) return 'disconnected';
    return this.awaitingAck.size > 0 ? 'connecting' : 'connected';
  }

  private logDrop(why: string): void {
    this.options.limitedLog.log(
      'backplane_unavailable',
      'warn',
      `Broadcast not relayed to the other workers: ${why}`,
    );
  }

  private readonly onLinkMessage = (message: unknown): void => {
    if (!isIpcMessage(message) || this.closed) return;
    if (message.wshub === IPC_SUBSCRIBED) {
      const waiters = this.awaitingAck.get(message.channel) ?? [];
      this.awaitingAck.delete(message.channel);
      for (const resolve of waiters) resolve();
    } else if (message.wshub === IPC_BATCH && message.records instanceof Uint8Array) {
      const handler = this.handlers.get(message.channel);
      if (handler === undefined) return;
      const counters = this.options.counters;
      forEachRecord(message.records, (record) => {
        if (this.closed) return;
        counters.received++;
        handler(record);
      });
    }
  };

  private readonly onLinkDisconnect = (): void => {
    this.disconnected = true;
  };
}

function flushIpcBackplane(backplane: IpcBackplane): void {
  backplane.flush();
}

function ignoreSendResult(): void {}

interface Member {
  readonly name: string;
  readonly channels: Set<string>;
  pendingBytes: number;
}

export interface IpcBrokerOptions {
  readonly limitedLog: RateLimitedLog;
  /** Bytes forwarded to one worker and not yet written to its pipe, at most; beyond it that worker misses messages. */
  readonly maxPendingBytes: number;
}

/**
 * The primary's end: relays every batch a worker publishes to the other
 * workers subscribed to its channel, as received (Node serializes it once per
 * receiving pipe). It never looks inside the envelopes.
 */
export class IpcBroker {
  private readonly members = new Map<IpcLink, Member>();
  /** Messages not forwarded to some worker because its pipe was full (each receiver counts it as missed). */
  dropped = 0;

  constructor(private readonly options: IpcBrokerOptions) {}

  /** Starts relaying for one worker; `name` appears in logs ("worker 2"). */
  attach(link: IpcLink, name: string): void {
    const member: Member = { name, channels: new Set(), pendingBytes: 0 };
    this.members.set(link, member);
    link.onMessage((message) => this.onMessage(link, member, message));
    link.onDisconnect(() => this.members.delete(link));
  }

  detach(link: IpcLink): void {
    this.members.delete(link);
  }

  private onMessage(from: IpcLink, member: Member, message: unknown): void {
    if (!isIpcMessage(message) || !this.members.has(from)) return;
    if (message.wshub === IPC_SUBSCRIBE) {
      member.channels.add(message.channel);
      from.send({ wshub: IPC_SUBSCRIBED, channel: message.channel }, ignoreSendResult);
    } else if (message.wshub === IPC_UNSUBSCRIBE) {
      member.channels.delete(message.channel);
    } else if (message.wshub === IPC_LEAVE) {
      this.members.delete(from);
    } else if (message.wshub === IPC_BATCH) {
      this.forward(from, message);
    }
  }

  private forward(from: IpcLink, batch: BatchMessage): void {
    const size = batch.records.byteLength;
    for (const [link, member] of this.members) {
      if (link === from || !member.channels.has(batch.channel) || !link.connected) continue;
      if (member.pendingBytes > 0 && member.pendingBytes + size > this.options.maxPendingBytes) {
        this.dropped += batch.count;
        this.options.limitedLog.log(
          'backplane_ipc_full',
          'warn',
          `Dropped ${batch.count} broadcast message${batch.count === 1 ? '' : 's'} for ${member.name}: ${member.pendingBytes} bytes are still waiting for its IPC pipe`,
        );
        continue;
      }
      member.pendingBytes += size;
      link.send(batch, () => {
        member.pendingBytes -= size;
      });
    }
  }
}
