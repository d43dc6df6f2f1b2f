import type { RoomActivity } from '../hub/broadcast.js';
import {
  DISCONNECT_REASONS,
  DROP_REASONS,
  type PlainHistogram,
  REJECT_REASONS,
  RELAY_DROP_REASON,
  type Stats,
} from '../stats.js';

/**
 * What GET /stats answers besides the connection count (issue 19): cumulative
 * counters (the page turns two of them into a rate, as Prometheus does), the
 * ping round-trip buckets, and the busiest rooms. Every field is bounded: the
 * reason lists are the declared ones and the room list has at most
 * BUSIEST_ROOMS entries, whatever the number of rooms.
 */
export interface ConsoleSnapshot {
  /** When it was taken, in ms since the epoch (the page's rates divide by differences of it). */
  readonly time: number;
  readonly connections: number;
  readonly messagesIn: number;
  readonly messagesOut: number;
  readonly bytesIn: number;
  readonly bytesOut: number;
  readonly dropped: Record<string, number>;
  readonly serverDisconnects: Record<string, number>;
  readonly upgradesRejected: Record<string, number>;
  readonly pingRtt: HistogramCounts;
  /** Broadcast mode only. */
  readonly rooms?: RoomsSnapshot | undefined;
}

export interface HistogramCounts {
  /** Upper bounds in seconds; counts has one more entry (above the last bound). */
  readonly bounds: readonly number[];
  readonly counts: readonly number[];
  readonly count: number;
  readonly sum: number;
}

export interface RoomsSnapshot {
  /** Rooms with at least one member. */
  readonly count: number;
  readonly busiest: readonly BusyRoom[];
}

export interface BusyRoom {
  readonly room: string;
  readonly members: number;
  /** Messages broadcast into the room per second, over the last look (about a second). */
  readonly messagesPerSecond: number;
  /** Messages handed to members per second. */
  readonly deliveredPerSecond: number;
}

/** Rows of the busiest-rooms table. */
export const BUSIEST_ROOMS = 10;
/** The busiest rooms are recomputed (one pass over the rooms) at most this often, however many pages poll. */
export const ROOMS_REFRESH_MS = 1000;

export interface SnapshotSources {
  readonly stats: Stats;
  readonly connectionCount: () => number;
  /** Broadcast mode: the hub's busiest rooms since its previous call, and the number of rooms. */
  readonly rooms?: { readonly busiest: (limit: number) => RoomActivity[]; readonly count: () => number };
}

const pick = (source: Readonly<Record<string, number>>, keys: readonly string[]): Record<string, number> =>
  Object.fromEntries(keys.map((key) => [key, source[key] ?? 0]));

const histogramCounts = (histogram: PlainHistogram): HistogramCounts => ({
  bounds: histogram.bounds,
  counts: [...histogram.counts],
  count: histogram.count,
  sum: histogram.sum,
});

/** Reads this process's counters; the busiest rooms are cached for ROOMS_REFRESH_MS. */
export function snapshotReader(sources: SnapshotSources, now = Date.now): () => ConsoleSnapshot {
  const { stats } = sources;
  let lookedAt = now();
  let rooms: RoomsSnapshot | undefined;
  const readRooms = (time: number): RoomsSnapshot | undefined => {
    const source = sources.rooms;
    if (source === undefined) return undefined;
    if (rooms === undefined || time - lookedAt >= ROOMS_REFRESH_MS) {
      const seconds = Math.max(time - lookedAt, 1) / 1000;
      lookedAt = time;
      rooms = {
        count: source.count(),
        busiest: source.busiest(BUSIEST_ROOMS).map((activity) => ({
          room: activity.room,
          members: activity.members,
          messagesPerSecond: activity.messages / seconds,
          deliveredPerSecond: activity.delivered / seconds,
        })),
      };
    }
    return rooms;
  };
  return function readSnapshot() {
    const time = now();
    return {
      time,
      connections: sources.connectionCount(),
      messagesIn: stats.messagesReceived,
      messagesOut: stats.messagesDelivered,
      bytesIn: stats.bytesReceived,
      bytesOut: stats.bytesSent,
      dropped: {
        ...pick(stats.messagesDropped, DROP_REASONS),
        [RELAY_DROP_REASON]: stats.backplane.publishFailures,
      },
      serverDisconnects: pick(stats.serverDisconnects, DISCONNECT_REASONS),
      upgradesRejected: pick(stats.upgradesRejected, REJECT_REASONS),
      pingRtt: histogramCounts(stats.pingRtt),
      rooms: readRooms(time),
    };
  };
}

function sumRecords(records: ReadonlyArray<Readonly<Record<string, number>>>): Record<string, number> {
  const total: Record<string, number> = {};
  for (const record of records) {
    for (const [key, value] of Object.entries(record)) total[key] = (total[key] ?? 0) + value;
  }
  return total;
}

/**
 * The cluster's snapshot from its workers' (--workers): counters and buckets
 * summed. A room has members in several workers, each of which receives every
 * message of the room (the IPC or Redis backplane): members and deliveries are
 * summed, messages per second is the largest any worker saw. The room list is
 * the merge of each worker's busiest, so a room busy only in sum may be missing.
 */
export function mergeSnapshots(parts: readonly ConsoleSnapshot[]): ConsoleSnapshot | undefined {
  const first = parts[0];
  if (first === undefined) return undefined;
  const sum = (read: (part: ConsoleSnapshot) => number): number =>
    parts.reduce((total, part) => total + read(part), 0);
  const roomParts = parts.flatMap((part) => (part.rooms ? [part.rooms] : []));
  let rooms: RoomsSnapshot | undefined;
  if (roomParts.length > 0) {
    const byName = new Map<string, BusyRoom>();
    for (const room of roomParts.flatMap((part) => part.busiest)) {
      const seen = byName.get(room.room);
      byName.set(
        room.room,
        seen === undefined
          ? room
          : {
              room: room.room,
              members: seen.members + room.members,
              messagesPerSecond: Math.max(seen.messagesPerSecond, room.messagesPerSecond),
              deliveredPerSecond: seen.deliveredPerSecond + room.deliveredPerSecond,
            },
      );
    }
    rooms = {
      // Rooms of the same name in several workers count once per worker: an upper bound.
      count: roomParts.reduce((total, part) => total + part.count, 0),
      busiest: [...byName.values()]
        .sort((a, b) => b.messagesPerSecond - a.messagesPerSecond || b.members - a.members)
        .slice(0, BUSIEST_ROOMS),
    };
  }
  return {
    time: Math.max(...parts.map((part) => part.time)),
    connections: sum((part) => part.connections),
    messagesIn: sum((part) => part.messagesIn),
    messagesOut: sum((part) => part.messagesOut),
    bytesIn: sum((part) => part.bytesIn),
    bytesOut: sum((part) => part.bytesOut),
    dropped: sumRecords(parts.map((part) => part.dropped)),
    serverDisconnects: sumRecords(parts.map((part) => part.serverDisconnects)),
    upgradesRejected: sumRecords(parts.map((part) => part.upgradesRejected)),
    pingRtt: {
      bounds: first.pingRtt.bounds,
      counts: first.pingRtt.counts.map((_, i) => sum((part) => part.pingRtt.counts[i] ?? 0)),
      count: sum((part) => part.pingRtt.count),
      sum: sum((part) => part.pingRtt.sum),
    },
    rooms,
  };
}
