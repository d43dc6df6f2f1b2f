import { randomBytes } from 'node:crypto';
import { Redis, Cluster as RedisCluster } from 'ioredis';
import { decodeEnvelope, ENVELOPE_HEADER_BYTES, NODE_ID_BYTES } from '../backplane/envelope.js';
import { Outbox } from '../backplane/outbox.js';
import { reconnectDelay, reconnectWhenEnded, redisConnectionOptions } from '../backplane/redis.js';
import { clusterClientOptions } from '../backplane/redis-cluster.js';
import { roomHistoryKey, roomMetaKey } from '../backplane/room-keys.js';
import { formatRedisTarget, type RedisTarget } from '../config/redis-url.js';
import type { Config } from '../config/settings.js';
import { MemoryHistory } from '../history/memory.js';
import { RedisHistory } from '../history/redis.js';
import type { HubHistory } from '../hub/broadcast.js';
import type { RateLimitedLog } from '../log.js';
import type { Stats } from '../stats.js';

/** Room history in Redis (issue 16): the store, the outbox that publishes through it, and its connection. */
export interface RedisHistoryParts {
  readonly nodeId: Buffer;
  readonly store: RedisHistory;
  readonly outbox: Outbox;
  readonly client: Redis | RedisCluster;
  /** Hub callbacks, set once the hub exists. */
  onReady: () => void;
  /** The connection the scripts run on closed (Redis killed, restarted, a network cut). */
  onDown: () => void;
  /** The rooms this node has clients in (the history metrics measure theirs). */
  rooms: () => Iterable<string>;
}

/** Rooms measured per scrape at most (one short script each). */
const MEASURED_ROOMS_MAX = 10_000;
/** A scrape waits this long for Redis at most; the gauges keep their last values meanwhile. */
const MEASURE_TIMEOUT_MS = 1000;

/**
 * wshub_history_entries/_bytes with the history in Redis: at scrape time, the sizes of the
 * histories of the rooms this node has clients in (the first MEASURED_ROOMS_MAX), read from Redis
 * (XLEN and the payload bytes the publish script keeps). One measurement serves both gauges; while
 * Redis does not answer they keep the last values read.
 */
function measureAtScrape(stats: Stats, store: RedisHistory, rooms: () => Iterable<string>): void {
  let last = { entries: 0, bytes: 0 };
  let running: Promise<void> | undefined;
  stats.history.entries = () => last.entries;
  stats.history.bytes = () => last.bytes;
  stats.history.measure = () => {
    running ??= (async () => {
      const measured: string[] = [];
      for (const room of rooms()) {
        if (measured.length === MEASURED_ROOMS_MAX) break;
        measured.push(room);
      }
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<undefined>((resolve) => {
        timer = setTimeout(resolve, MEASURE_TIMEOUT_MS, undefined);
      });
      try {
        last = (await Promise.race([store.size(measured), timeout])) ?? last;
      } catch {
        // Redis unreachable: the last values stand (the backplane metrics say it is down).
      } finally {
        clearTimeout(timer);
        running = undefined;
      }
    })();
    return running;
  };
}

/**
 * With --history-size and --backplane: a third Redis connection (besides the
 * backplane's publisher and subscriber) runs the history scripts; the outbox
 * publishes through it, and hub reads replay from it.
 */
function redisHistory(
  config: Config,
  target: RedisTarget,
  stats: Stats,
  limitedLog: RateLimitedLog,
): RedisHistoryParts {
  const nodeId = randomBytes(NODE_ID_BYTES);
  const node = nodeId.toString('hex');
  const base = config.backplaneChannel;
  const where = formatRedisTarget(target);
  const onCluster = 'kind' in target && target.kind === 'cluster';
  // On a Redis Cluster the scripts run through the Cluster client, routed by the room's slot (issue 18).
  const client: Redis | RedisCluster =
    'kind' in target && target.kind === 'cluster'
      ? new RedisCluster(
          target.nodes.map(({ host, port }) => ({ host, port })),
          clusterClientOptions(target, config.backplaneReconnectMax, 'wshub-history'),
        )
      : new Redis({
          ...redisConnectionOptions(target, (attempt) =>
            reconnectDelay(attempt, config.backplaneReconnectMax),
          ),
          connectionName: 'wshub-history',
        });
  client.on('error', (error: Error) =>
    limitedLog.log('backplane_error', 'warn', `Backplane error (${where}, history): ${error.message}`),
  );
  if (!(client instanceof RedisCluster)) {
    reconnectWhenEnded(client, (attempt) => reconnectDelay(attempt, config.backplaneReconnectMax));
  }
  client.connect().catch(() => {});
  const store = new RedisHistory({
    client,
    metaKey: (room) => roomMetaKey(base, room),
    historyKey: (room) => roomHistoryKey(base, room),
    maxLength: config.historySize,
    ttlMs: config.historyTtl,
    decode: (envelope) => {
      const decoded = decodeEnvelope(envelope);
      if (!decoded.ok) return undefined;
      const { payload, isBinary, nodeId: from, sequence } = decoded.envelope;
      return { data: payload, isBinary, node: from, sequence };
    },
  });
  const outbox = new Outbox({
    send: (message) =>
      store.publish({
        room: message.room,
        channel: message.channel,
        command: onCluster ? 'SPUBLISH' : 'PUBLISH',
        node,
        sequence: message.sequence,
        lost: message.lost,
        after: message.after,
        envelope: message.envelope,
        payloadBytes: message.envelope.length - ENVELOPE_HEADER_BYTES - Buffer.byteLength(message.room),
      }),
    isConnected: () => client.status === 'ready',
    maxBytes: config.backplaneMaxPending,
    history: stats.history,
    counters: stats.backplane,
    limitedLog,
  });
  stats.history.outboxMessages = () => outbox.depth;
  stats.history.outboxBytes = () => outbox.byteCount;
  const parts: RedisHistoryParts = {
    nodeId,
    store,
    outbox,
    client,
    onReady: () => {},
    onDown: () => {},
    rooms: () => [],
  };
  measureAtScrape(stats, store, () => parts.rooms());
  client.on('ready', () => {
    outbox.resume();
    parts.onReady();
  });
  client.on('close', () => parts.onDown());
  return parts;
}

export interface RoomHistory {
  /** --history-size on a single node (no --backplane). */
  readonly memory: MemoryHistory | undefined;
  /** --history-size with --backplane. */
  readonly redis: RedisHistoryParts | undefined;
  /** What the broadcast hub gets; undefined without history. */
  readonly hub: HubHistory | undefined;
  /** For the metrics: which store, if any. */
  readonly kind: 'memory' | 'redis' | undefined;
}

/** Room history (issue 16) when --history-size is set in broadcast mode: in memory, or in Redis with --backplane. */
export function buildHistory(config: Config, stats: Stats, limitedLog: RateLimitedLog): RoomHistory {
  const wanted = config.mode === 'broadcast' && config.historySize > 0;
  const memory =
    wanted && config.backplane === undefined
      ? new MemoryHistory({ maxLength: config.historySize, ttlMs: config.historyTtl })
      : undefined;
  if (memory) {
    stats.history.entries = () => memory.entryCount;
    stats.history.bytes = () => memory.byteCount;
  }
  const redis =
    wanted && config.backplane !== undefined
      ? redisHistory(config, config.backplane, stats, limitedLog)
      : undefined;
  const common = { stats: stats.history, limitedLog, maxBufferedBytes: config.maxBufferedBytes };
  let hub: HubHistory | undefined;
  if (memory) {
    hub = {
      ...common,
      reader: memory,
      append: (room, data, isBinary) => memory.append(room, data, isBinary),
    };
  } else if (redis) {
    const { nodeId } = redis;
    hub = {
      ...common,
      reader: redis.store,
      nodeId,
      storeReachable: () => redis.client.status === 'ready',
      isLocal: (entry) => entry.node?.equals(nodeId) === true,
    };
  }
  return { memory, redis, hub, kind: memory ? 'memory' : redis ? 'redis' : undefined };
}
