import type { Config } from '../config/settings.js';
import { consoleRoutes } from '../console/routes.js';
import { type ConsoleSnapshot, snapshotReader } from '../console/snapshot.js';
import type { BroadcastHub } from '../hub/broadcast.js';
import type { WorkerContext } from '../lifecycle/cluster.js';
import type { RateLimitedLog } from '../log.js';
import { publishRoute } from '../publish/api.js';
import type { Stats } from '../stats.js';
import type { PlainRoute } from '../transport/http-server.js';
import { shareOf } from './transport.js';

/** The plain HTTP routes of the WebSocket port: the console (GET /, /stats) and POST /publish. */
export function plainRoutes(
  config: Config,
  parts: {
    readonly connectionCount: () => number;
    readonly broadcastHub: BroadcastHub | undefined;
    readonly worker: WorkerContext | undefined;
    readonly workers: number;
    readonly stats: Stats;
    readonly limitedLog: RateLimitedLog;
  },
): Map<string, PlainRoute> {
  const routes = new Map<string, PlainRoute>();
  const { broadcastHub, worker } = parts;
  if (config.consoleEnabled) {
    const readSnapshot = snapshotReader({
      stats: parts.stats,
      connectionCount: parts.connectionCount,
      rooms: broadcastHub && {
        busiest: (limit) => broadcastHub.busiestRooms(limit),
        count: () => broadcastHub.roomCount,
      },
    });
    // --workers: a worker answers the primary with its own figures and its clients with the cluster's.
    worker?.serveConsole(readSnapshot);
    for (const [path, route] of consoleRoutes({
      mode: config.mode,
      workers: parts.workers,
      pingIntervalMs: config.pingInterval,
      snapshot: worker ? () => worker.clusterConsole() as Promise<ConsoleSnapshot> : readSnapshot,
      history: config.mode === 'broadcast' && config.historySize > 0,
    })) {
      routes.set(path, route);
    }
  }
  if (config.publishToken !== '' && parts.broadcastHub !== undefined) {
    routes.set(
      '/publish',
      publishRoute({
        token: config.publishToken,
        ratePerSecond: shareOf(config.publishRate, parts.workers),
        maxBytes: config.maxMessageSize,
        publisher: parts.broadcastHub,
        stats: parts.stats,
        limitedLog: parts.limitedLog,
      }),
    );
  }
  return routes;
}
