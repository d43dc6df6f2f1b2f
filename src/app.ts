import { randomBytes } from 'node:crypto';
import type { Server } from 'node:http';
import { hostname } from 'node:os';
import { Redis } from 'ioredis';
import type { Backplane } from './backplane/backplane.js';
import { decodeEnvelope, NODE_ID_BYTES } from './backplane/envelope.js';
import { IpcBackplane, IpcBroker } from './backplane/ipc.js';
import { Outbox } from './backplane/outbox.js';
import { quit, RedisBackplane, reconnectDelay, redisConnectionOptions } from './backplane/redis.js';
import { BackplaneRelay } from './backplane/relay.js';
import { roomHistoryKey, roomMetaKey } from './backplane/room-keys.js';
import { formatRedisTarget, type RedisTarget } from './config/redis-url.js';
import type { Config } from './config/settings.js';
import { consoleRoutes } from './console/routes.js';
import {
  type ConsoleSnapshot,
  mergeSnapshots,
  ROOMS_REFRESH_MS,
  snapshotReader,
} from './console/snapshot.js';
import { SUBPROTOCOL_V1 } from './history/history.js';
import { MemoryHistory } from './history/memory.js';
import { RedisHistory } from './history/redis.js';
import { BroadcastHub, type HubHistory } from './hub/broadcast.js';
import { EchoHub } from './hub/echo.js';
import type { Hub } from './hub/hub.js';
import { resolveWorkerCount, type WorkerContext, WorkerSupervisor } from './lifecycle/cluster.js';
import { Health } from './lifecycle/health.js';
import { closeServer, listen } from './lifecycle/listen.js';
import { startPeriodicReport } from './lifecycle/periodic-report.js';
import { shutDown } from './lifecycle/shutdown.js';
import { type Logger, RateLimitedLog } from './log.js';
import { createClusterMetrics } from './metrics/cluster.js';
import { createMetricsRegistry } from './metrics/registry.js';
import { createMetricsServer } from './metrics/server.js';
import { publishRoute } from './publish/api.js';
import { type BackplaneStats, Stats } from './stats.js';
import { describeAccelerators, detectAccelerators } from './transport/accelerators.js';
import { formatListenAddress } from './transport/address.js';
import { perMessageDeflateOptions } from './transport/compression.js';
import { createWebSocketHttpServer, type PlainRoute } from './transport/http-server.js';
import { receiveLimits } from './transport/receive-limits.js';
import { TlsReloader, tlsHandshakeFailureListener, warnIfNotValidNow } from './transport/tls.js';
import {
  describeCertificate,
  loadTlsMaterial,
  type TlsFiles,
  type TlsMaterial,
} from './transport/tls-files.js';
import { UpgradeGate } from './transport/upgrade-gate.js';
import { WebSocketTransport } from './transport/websocket-server.js';
import { VERSION } from './version.js';

interface ClusterParts {
  readonly hub: BroadcastHub;
  readonly stats: Stats;
  readonly health: Health;
  readonly limitedLog: RateLimitedLog;
  readonly history: RedisHistoryParts | undefined;
}

/** Room history in Redis (issue 16): the store, the outbox that publishes through it, and its connection. */
interface RedisHistoryParts {
  readonly nodeId: Buffer;
  readonly store: RedisHistory;
  readonly outbox: Outbox;
  readonly client: Redis;
  /** Hub callbacks, set once the hub exists. */
  onReady: () => void;
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
  const client = new Redis({
    ...redisConnectionOptions(target, (attempt) => reconnectDelay(attempt, config.backplaneReconnectMax)),
    connectionName: 'wshub-history',
  });
  client.on('error', (error: Error) =>
    limitedLog.log('backplane_error', 'warn', `Backplane error (${where}, history): ${error.message}`),
  );
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
      const { payload, isBinary, nodeId: from } = decoded.envelope;
      return { data: payload, isBinary, node: from };
    },
  });
  const outbox = new Outbox({
    send: (message) =>
      store.publish({
        room: message.room,
        channel: message.channel,
        command: 'PUBLISH',
        node,
        sequence: message.sequence,
        lost: message.lost,
        envelope: message.envelope,
      }),
    isConnected: () => client.status === 'ready',
    maxBytes: config.backplaneMaxPending,
    history: stats.history,
    counters: stats.backplane,
    limitedLog,
  });
  stats.history.outboxMessages = () => outbox.depth;
  stats.history.outboxBytes = () => outbox.byteCount;
  const parts: RedisHistoryParts = { nodeId, store, outbox, client, onReady: () => {} };
  client.on('ready', () => {
    outbox.resume();
    parts.onReady();
  });
  return parts;
}

interface Cluster {
  readonly backplane: Backplane;
  readonly relay: BackplaneRelay;
  /** The backplane's address with the password redacted. */
  readonly where: string;
}

/**
 * Joins this node to the others (issue 6) when a backplane is configured:
 * client broadcasts go out through the relay after local delivery, and
 * messages of other nodes come in through hub.broadcast(). Connecting happens
 * in the background; the node serves its own clients meanwhile.
 */
function joinCluster(
  config: Config,
  dependencies: AppDependencies,
  parts: ClusterParts,
): Cluster | undefined {
  const { hub, stats, health, limitedLog, history } = parts;
  let backplane: Backplane;
  let where: string;
  if (dependencies.backplane) {
    backplane = dependencies.backplane(stats.backplane);
    where = 'an in-process backplane';
  } else if (config.backplane === undefined && dependencies.worker !== undefined) {
    // --workers without --backplane: the other workers are reached through the primary.
    backplane = new IpcBackplane({
      link: dependencies.worker.link,
      counters: stats.backplane,
      limitedLog,
      maxPendingBytes: config.backplaneMaxPending,
    });
    where = 'the primary process (IPC)';
  } else if (config.backplane !== undefined) {
    where = formatRedisTarget(config.backplane);
    backplane = new RedisBackplane({
      target: config.backplane,
      counters: stats.backplane,
      logger: dependencies.logger,
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
  });
  hub.attachRelay(relay);
  void relay.start();
  health.addCheck('backplane', () => backplane.health().state === 'connected', {
    required: config.backplaneRequired,
    describe: () => {
      const { state, detail } = backplane.health();
      return `${state}${detail === '' ? '' : ` (${detail})`}, ${where}`;
    },
  });
  return { backplane, relay, where };
}

export interface RunningApp {
  /** The port the WebSocket server listens on (the real one when configured as 0). */
  readonly port: number;
  /** The metrics port, or undefined when metrics are disabled. */
  readonly metricsPort: number | undefined;
  readonly stats: Stats;
  readonly connectionCount: () => number;
  /** Graceful shutdown; resolves when both servers are closed. Idempotent. */
  stop(): Promise<void>;
  /** What SIGHUP does: reloads the TLS certificate (old one kept if the new one is broken). */
  reload(): void;
}

export interface AppDependencies {
  readonly logger: Logger;
  /** Replaces the Redis backplane (and enables one without --backplane): in-process multi-node tests. */
  readonly backplane?: (stats: BackplaneStats) => Backplane;
  /** Present in a worker process of --workers: the primary serves metrics and relays broadcasts. */
  readonly worker?: WorkerContext;
}

/**
 * With --workers every worker enforces its share of a cluster-wide limit: the
 * primary hands connections out round-robin, so N shares of ceil(limit / N)
 * add up to the limit (give or take N - 1) while the load is even. 0 stays 0 (unlimited).
 */
const shareOf = (limit: number, workers: number): number => (limit === 0 ? 0 : Math.ceil(limit / workers));

const tlsFilesOf = (config: Config): TlsFiles => ({
  certFile: config.tlsCertFile,
  keyFile: config.tlsKeyFile,
  caFile: config.tlsCaFile,
});

/** What --check-config verifies beyond the values: the files startup would read (the TLS pair). */
export function checkStartupFiles(config: Config): void {
  if (config.tlsEnabled) loadTlsMaterial(tlsFilesOf(config));
}

/** The startup lines that describe the whole server; with --workers the primary logs them once. */
function logStartupDetails(logger: Logger, config: Config, certificate: TlsMaterial | undefined): void {
  logger.info(describeAccelerators(detectAccelerators()));
  // Echo mode keeps seed 000's startup lines exactly; broadcast mode says so once.
  if (config.mode === 'broadcast') {
    logger.info(
      `Broadcast mode: every message goes to every client of its room (/ws, /ws/<room>)${config.broadcastExcludeSender ? ', sender excluded' : ''}`,
    );
  }
  if (certificate) {
    logger.info(`TLS enabled (wss://): certificate ${describeCertificate(certificate)}`);
    warnIfNotValidNow(logger, certificate);
  }
}

/** The composition root: builds every module from the frozen config and starts listening. */
export async function start(config: Config, dependencies: AppDependencies): Promise<RunningApp> {
  const { logger, worker } = dependencies;
  const workers = worker?.count ?? 1;
  const stats = new Stats();
  const health = new Health();
  const gate = new UpgradeGate({
    maxConnections: shareOf(config.maxConnections, workers),
    maxConnectionsPerIp: shareOf(config.maxConnectionsPerIp, workers),
    allowedOrigins: config.allowedOrigins,
    trustProxyHops: config.trustProxyHops,
    allowFaultInjection: config.allowFaultInjection,
  });
  const limitedLog = new RateLimitedLog(logger);
  const memoryHistory =
    config.mode === 'broadcast' && config.historySize > 0 && config.backplane === undefined
      ? new MemoryHistory({ maxLength: config.historySize, ttlMs: config.historyTtl })
      : undefined;
  if (memoryHistory) {
    stats.history.entries = () => memoryHistory.entryCount;
    stats.history.bytes = () => memoryHistory.byteCount;
  }
  const historyInRedis =
    config.mode === 'broadcast' && config.historySize > 0 && config.backplane !== undefined
      ? redisHistory(config, config.backplane, stats, limitedLog)
      : undefined;
  const hubHistory = (): HubHistory | undefined => {
    const common = { stats: stats.history, limitedLog, maxBufferedBytes: config.maxBufferedBytes };
    if (memoryHistory) {
      return {
        ...common,
        reader: memoryHistory,
        append: (room, data, isBinary) => memoryHistory.append(room, data, isBinary),
      };
    }
    if (historyInRedis) {
      const { nodeId } = historyInRedis;
      return {
        ...common,
        reader: historyInRedis.store,
        isLocal: (entry) => entry.node?.equals(nodeId) === true,
      };
    }
    return undefined;
  };
  const broadcastHub =
    config.mode === 'broadcast'
      ? new BroadcastHub({ excludeSender: config.broadcastExcludeSender, history: hubHistory() })
      : undefined;
  if (historyInRedis && broadcastHub) historyInRedis.onReady = () => broadcastHub.resync();
  const hub: Hub = broadcastHub ?? new EchoHub();
  // Issue 6: only broadcast mode relays between nodes; echo mode never creates a backplane.
  const cluster = broadcastHub
    ? joinCluster(config, dependencies, {
        hub: broadcastHub,
        stats,
        health,
        limitedLog,
        history: historyInRedis,
      })
    : undefined;
  const limits = receiveLimits(config);
  const transport = new WebSocketTransport({
    maxMessageSize: config.maxMessageSize,
    maxBufferedBytes: config.maxBufferedBytes,
    maxFragments: limits.maxFragments,
    maxBufferedChunks: limits.maxBufferedChunks,
    perMessageDeflate: config.compression
      ? perMessageDeflateOptions(config.compressionThreshold, config.compressionLevel)
      : false,
    keepalive: {
      pingIntervalMs: config.pingInterval,
      pingTimeoutMs: config.pingTimeout,
      idleTimeoutMs: config.idleTimeout,
      maxLifetimeMs: config.maxConnectionLifetime,
    },
    hub,
    gate,
    stats,
    logger,
    limitedLog,
    instance: { hostname: hostname(), id: randomBytes(4).toString('hex'), version: VERSION },
    subprotocols: config.historySize > 0 && broadcastHub ? [SUBPROTOCOL_V1] : [],
  });
  const tls = config.tlsEnabled
    ? new TlsReloader({
        files: tlsFilesOf(config),
        stats,
        logger,
        limitedLog,
      })
    : undefined;
  if (!tls && (config.tlsCertFile !== '' || config.tlsKeyFile !== '' || config.tlsCaFile !== '')) {
    logger.info('TLS disabled (server.tls.enabled is false): the configured certificate files are not used');
  }
  const routes = new Map<string, PlainRoute>();
  if (config.consoleEnabled) {
    const readSnapshot = snapshotReader({
      stats,
      connectionCount: () => transport.connections.size,
      rooms: broadcastHub && {
        busiest: (limit) => broadcastHub.busiestRooms(limit),
        count: () => broadcastHub.roomCount,
      },
    });
    // --workers: a worker answers the primary with its own figures and its clients with the cluster's.
    worker?.serveConsole(readSnapshot);
    for (const [path, route] of consoleRoutes({
      mode: config.mode,
      workers,
      pingIntervalMs: config.pingInterval,
      snapshot: worker ? () => worker.clusterConsole() as Promise<ConsoleSnapshot> : readSnapshot,
      history: config.mode === 'broadcast' && config.historySize > 0,
    })) {
      routes.set(path, route);
    }
  }
  if (config.publishToken !== '' && broadcastHub !== undefined) {
    routes.set(
      '/publish',
      publishRoute({
        token: config.publishToken,
        ratePerSecond: shareOf(config.publishRate, workers),
        maxBytes: config.maxMessageSize,
        publisher: broadcastHub,
        stats,
        limitedLog,
      }),
    );
  }
  const webSocketServer = createWebSocketHttpServer({
    maxHeaderSize: config.maxHeaderSize,
    handshakeTimeoutMs: config.handshakeTimeout,
    onUpgrade: transport.handleUpgrade,
    onClientError: transport.handleClientError,
    tls: tls && {
      secureContext: tls.serverOptions,
      onHandshakeError: tlsHandshakeFailureListener(stats, limitedLog),
      attach: (server) => tls.attach(server),
    },
    routes,
  });
  let port: number;
  try {
    port = await listen(webSocketServer, config.host, config.port, '--host/--port');
  } catch (error) {
    await cluster?.backplane.close();
    throw error;
  }
  // With --workers the primary says this once, when every worker listens.
  if (!worker) logger.info(`Starting WebSocket server on ${formatListenAddress(config.host, port)}`);
  let metricsServer: Server | undefined;
  let metricsPort: number | undefined;
  if (config.metricsEnabled) {
    const registry = createMetricsRegistry({
      connections: transport.connections,
      stats,
      tls,
      backplaneConnected: cluster && (() => cluster.backplane.health().state === 'connected'),
      history: memoryHistory ? 'memory' : historyInRedis ? 'redis' : undefined,
    });
    if (worker) {
      // The primary serves one metrics port for the whole cluster and asks each worker for its registry.
      worker.serveMetrics(() => registry.getMetricsAsJSON());
    } else {
      metricsServer = createMetricsServer(registry, health);
      try {
        metricsPort = await listen(
          metricsServer,
          config.metricsHost,
          config.metricsPort,
          '--metrics-host/--metrics-port',
        );
      } catch (error) {
        await Promise.all([closeServer(webSocketServer), cluster?.backplane.close()]);
        throw error;
      }
      logger.info(`Starting metrics server on ${formatListenAddress(config.metricsHost, metricsPort)}`);
    }
  } else if (!worker) {
    logger.info('Metrics server disabled (metrics.enabled: false)');
  }

  if (!worker) logStartupDetails(logger, config, tls?.current);
  if (tls && config.tlsWatch) tls.watch();
  // A worker's IPC relay is the primary's business (it logs it once); a worker on Redis is a node of its own.
  if (cluster && !(cluster.backplane instanceof IpcBackplane)) {
    logger.info(
      `Backplane: node ${cluster.relay.nodeId.toString('hex')} relays broadcasts over ${cluster.where} (channel ${config.backplaneChannel})`,
    );
  }
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
    metricsPort,
    stats,
    connectionCount: () => transport.connections.size,
    stop() {
      stopping ??= shutDown({
        logger,
        health,
        gate,
        transport,
        webSocketServer,
        metricsServer,
        timeoutMs: config.shutdownTimeout,
        stopBackground() {
          stopReport();
          memoryHistory?.close();
          transport.keepalive.stop();
          tls?.stop();
        },
      })
        // What this node published and Redis has not stored yet gets a last chance (bounded).
        .then(() => historyInRedis?.outbox.drain(Math.min(config.shutdownTimeout, 2000)))
        .then(() => Promise.all([cluster?.backplane.close(), historyInRedis && quit(historyInRedis.client)]))
        .then(() => {});
      return stopping;
    },
    reload() {
      if (tls) tls.reload('SIGHUP');
      else logger.info('Nothing to reload: TLS is disabled');
    },
  };
}

/**
 * The primary's console figures (issue 19): every worker's snapshot merged,
 * collected at most once per ROOMS_REFRESH_MS however many pages poll.
 */
function clusterSnapshotReader(collect: () => Promise<ConsoleSnapshot[]>): () => Promise<ConsoleSnapshot> {
  let last: { at: number; snapshot: Promise<ConsoleSnapshot> } | undefined;
  return () => {
    const now = Date.now();
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
  /** SIGHUP: every worker reloads its TLS certificate. */
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
    shutdownTimeoutMs: config.shutdownTimeout,
    onWorker: broker && ((link, name) => broker.attach(link, name)),
    onGiveUp: giveUp,
    consoleSnapshot: config.consoleEnabled
      ? clusterSnapshotReader(() => supervisor.collectConsole() as Promise<ConsoleSnapshot[]>)
      : undefined,
  });
  health.addCheck('workers', () => supervisor.allReady(), { describe: () => supervisor.describe() });
  // TLS files are read by every worker; reading them here too reports a broken pair once, before forking.
  const certificate = config.tlsEnabled ? loadTlsMaterial(tlsFilesOf(config)) : undefined;

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
      if (config.tlsEnabled) supervisor.reload();
      else logger.info('Nothing to reload: TLS is disabled');
    },
  };
}
