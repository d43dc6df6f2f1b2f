import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { TokenVerifier } from '../auth/verifier.js';
import type { Config } from '../config/settings.js';
import type { Hub } from '../hub/hub.js';
import type { WorkerContext } from '../lifecycle/cluster-worker.js';
import type { Logger, RateLimitedLog } from '../log.js';
import type { Stats } from '../stats.js';
import { perMessageDeflateOptions } from '../transport/compression.js';
import { receiveLimits } from '../transport/receive-limits.js';
import { UpgradeGate } from '../transport/upgrade-gate.js';
import { WebSocketTransport } from '../transport/websocket-server.js';
import { VERSION } from '../version.js';

/**
 * With --workers every worker enforces its share of a cluster-wide limit: the
 * primary hands connections out round robin, so N shares of ceil(limit / N)
 * add up to the limit (give or take N - 1) while the load is even. 0 stays 0 (unlimited).
 */
export const shareOf = (limit: number, workers: number): number =>
  limit === 0 ? 0 : Math.ceil(limit / workers);

/**
 * The upgrade gate: admission limits (a worker's share of them), origins, proxies, fault injection.
 * --max-connections-per-user is not shared out: one user's connections need not be spread evenly
 * (a limit of 1 would allow one per worker), so in a worker the primary counts them (issue 15).
 */
export function buildGate(
  config: Config,
  worker: WorkerContext | undefined,
  verifier?: TokenVerifier,
): UpgradeGate {
  const workers = worker?.count ?? 1;
  const perUser = config.maxConnectionsPerUser;
  const shared = worker !== undefined && perUser > 0 && verifier !== undefined;
  return new UpgradeGate({
    maxConnections: shareOf(config.maxConnections, workers),
    maxConnectionsPerIp: shareOf(config.maxConnectionsPerIp, workers),
    allowedOrigins: config.allowedOrigins,
    trustProxyHops: config.trustProxyHops,
    allowFaultInjection: config.allowFaultInjection,
    verifier,
    maxConnectionsPerUser: shared ? 0 : perUser,
    sharedUserLimit: shared ? worker.sharedUserLimit(perUser) : undefined,
  });
}

/** The WebSocket transport: receive limits, compression, keepalive, from the config. */
export function buildTransport(
  config: Config,
  parts: {
    readonly hub: Hub;
    readonly gate: UpgradeGate;
    readonly stats: Stats;
    readonly logger: Logger;
    readonly limitedLog: RateLimitedLog;
    /** Subprotocols the server accepts (wshub.v1 with room history). */
    readonly subprotocols: readonly string[];
  },
): WebSocketTransport {
  const limits = receiveLimits(config);
  return new WebSocketTransport({
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
      tokenExpiry: config.auth === 'jwt',
    },
    clientPublish: config.clientPublish,
    maxMessagesPerSecond: config.maxMessagesPerSecond,
    ...parts,
    instance: { hostname: hostname(), id: randomBytes(4).toString('hex'), version: VERSION },
  });
}
