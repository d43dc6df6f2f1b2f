import type { Server } from 'node:http';
import type { Config } from '../config/settings.js';
import type { WorkerContext } from '../lifecycle/cluster-worker.js';
import type { Health } from '../lifecycle/health.js';
import { listen } from '../lifecycle/listen.js';
import type { Logger } from '../log.js';
import { createMetricsRegistry, type MetricSources } from '../metrics/registry.js';
import { createMetricsServer } from '../metrics/server.js';
import { formatListenAddress } from '../transport/address.js';

export interface ServedMetrics {
  readonly server: Server | undefined;
  readonly port: number | undefined;
}

/**
 * The metrics of one process: its own port (a single process), or, in a worker of --workers,
 * answers to the primary, which serves one port for the whole cluster. `onListenError` undoes
 * what was started before (the WebSocket server, the backplane) when the port is taken.
 */
export async function serveMetrics(
  config: Config,
  parts: MetricSources & {
    readonly health: Health;
    readonly logger: Logger;
    readonly worker: WorkerContext | undefined;
    readonly onListenError: () => Promise<unknown>;
  },
): Promise<ServedMetrics> {
  const { logger, worker } = parts;
  if (!config.metricsEnabled) {
    if (!worker) logger.info('Metrics server disabled (metrics.enabled: false)');
    return { server: undefined, port: undefined };
  }
  const registry = createMetricsRegistry(parts);
  if (worker) {
    // The primary serves one metrics port for the whole cluster and asks each worker for its registry.
    worker.serveMetrics(() => registry.getMetricsAsJSON());
    return { server: undefined, port: undefined };
  }
  const server = createMetricsServer(registry, parts.health);
  let port: number;
  try {
    port = await listen(server, config.metricsHost, config.metricsPort, '--metrics-host/--metrics-port');
  } catch (error) {
    await parts.onListenError();
    throw error;
  }
  logger.info(`Starting metrics server on ${formatListenAddress(config.metricsHost, port)}`);
  return { server, port };
}
