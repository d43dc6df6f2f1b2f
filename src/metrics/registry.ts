import { Counter, collectDefaultMetrics, Gauge, Registry } from 'prom-client';
import { DISCONNECT_REASONS, type Stats } from '../stats.js';

export interface MetricSources {
  readonly connections: { readonly size: number };
  readonly stats: Stats;
}

/**
 * A private registry (never prom-client's global one), filled at startup so a
 * duplicate name fails then, not on the hot path. Every value is read from the
 * path's own state at scrape time: gauges are exact by construction (they are
 * the size of the live connection set), and counters mirror plain integers.
 */
export function createMetricsRegistry(sources: MetricSources): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const { connections, stats } = sources;

  new Gauge({
    name: 'websocket_connections',
    help: 'Current number of active WebSocket connections',
    registers: [registry],
    collect() {
      this.set(connections.size);
    },
  });

  mirrorCounter(
    registry,
    'websocket_server_disconnects_total',
    'Connections ended by the server, by reason',
    {
      labelNames: ['reason'],
      read: (set) => {
        for (const reason of DISCONNECT_REASONS) set(stats.serverDisconnects[reason], { reason });
      },
    },
  );
  return registry;
}

type Labels = Record<string, string>;

/** A Prometheus counter whose value is copied from a plain integer at scrape time. */
export function mirrorCounter(
  registry: Registry,
  name: string,
  help: string,
  options: { labelNames?: string[]; read: (set: (value: number, labels?: Labels) => void) => void },
): void {
  new Counter({
    name,
    help,
    labelNames: options.labelNames ?? [],
    registers: [registry],
    collect() {
      this.reset();
      options.read((value, labels) => {
        if (labels) this.inc(labels, value);
        else this.inc(value);
      });
    },
  });
}
