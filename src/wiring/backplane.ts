import type { Backplane } from '../backplane/backplane.js';
import { IpcBackplane } from '../backplane/ipc.js';
import { RedisBackplane } from '../backplane/redis.js';
import { RedisClusterBackplane } from '../backplane/redis-cluster.js';
import { BackplaneRelay } from '../backplane/relay.js';
import { formatRedisTarget } from '../config/redis-url.js';
import type { Config } from '../config/settings.js';
import type { BroadcastHub } from '../hub/broadcast.js';
import type { WorkerContext } from '../lifecycle/cluster-worker.js';
import type { Health } from '../lifecycle/health.js';
import type { Logger, RateLimitedLog } from '../log.js';
import type { BackplaneStats, Stats } from '../stats.js';
import type { RedisHistoryParts } from './history.js';

export interface BackplaneParts {
  readonly hub: BroadcastHub;
  readonly stats: Stats;
  readonly health: Health;
  readonly logger: Logger;
  readonly limitedLog: RateLimitedLog;
  /** Replaces the Redis backplane (and enables one without --backplane): in-process multi-node tests. */
  readonly backplane?: ((stats: BackplaneStats) => Backplane) | undefined;
  /** Present in a worker of --workers. */
  readonly worker?: WorkerContext | undefined;
  /** Room history in Redis (issue 16), when configured. */
  readonly history: RedisHistoryParts | undefined;
}

export interface JoinedBackplane {
  readonly backplane: Backplane;
  readonly relay: BackplaneRelay;
  /** The backplane's address with the password redacted. */
  readonly where: string;
  /** Stops the relay's linger timer and closes the backplane. */
  close(): Promise<void>;
}

/**
 * Joins this node to the others (issue 6) when a backplane is configured:
 * client broadcasts go out through the relay after local delivery, and
 * messages of other nodes come in through hub.broadcast(). Connecting happens
 * in the background; the node serves its own clients meanwhile.
 */
export function joinBackplane(config: Config, parts: BackplaneParts): JoinedBackplane | undefined {
  const { hub, stats, health, limitedLog, history } = parts;
  let backplane: Backplane;
  let where: string;
  if (parts.backplane) {
    backplane = parts.backplane(stats.backplane);
    where = 'an in-process backplane';
  } else if (config.backplane === undefined && parts.worker !== undefined) {
    // --workers without --backplane: the other workers are reached through the primary.
    backplane = new IpcBackplane({
      link: parts.worker.link,
      counters: stats.backplane,
      limitedLog,
      maxPendingBytes: config.backplaneMaxPending,
    });
    where = 'the primary process (IPC)';
  } else if (
    config.backplane !== undefined &&
    'kind' in config.backplane &&
    config.backplane.kind === 'cluster'
  ) {
    where = formatRedisTarget(config.backplane);
    backplane = new RedisClusterBackplane({
      target: config.backplane,
      counters: stats.backplane,
      logger: parts.logger,
      limitedLog,
      maxPendingBytes: config.backplaneMaxPending,
      reconnectDelayMaxMs: config.backplaneReconnectMax,
      onConnected: history && (() => hub.resync()),
    });
  } else if (config.backplane !== undefined) {
    where = formatRedisTarget(config.backplane);
    backplane = new RedisBackplane({
      target: config.backplane,
      counters: stats.backplane,
      logger: parts.logger,
      limitedLog,
      maxPendingBytes: config.backplaneMaxPending,
      reconnectDelayMaxMs: config.backplaneReconnectMax,
      // Messages may have passed while the subscription was down: the rooms catch up from the history.
      onConnected: history && (() => hub.resync()),
    });
  } else {
    return undefined;
  }
  const relay = new BackplaneRelay({
    backplane,
    channel: config.backplaneChannel,
    stats: stats.backplane,
    limitedLog,
    deliverLocally: (room, data, isBinary) => hub.broadcast(room, data, isBinary),
    nodeId: history?.nodeId,
    outbox: history?.outbox,
    deliverPositioned: history && ((room, epoch, entry) => hub.positioned(room, epoch, entry)),
    roomLingerMs: config.backplaneRoomLinger,
  });
  hub.attachRelay(relay);
  health.addCheck('backplane', () => backplane.health().state === 'connected', {
    required: config.backplaneRequired,
    describe: () => {
      const { state, detail, shards } = backplane.health();
      const shardStates =
        shards === undefined ? '' : `, shards: ${shards.map((s) => `${s.shard} ${s.state}`).join(', ')}`;
      return `${state}${detail === '' ? '' : ` (${detail})`}, ${where}${shardStates}`;
    },
  });
  const close = (): Promise<void> => {
    relay.close();
    return backplane.close();
  };
  return { backplane, relay, where, close };
}

/** The startup line naming the backplane; a worker's IPC relay is the primary's business (it logs it once). */
export function logBackplane(logger: Logger, config: Config, joined: JoinedBackplane | undefined): void {
  if (joined && !(joined.backplane instanceof IpcBackplane)) {
    logger.info(
      `Backplane: node ${joined.relay.nodeId.toString('hex')} relays broadcasts over ${joined.where} (channel ${config.backplaneChannel})`,
    );
  }
}
