import type { Server } from 'node:http';
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
import { Stats } from './stats.js';
import { describeAccelerators, detectAccelerators } from './transport/accelerators.js';
import { formatListenAddress } from './transport/address.js';
import { perMessageDeflateOptions } from './transport/compression.js';
import { createWebSocketHttpServer, type PlainRoute } from './transport/http-server.js';
import { receiveLimits } from './transport/receive-limits.js';
import { TlsReloader, tlsHandshakeFailureListener, warnIfNotValidNow } from './transport/tls.js';
import { describeCertificate, loadTlsMaterial, type TlsFiles } from './transport/tls-files.js';
import { UpgradeGate } from './transport/upgrade-gate.js';
import { WebSocketTransport } from './transport/websocket-server.js';

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
export async function start(config: Config, { logger }: AppDependencies): Promise<RunningApp> {
  const stats = new Stats();
  const health = new Health();
  const gate = new UpgradeGate({
    maxConnections: config.maxConnections,
    maxConnectionsPerIp: config.maxConnectionsPerIp,
    allowedOrigins: config.allowedOrigins,
    trustProxyHops: config.trustProxyHops,
  });
  const limitedLog = new RateLimitedLog(logger);
  const hub: Hub =
    config.mode === 'broadcast'
      ? new BroadcastHub({ excludeSender: config.broadcastExcludeSender })
      : new EchoHub();
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
  const port = await listen(webSocketServer, config.host, config.port, '--host/--port');
  logger.info(`Starting WebSocket server on ${formatListenAddress(config.host, port)}`);
  let metricsServer: Server | undefined;
  let metricsPort: number | undefined;
  if (config.metricsEnabled) {
    const registry = createMetricsRegistry({ connections: transport.connections, stats, tls });
    metricsServer = createMetricsServer(registry, health);
    try {
      metricsPort = await listen(
        metricsServer,
        config.metricsHost,
        config.metricsPort,
        '--metrics-host/--metrics-port',
      );
    } catch (error) {
      await closeServer(webSocketServer);
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
      });
      return stopping;
    },
    reload() {
      if (tls) tls.reload('SIGHUP');
      else logger.info('Nothing to reload: TLS is disabled');
    },
  };
}
