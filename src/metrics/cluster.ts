import {
  AggregatorRegistry,
  Gauge,
  type MetricObjectWithValues,
  type MetricValue,
  Registry,
} from 'prom-client';
import { WORKER_STATES, type WorkerState } from '../lifecycle/cluster-supervisor.js';
import { mirrorCounter } from './registry.js';
import type { MetricsSource } from './server.js';

export interface ClusterMetricSources {
  readonly workerStates: () => Record<WorkerState, number>;
  readonly restarts: () => number;
  /** Each worker's registry as getMetricsAsJSON() returns it. */
  readonly collectFromWorkers: () => Promise<unknown[]>;
}

/**
 * The primary's /metrics with --workers (issue 5): every worker's private
 * registry, aggregated by prom-client's AggregatorRegistry (counters, the
 * connection gauges and histograms summed; each metric's `aggregator` says
 * otherwise: min for a certificate's expiry and the backplane's connected
 * gauge, omit for process_start_time_seconds), followed by the primary's own
 * metrics: the workers by state, their restarts and its start time.
 */
export function createClusterMetrics(sources: ClusterMetricSources): MetricsSource {
  const own = new Registry();
  new Gauge({
    name: 'wshub_workers',
    help: 'Worker processes (--workers) by state: starting, listening, stopping',
    labelNames: ['state'],
    registers: [own],
    collect() {
      const counts = sources.workerStates();
      for (const state of WORKER_STATES) this.set({ state }, counts[state]);
    },
  });
  mirrorCounter(own, 'wshub_worker_restarts_total', 'Worker processes restarted after an unexpected exit', {
    read: (set) => set(sources.restarts()),
  });
  const startedAt = Math.round(Date.now() / 1000 - process.uptime());
  new Gauge({
    name: 'process_start_time_seconds',
    help: 'Start time of the primary process since unix epoch in seconds (the workers restart on their own)',
    registers: [own],
    collect() {
      this.set(startedAt);
    },
  });
  return {
    contentType: own.contentType,
    async metrics() {
      const fromWorkers = (await sources.collectFromWorkers()) as Array<
        Array<MetricObjectWithValues<MetricValue<string>>>
      >;
      const aggregated = AggregatorRegistry.aggregate(fromWorkers);
      return (await aggregated.metrics()) + (await own.metrics());
    },
  };
}
