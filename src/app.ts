import type { Server } from 'node:http';
import type { JwksUrlTimings } from './auth/service.js';
import type { Backplane } from './backplane/backplane.js';
import { IpcBroker } from './backplane/ipc.js';
import { quit } from './backplane/redis.js';
import type { Config } from './config/settings.js';
import { type ConsoleSnapshot, mergeSnapshots, ROOMS_REFRESH_MS } from './console/snapshot.js';
import { SUBPROTOCOL_V1 } from './history/history.js';
import { BroadcastHub } from './hub/broadcast.js';
import { EchoHub } from './hub/echo.js';
import type { Hub } from './hub/hub.js';
import { resolveWorkerCount, WorkerSupervisor } from './lifecycle/cluster-supervisor.js';
import type { WorkerContext } from './lifecycle/cluster-worker.js';
import { Health } from './lifecycle/health.js';
import { closeServer, listen } from './lifecycle/listen.js';
import { startPeriodicReport } from './lifecycle/periodic-report.js';
import { shutDown } from './lifecycle/shutdown.js';
import { type Logger, RateLimitedLog } from './log.js';
import { createClusterMetrics } from './metrics/cluster.js';
import { createMetricsServer } from './metrics/server.js';
import { type BackplaneStats, Stats } from './stats.js';
import { formatListenAddress } from './transport/address.js';
import { createWebSocketHttpServer, plainRequestHandler } from './transport/http-server.js';
import { Http2Front } from './transport/http2.js';
import { tlsHandshakeFailureListener } from './transport/tls.js';
import { loadTlsMaterial } from './transport/tls-files.js';
import {
  buildAuth,
  checkAuthFiles,
  httpRefusalReporter,
  startAuth,
  webSocketPathGuard,
} from './wiring/auth.js';
import { joinBackplane, logBackplane } from './wiring/backplane.js';
import { buildHistory } from './wiring/history.js';
import { serveMetrics } from './wiring/metrics.js';
import { plainRoutes } from './wiring/routes.js';
import { logStartupDetails } from './wiring/startup-log.js';
import { buildTls, checkStartupFiles, tlsFilesOf } from './wiring/tls.js';
import { buildGate, buildTransport } from './wiring/transport.js';

export interface RunningApp {
  /** The port the WebSocket server listens on (the real one when configured as 0). */
  readonly port: number;
  /** The metrics port, or undefined when metrics are disabled. */
  readonly metricsPort: number | undefined;
  readonly stats: Stats;
  readonly connectionCount: () => number;
  /** Graceful shutdown; resolves when both servers are closed. Idempotent. */
  stop(): Promise<void>;
  /** What SIGHUP does: reloads the TLS certificate and the auth key files (old ones kept if the new ones are broken). */
  reload(): void;
}

export interface AppDependencies {
  readonly logger: Logger;
  /** Replaces the Redis backplane (and enables one without --backplane): in-process multi-node tests. */
  readonly backplane?: (stats: BackplaneStats) => Backplane;
  /** Present in a worker process of --workers: the primary serves metrics and relays broadcasts. */
  readonly worker?: WorkerContext;
  /** Replaces how --auth-jwks-url is cached (tests of key rotation cannot wait 30 s). */
  readonly jwksUrlTimings?: JwksUrlTimings;
}

/** The composition root: builds every module from the frozen config and starts listening. */
export async function start(config: Config, dependencies: AppDependencies): Promise<RunningApp> {
  const { logger, worker } = dependencies;
  const workers = worker?.count ?? 1;
  const stats = new Stats();
  const health = new Health();
  const limitedLog = new RateLimitedLog(logger);
  const auth = buildAuth(config, { stats, logger, limitedLog, jwksUrlTimings: dependencies.jwksUrlTimings });
  const gate = buildGate(config, worker, auth?.verifier);
  const history = buildHistory(config, stats, limitedLog);
  const broadcastHub =
    config.mode === 'broadcast'
      ? new BroadcastHub({ excludeSender: config.broadcastExcludeSender, history: history.hub })
      : undefined;
  const historyInRedis = history.redis;
  if (historyInRedis && broadcastHub) {
    historyInRedis.onReady = () => broadcastHub.resync();
    historyInRedis.onDown = () => broadcastHub.storeLost();
    historyInRedis.rooms = () => broadcastHub.roomNames();
  }
  const hub: Hub = broadcastHub ?? new EchoHub();
  // Issue 6: only broadcast mode relays between nodes; echo mode never creates a backplane.
  const joined = broadcastHub
    ? joinBackplane(config, {
        hub: broadcastHub,
        stats,
        health,
        logger,
        limitedLog,
        backplane: dependencies.backplane,
        worker,
        history: historyInRedis,
      })
    : undefined;
  const transport = buildTransport(config, {
    hub,
    gate,
    stats,
    logger,
    limitedLog,
    subprotocols: config.historySize > 0 && broadcastHub ? [SUBPROTOCOL_V1] : [],
  });
  const tls = buildTls(config, { stats, logger, limitedLog });
  const refusedForToken = httpRefusalReporter(stats, limitedLog);
  const routes = plainRoutes(config, {
    connectionCount: () => transport.connections.size,
    broadcastHub,
    worker,
    workers,
    stats,
    limitedLog,
    auth,
    refused: refusedForToken,
  });
  const guardWebSocketPath = webSocketPathGuard(auth, refusedForToken);
  // Issue 17: WebSockets over HTTP/2 on the same port (h2c by its preface, h2 by ALPN).
  const http2 = config.http2
    ? new Http2Front({
        maxStreams: config.http2MaxStreams,
        maxHeaderSize: config.maxHeaderSize,
        handshakeTimeoutMs: config.handshakeTimeout,
        maxBufferedBytes: config.maxBufferedBytes,
        onConnect: transport.handleExtendedConnect,
        onRequest: plainRequestHandler(routes, guardWebSocketPath),
        onClientError: transport.handleClientError,
        stats,
        limitedLog,
      })
    : undefined;
  const webSocketServer = createWebSocketHttpServer({
    http2: http2 !== undefined,
    maxHeaderSize: config.maxHeaderSize,
    handshakeTimeoutMs: config.handshakeTimeout,
    onUpgrade: transport.handleUpgrade,
    onClientError: transport.handleClientError,
    guardWebSocketPath,
    tls: tls && {
      secureContext: tls.serverOptions,
      onHandshakeError: tlsHandshakeFailureListener(stats, limitedLog),
      attach: (server) => tls.attach(server),
    },
    routes,
  });
  http2?.attach(webSocketServer, tls !== undefined);
  let port: number;
  try {
    port = await listen(webSocketServer, config.host, config.port, '--host/--port');
  } catch (error) {
    await joined?.close();
    throw error;
  }
  // With --workers the primary says this once, when every worker listens.
  if (!worker) logger.info(`Starting WebSocket server on ${formatListenAddress(config.host, port)}`);
  const metrics = await serveMetrics(config, {
    connections: transport.connections,
    stats,
    tls,
    http2,
    auth: auth !== undefined,
    backplane: joined && {
      connected: () => joined.backplane.health().state === 'connected',
      subscribedRooms: () => joined.relay.subscribedRooms,
      shards: () => joined.backplane.health().shards ?? [],
    },
    history: history.kind,
    health,
    logger,
    worker,
    onListenError: () => Promise.all([closeServer(webSocketServer), joined?.close()]),
  });

  if (!worker) logStartupDetails(logger, config, tls?.current);
  if (!worker && http2) {
    logger.info(
      `HTTP/2 enabled (--http2): WebSockets over ${tls ? 'h2 (ALPN)' : 'h2c (prior knowledge)'} and HTTP/1.1 on the same port, up to ${config.http2MaxStreams} streams per connection`,
    );
  }
  if (tls && config.tlsWatch) tls.watch();
  if (auth) startAuth(auth, { config, logger, health, quiet: worker !== undefined });
  logBackplane(logger, config, joined);
  const stopReport = worker
    ? worker.reportStatus(() => {
        const readiness = health.readiness();
        return {
          connections: transport.connections.size,
          ready: readiness.ready,
          failing: [...readiness.failing, ...readiness.degraded],
        };
      })
    : startPeriodicReport(logger, transport.connections, config.statsInterval);
  transport.keepalive.start();
  let stopping: Promise<void> | undefined;
  return {
    port,
    metricsPort: metrics.port,
    stats,
    connectionCount: () => transport.connections.size,
    stop() {
      stopping ??= shutDown({
        logger,
        health,
        gate,
        transport,
        webSocketServer,
        http2,
        metricsServer: metrics.server,
        timeoutMs: config.shutdownTimeout,
        drainDelayMs: config.drainDelay,
        drainWindowMs: config.drainWindow,
        stats,
        stopBackground() {
          stopReport();
          history.memory?.close();
          transport.keepalive.stop();
          tls?.stop();
          auth?.stop();
        },
      })
        // What this node published and Redis has not stored yet gets a last chance (bounded).
        .then(() => historyInRedis?.outbox.drain(Math.min(config.shutdownTimeout, 2000)))
        .then(() => Promise.all([joined?.close(), historyInRedis && quit(historyInRedis.client)]))
        .then(() => {});
      return stopping;
    },
    reload() {
      if (tls) tls.reload('SIGHUP');
      if (auth) auth.reload('SIGHUP');
      if (!tls && !auth) logger.info('Nothing to reload: TLS and auth are disabled');
    },
  };
}

export { checkStartupFiles };

/**
 * The primary's console figures (issue 19): every worker's snapshot merged,
 * collected at most once per ROOMS_REFRESH_MS however many pages poll.
 */
function clusterSnapshotReader(collect: () => Promise<ConsoleSnapshot[]>): () => Promise<ConsoleSnapshot> {
  let last: { at: number; snapshot: Promise<ConsoleSnapshot> } | undefined;
  return () => {
    const now = performance.now();
    if (last === undefined || now - last.at >= ROOMS_REFRESH_MS) {
      const snapshot = collect().then((parts) => {
        const merged = mergeSnapshots(parts);
        if (merged === undefined) throw new Error('no worker answered');
        return merged;
      });
      // A failed collection is not cached: the next poll asks again.
      snapshot.catch(() => {
        if (last?.snapshot === snapshot) last = undefined;
      });
      last = { at: now, snapshot };
    }
    return last.snapshot;
  };
}

export interface RunningPrimary {
  /** The WebSocket port the workers share. */
  readonly port: number;
  readonly metricsPort: number | undefined;
  /** Resolves if a worker keeps crashing and the primary gave up restarting it (the process should exit 1). */
  readonly gaveUp: Promise<void>;
  /** Graceful shutdown of every worker (each drains as a single process does), then the metrics server. Idempotent. */
  stop(): Promise<void>;
  /** SIGHUP: every worker reloads its TLS certificate and auth keys. */
  reload(): void;
}

/**
 * The primary process of --workers=N (N > 1): serves no WebSocket traffic. It
 * forks the workers (each runs start() above with a WorkerContext), relays
 * broadcasts between them (IPC backplane, unless --backplane points them all
 * at Redis), serves the one metrics port with the sum over the workers, logs
 * the cluster-wide connection count, and stops them all on shutdown.
 */
export async function startPrimary(
  config: Config,
  dependencies: { logger: Logger },
): Promise<RunningPrimary> {
  const { logger } = dependencies;
  const count = resolveWorkerCount(config.workers);
  const health = new Health();
  const limitedLog = new RateLimitedLog(logger);
  const broker =
    config.mode === 'broadcast' && config.backplane === undefined
      ? new IpcBroker({ limitedLog, maxPendingBytes: config.backplaneMaxPending })
      : undefined;
  let giveUp: () => void = () => {};
  const gaveUp = new Promise<void>((resolve) => {
    giveUp = resolve;
  });
  const supervisor: WorkerSupervisor = new WorkerSupervisor({
    count,
    logger,
    // Each worker drains as a single process does: delay, window, then the deadline.
    shutdownTimeoutMs: config.drainDelay + config.drainWindow + config.shutdownTimeout,
    onWorker: broker && ((link, name) => broker.attach(link, name)),
    onGiveUp: giveUp,
    consoleSnapshot: config.consoleEnabled
      ? clusterSnapshotReader(() => supervisor.collectConsole() as Promise<ConsoleSnapshot[]>)
      : undefined,
  });
  health.addCheck('workers', () => supervisor.allReady(), { describe: () => supervisor.describe() });
  // TLS files are read by every worker; reading them here too reports a broken pair once, before forking.
  const certificate = config.tlsEnabled ? loadTlsMaterial(tlsFilesOf(config)) : undefined;
  checkAuthFiles(config);

  let metricsServer: Server | undefined;
  let metricsPort: number | undefined;
  if (config.metricsEnabled) {
    metricsServer = createMetricsServer(
      createClusterMetrics({
        workerStates: () => supervisor.stateCounts(),
        restarts: () => supervisor.restarts,
        collectFromWorkers: () => supervisor.collectMetrics(),
      }),
      health,
    );
    metricsPort = await listen(
      metricsServer,
      config.metricsHost,
      config.metricsPort,
      '--metrics-host/--metrics-port',
    );
  }
  logger.info(
    `Starting ${count} worker processes (--workers=${config.workers}); the primary (pid ${process.pid}) serves metrics only`,
    { workers: count },
  );
  let port: number;
  try {
    port = await supervisor.start();
  } catch (error) {
    if (metricsServer) await closeServer(metricsServer);
    throw error;
  }
  logger.info(`Starting WebSocket server on ${formatListenAddress(config.host, port)}`);
  if (metricsServer && metricsPort !== undefined) {
    logger.info(`Starting metrics server on ${formatListenAddress(config.metricsHost, metricsPort)}`);
  } else {
    logger.info('Metrics server disabled (metrics.enabled: false)');
  }
  logStartupDetails(logger, config, certificate);
  if (config.auth === 'jwt')
    logger.info('Auth: JWT required on every WebSocket upgrade (each worker verifies)');
  if (broker) logger.info(`Broadcast between workers: relayed by the primary over IPC`);
  else if (config.mode === 'broadcast') {
    logger.info('Broadcast between workers: each worker is a backplane node of its own (--backplane)');
  }
  const stopReport = startPeriodicReport(
    logger,
    {
      get size() {
        return supervisor.totalConnections();
      },
    },
    config.statsInterval,
  );
  let stopping: Promise<void> | undefined;
  return {
    port,
    metricsPort,
    gaveUp,
    stop() {
      stopping ??= (async () => {
        health.stopAccepting();
        stopReport();
        logger.info(`Stopping ${count} workers`, { workers: count });
        await supervisor.stop();
        logger.info('All workers stopped');
        if (metricsServer) {
          await closeServer(metricsServer);
          logger.info('Metrics server stopped');
        }
      })();
      return stopping;
    },
    reload() {
      if (config.tlsEnabled || config.auth === 'jwt') supervisor.reload();
      else logger.info('Nothing to reload: TLS and auth are disabled');
    },
  };
}
