import { randomBytes } from 'node:crypto';
import type { Server } from 'node:http';
import { hostname } from 'node:os';
import type { Backplane } from './backplane/backplane.js';
import { RedisBackplane } from './backplane/redis.js';
import { BackplaneRelay } from './backplane/relay.js';
import { formatRedisTarget } from './config/redis-url.js';
import type { Config } from './config/settings.js';
import { consoleRoutes } from './console/routes.js';
import { BroadcastHub } from './hub/broadcast.js';
import { EchoHub } from './hub/echo.js';
import type { Hub } from './hub/hub.js';
import { Health } from './lifecycle/health.js';
import { closeServer, listen } from './lifecycle/listen.js';
import { startPeriodicReport } from './lifecycle/periodic-report.js';
import { shutDown } from './lifecycle/shutdown.js';
import { type Logger, RateLimitedLog } from './log.js';
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
import { describeCertificate, loadTlsMaterial, type TlsFiles } from './transport/tls-files.js';
import { UpgradeGate } from './transport/upgrade-gate.js';
import { WebSocketTransport } from './transport/websocket-server.js';
import { VERSION } from './version.js';

interface ClusterParts {
  readonly hub: BroadcastHub;
  readonly stats: Stats;
  readonly health: Health;
  readonly limitedLog: RateLimitedLog;
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
  const { hub, stats, health, limitedLog } = parts;
  let backplane: Backplane;
  let where: string;
  if (dependencies.backplane) {
    backplane = dependencies.backplane(stats.backplane);
    where = 'an in-process backplane';
  } else if (config.backplane !== undefined) {
    where = formatRedisTarget(config.backplane);
    backplane = new RedisBackplane({
      target: config.backplane,
      counters: stats.backplane,
      logger: dependencies.logger,
      limitedLog,
      maxPendingBytes: config.backplaneMaxPending,
      reconnectDelayMaxMs: config.backplaneReconnectMax,
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
}

const tlsFilesOf = (config: Config): TlsFiles => ({
  certFile: config.tlsCertFile,
  keyFile: config.tlsKeyFile,
  caFile: config.tlsCaFile,
});

/** What --check-config verifies beyond the values: the files startup would read (the TLS pair). */
export function checkStartupFiles(config: Config): void {
  if (config.tlsEnabled) loadTlsMaterial(tlsFilesOf(config));
}

/** The composition root: builds every module from the frozen config and starts listening. */
export async function start(config: Config, dependencies: AppDependencies): Promise<RunningApp> {
  const { logger } = dependencies;
  const stats = new Stats();
  const health = new Health();
  const gate = new UpgradeGate({
    maxConnections: config.maxConnections,
    maxConnectionsPerIp: config.maxConnectionsPerIp,
    allowedOrigins: config.allowedOrigins,
    trustProxyHops: config.trustProxyHops,
    allowFaultInjection: config.allowFaultInjection,
  });
  const limitedLog = new RateLimitedLog(logger);
  const broadcastHub =
    config.mode === 'broadcast'
      ? new BroadcastHub({ excludeSender: config.broadcastExcludeSender })
      : undefined;
  const hub: Hub = broadcastHub ?? new EchoHub();
  // Issue 6: only broadcast mode relays between nodes; echo mode never creates a backplane.
  const cluster = broadcastHub
    ? joinCluster(config, dependencies, { hub: broadcastHub, stats, health, limitedLog })
    : undefined;
  const limits = receiveLimits(config);
  const transport = new WebSocketTransport({
    maxMessageSize: config.maxMessageSize,
    maxBufferedBytes: config.maxBufferedBytes,
    maxFragments: limits.maxFragments,
    maxBufferedChunks: limits.maxBufferedChunks,
    perMessageDeflate: config.compression ? perMessageDeflateOptions(config.compressionThreshold) : false,
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
    for (const [path, route] of consoleRoutes({
      connectionCount: () => transport.connections.size,
      mode: config.mode,
    })) {
      routes.set(path, route);
    }
  }
  if (config.publishToken !== '' && broadcastHub !== undefined) {
    routes.set(
      '/publish',
      publishRoute({
        token: config.publishToken,
        ratePerSecond: config.publishRate,
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
  logger.info(`Starting WebSocket server on ${formatListenAddress(config.host, port)}`);
  let metricsServer: Server | undefined;
  let metricsPort: number | undefined;
  if (config.metricsEnabled) {
    const registry = createMetricsRegistry({
      connections: transport.connections,
      stats,
      tls,
      backplaneConnected: cluster && (() => cluster.backplane.health().state === 'connected'),
    });
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
  } else {
    logger.info('Metrics server disabled (metrics.enabled: false)');
  }

  logger.info(describeAccelerators(detectAccelerators()));
  // Echo mode keeps seed 000's startup lines exactly; broadcast mode says so once.
  if (config.mode === 'broadcast') {
    logger.info(
      `Broadcast mode: every message goes to every client of its room (/ws, /ws/<room>)${config.broadcastExcludeSender ? ', sender excluded' : ''}`,
    );
  }
  if (tls) {
    logger.info(`TLS enabled (wss://): certificate ${describeCertificate(tls.current)}`);
    warnIfNotValidNow(logger, tls.current);
    if (config.tlsWatch) tls.watch();
  }
  if (cluster) {
    logger.info(
      `Backplane: node ${cluster.relay.nodeId.toString('hex')} relays broadcasts over ${cluster.where} (channel ${config.backplaneChannel})`,
    );
  }
  const stopReport = startPeriodicReport(logger, transport.connections, config.statsInterval);
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
          transport.keepalive.stop();
          tls?.stop();
        },
      }).then(() => cluster?.backplane.close());
      return stopping;
    },
    reload() {
      if (tls) tls.reload('SIGHUP');
      else logger.info('Nothing to reload: TLS is disabled');
    },
  };
}
