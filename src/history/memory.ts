import {
  type HistoryEntry,
  type HistoryRead,
  type HistoryReader,
  newEpoch,
  type Position,
} from './history.js';

export interface MemoryHistoryOptions {
  /** Messages kept per room (--history-size). */
  readonly maxLength: number;
  /** A room's history is forgotten this long after its last message (--history-ttl); the epoch then changes. */
  readonly ttlMs: number;
  /** Monotonic milliseconds (tests). */
  readonly now?: () => number;
}

class RoomHistory {
  offset = 0;
  /** entries[head..] are kept; the array is compacted when half of it is dead. */
  entries: HistoryEntry[] = [];
  head = 0;
  bytes = 0;
  constructor(
    readonly epoch: string,
    public touchedAt: number,
  ) {}
}

/**
 * History on a single node (no backplane), with the semantics of the Redis
 * store: at most `maxLength` messages per room, the whole room forgotten
 * `ttlMs` after its last message (a new epoch next time), positions assigned
 * synchronously here. Memory is bounded by maxLength messages per room with a
 * message within the TTL; one unref'd timer drops expired rooms.
 */
export class MemoryHistory implements HistoryReader {
  private readonly rooms = new Map<string, RoomHistory>();
  private readonly now: () => number;
  private readonly sweeper: NodeJS.Timeout;
  /** Messages and payload bytes held, over every room (metrics read them at scrape time). */
  entryCount = 0;
  byteCount = 0;

  constructor(private readonly options: MemoryHistoryOptions) {
    this.now = options.now ?? (() => performance.now());
    this.sweeper = setInterval(() => this.sweep(), Math.min(options.ttlMs, 60_000));
    this.sweeper.unref();
  }

  /** Stores a message and returns its entry (offset assigned). The data is copied: a received buffer may share a larger one. */
  append(room: string, data: Buffer, isBinary: boolean): { epoch: string; entry: HistoryEntry } {
    const history = this.current(room);
    history.touchedAt = this.now();
    history.offset++;
    const entry: HistoryEntry = { offset: history.offset, data: Buffer.from(data), isBinary };
    history.entries.push(entry);
    history.bytes += data.length;
    this.entryCount++;
    this.byteCount += data.length;
    if (history.entries.length - history.head > this.options.maxLength) {
      const dropped = history.entries[history.head] as HistoryEntry;
      history.entries[history.head] = undefined as unknown as HistoryEntry;
      history.head++;
      history.bytes -= dropped.data.length;
      this.entryCount--;
      this.byteCount -= dropped.data.length;
      if (history.head > 1024 && history.head * 2 > history.entries.length) {
        history.entries = history.entries.slice(history.head);
        history.head = 0;
      }
    }
    return { epoch: history.epoch, entry };
  }

  read(room: string, epoch: string | undefined, after: number): Promise<HistoryRead> {
    return Promise.resolve(this.readNow(room, epoch, after));
  }

  readNow(room: string, epoch: string | undefined, after: number): HistoryRead {
    const history = this.current(room);
    if (epoch !== history.epoch) return { epoch: history.epoch, offset: history.offset, messages: undefined };
    const entries = history.entries;
    const firstOffset = history.offset - (entries.length - history.head) + 1;
    const from = history.head + Math.max(0, after + 1 - firstOffset);
    return { epoch: history.epoch, offset: history.offset, messages: entries.slice(from) };
  }

  position(room: string): Position {
    const history = this.current(room);
    return { epoch: history.epoch, offset: history.offset };
  }

  get roomCount(): number {
    return this.rooms.size;
  }

  close(): void {
    clearInterval(this.sweeper);
  }

  private current(room: string): RoomHistory {
    const now = this.now();
    let history = this.rooms.get(room);
    if (history !== undefined && now - history.touchedAt >= this.options.ttlMs) {
      this.forget(room, history);
      history = undefined;
    }
    if (history === undefined) {
      history = new RoomHistory(newEpoch(), now);
      this.rooms.set(room, history);
    }
    return history;
  }

  private forget(room: string, history: RoomHistory): void {
    this.rooms.delete(room);
    this.entryCount -= history.entries.length - history.head;
    this.byteCount -= history.bytes;
  }

  private sweep(): void {
    const now = this.now();
    for (const [room, history] of this.rooms) {
      if (now - history.touchedAt >= this.options.ttlMs) this.forget(room, history);
    }
  }
}
