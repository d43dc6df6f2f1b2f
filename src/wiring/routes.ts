import { type HttpRefusal, requireToken } from '../auth/http-guard.js';
import type { AuthService } from '../auth/service.js';
import type { Config } from '../config/settings.js';
import { consoleRoutes } from '../console/routes.js';
import { type ConsoleSnapshot, snapshotReader } from '../console/snapshot.js';
import type { BroadcastHub } from '../hub/broadcast.js';
import type { WorkerContext } from '../lifecycle/cluster-worker.js';
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
    /** --auth=jwt (issue 15). */
    readonly auth: AuthService | undefined;
    /** Counts and logs a plain request refused for its token. */
    readonly refused: HttpRefusal;
  },
): Map<string, PlainRoute> {
  const routes = new Map<string, PlainRoute>();
  const { broadcastHub, worker, auth } = parts;
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
      // Issue 15: with --auth=jwt the live figures (room names among them) need a token; the page itself is static.
      const guarded = auth && path === '/stats' ? requireToken(route, auth.verifier, parts.refused) : route;
      routes.set(path, guarded);
    }
  }
  // Issue 15: with --auth=jwt a token whose "publish" claim covers the room may publish too.
  if ((config.publishToken !== '' || auth !== undefined) && parts.broadcastHub !== undefined) {
    routes.set(
      '/publish',
      publishRoute({
        token: config.publishToken,
        verifier: auth?.verifier,
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
