import { Counter, collectDefaultMetrics, Gauge, type Metric, Registry } from 'prom-client';
import {
  AUTH_FAILURE_REASONS,
  DISCONNECT_REASONS,
  DROP_REASONS,
  FAULT_KNOBS,
  HTTP_VERSIONS,
  type PlainHistogram,
  PUBLISH_STATUSES,
  RECONNECT_REASONS,
  REJECT_REASONS,
  RELAY_DROP_REASON,
  RESET_REASONS,
  type Stats,
  TLS_HANDSHAKE_FAILURE_REASONS,
  TLS_RELOAD_RESULTS,
} from '../stats.js';

export interface MetricSources {
  readonly connections: { readonly size: number };
  readonly stats: Stats;
  /** The certificate being served, when TLS is on. */
  readonly tls?: { readonly current: { readonly validTo: number } } | undefined;
  /** Present with --http2: the wshub_http2_* metrics exist only then. */
  readonly http2?: { readonly sessionCount: number } | undefined;
  /** --auth=jwt: the key reload and JWKS fetch counters exist only then. */
  readonly auth?: boolean;
  /** Present when a backplane is configured (issue 6): the wshub_backplane_* metrics exist only then. */
  readonly backplane?: BackplaneSource | undefined;
  /** Room history (issue 16): 'memory' on a single node, 'redis' with the backplane; absent without --history-size. */
  readonly history?: 'memory' | 'redis';
}

/** What the metrics read from the backplane at scrape time (issue 18); a structural type, metrics/ does not import backplane/. */
export interface BackplaneSource {
  readonly connected: () => boolean;
  /** Rooms whose channel the node is subscribed to. */
  readonly subscribedRooms: () => number;
  /** Per-part state of a medium made of parts (Redis Cluster shards); bounded labels, never addresses. */
  readonly shards: () => ReadonlyArray<{ readonly shard: string; readonly state: string }>;
}

/**
 * A private registry (never prom-client's global one), filled at startup so a
 * duplicate name fails then, not on the hot path. Every value is read from the
 * path's own state at scrape time: gauges are exact by construction (they are
 * the size of the live connection set), and counters mirror plain integers.
 */
/** prom-client default gauges whose names end in _total (see createMetricsRegistry). */
export const NON_COUNTER_TOTALS = [
  'nodejs_active_handles_total',
  'nodejs_active_requests_total',
  'nodejs_active_resources_total',
] as const;

export function createMetricsRegistry(sources: MetricSources): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  // prom-client names three gauges *_total, which the exposition format reserves for counters
  // (`promtool check metrics` refuses them, issue 14); each is the sum of the by-type gauge of the
  // same name without the suffix (nodejs_active_handles{type}, …), which stays.
  for (const name of NON_COUNTER_TOTALS) registry.removeSingleMetric(name);
  const { connections, stats } = sources;

  new Gauge({
    name: 'websocket_connections',
    help: 'Current number of active WebSocket connections',
    registers: [registry],
    collect() {
      this.set(connections.size);
    },
  });

  // Seed 002's name for the same gauge; websocket_connections stays for seed 000 dashboards.
  new Gauge({
    name: 'websocket_connected_clients',
    help: 'Current number of connected WebSocket clients',
    registers: [registry],
    collect() {
      this.set(connections.size);
    },
  });

  const plainCounters: ReadonlyArray<[name: string, help: string, read: () => number]> = [
    ['websocket_connections_total', 'WebSocket connections accepted', () => stats.connectionsTotal],
    [
      'websocket_disconnections_total',
      'WebSocket connections ended, for any reason',
      () => stats.disconnectionsTotal,
    ],
    ['websocket_messages_total', 'Messages received from clients', () => stats.messagesReceived],
    [
      'websocket_messages_delivered_total',
      'Messages written to clients (a broadcast to N clients counts N)',
      () => stats.messagesDelivered,
    ],
    [
      'websocket_received_bytes_total',
      'Payload bytes of messages received from clients',
      () => stats.bytesReceived,
    ],
    ['websocket_sent_bytes_total', 'Payload bytes of messages written to clients', () => stats.bytesSent],
    [
      'wshub_socket_writes_total',
      'Writes of data frames to client sockets; frames for one socket in one event-loop turn share a write',
      () => stats.socketWrites,
    ],
    [
      'wshub_broadcast_compressions_total',
      'permessage-deflate compressions of broadcast messages: one per message and negotiated server window, its bytes shared by every receiver',
      () => stats.sharedCompressions,
    ],
  ];
  for (const [name, help, read] of plainCounters) {
    mirrorCounter(registry, name, help, { read: (set) => set(read()) });
  }

  mirrorCounter(
    registry,
    'websocket_messages_dropped_total',
    'Messages addressed to a client but not written to it, by reason',
    {
      labelNames: ['reason'],
      read: (set) => {
        for (const reason of DROP_REASONS) set(stats.messagesDropped[reason], { reason });
        set(stats.backplane.publishFailures, { reason: RELAY_DROP_REASON });
      },
    },
  );

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

  mirrorCounter(
    registry,
    'websocket_upgrades_rejected_total',
    'Upgrade requests on the WebSocket port refused before the handshake completed, by reason',
    {
      labelNames: ['reason'],
      read: (set) => {
        for (const reason of REJECT_REASONS) set(stats.upgradesRejected[reason], { reason });
      },
    },
  );

  mirrorCounter(
    registry,
    'wshub_fault_injections_total',
    'Connections (and, for status, refused handshakes) that asked for a fault-injection knob (--allow-fault-injection), by knob',
    {
      labelNames: ['knob'],
      read: (set) => {
        for (const knob of FAULT_KNOBS) set(stats.faultInjections[knob], { knob });
      },
    },
  );
  mirrorCounter(
    registry,
    'wshub_fault_injection_pings_ignored_total',
    'Pings from ?ignore-pings connections that the server did not answer (--allow-fault-injection)',
    { read: (set) => set(stats.faultPingsIgnored) },
  );

  mirrorCounter(
    registry,
    'wshub_connections_by_http_version_total',
    'WebSocket connections accepted, by the HTTP version of the handshake: 1.1 (Upgrade) or 2 (extended CONNECT, --http2)',
    {
      labelNames: ['http_version'],
      read: (set) => {
        for (const version of HTTP_VERSIONS)
          set(stats.connectionsByHttpVersion[version], { http_version: version });
      },
    },
  );
  const http2 = sources.http2;
  if (http2) {
    new Gauge({
      name: 'wshub_http2_connections',
      help: 'HTTP/2 connections open on the WebSocket port (each may carry many WebSocket streams)',
      registers: [registry],
      collect() {
        this.set(http2.sessionCount);
      },
    });
    mirrorCounter(
      registry,
      'wshub_http2_connections_total',
      'HTTP/2 connections opened on the WebSocket port',
      {
        read: (set) => set(stats.http2Sessions),
      },
    );
    mirrorCounter(
      registry,
      'wshub_http2_goaways_total',
      'GOAWAY frames sent at shutdown, one per HTTP/2 connection then open',
      { read: (set) => set(stats.http2GoAways) },
    );
  }

  new Gauge({
    name: 'wshub_shutdown_phase',
    help: 'Graceful shutdown: 0 serving, 1 drain delay (readiness 503, still accepting), 2 closing connections over the drain window, 3 waiting for the last close handshakes',
    registers: [registry],
    collect() {
      this.set(stats.shutdownPhase);
    },
  });
  mirrorCounter(
    registry,
    'wshub_drain_accepted_connections_total',
    'WebSocket connections accepted during --drain-delay (readiness already 503)',
    { read: (set) => set(stats.acceptedWhileDraining) },
  );
  mirrorCounter(
    registry,
    'wshub_reconnect_frames_total',
    'reconnect frames sent to wshub.v1 clients before their 1001 close (reconnect and resume), by reason: shutdown, max_lifetime',
    {
      labelNames: ['reason'],
      read: (set) => {
        for (const reason of RECONNECT_REASONS) set(stats.reconnectFramesSent[reason], { reason });
      },
    },
  );

  mirrorCounter(
    registry,
    'wshub_auth_failures_total',
    'Refusals of the access policy: upgrades, publish calls and other plain requests (GET /stats, a GET of a WebSocket path) refused for their token, room or user limit, and client messages refused (publish, rate)',
    {
      labelNames: ['reason'],
      read: (set) => {
        for (const reason of AUTH_FAILURE_REASONS) set(stats.authFailures[reason], { reason });
      },
    },
  );

  if (sources.auth) {
    mirrorCounter(
      registry,
      'wshub_auth_key_reloads_total',
      'Reloads of the auth key files (--auth-jwt-secret-file, --auth-jwks-file) on SIGHUP or file change, by result',
      {
        labelNames: ['result'],
        read: (set) => {
          for (const result of TLS_RELOAD_RESULTS) set(stats.authKeyReloads[result], { result });
        },
      },
    );
    mirrorCounter(registry, 'wshub_auth_jwks_fetches_total', 'Fetches of --auth-jwks-url, by result', {
      labelNames: ['result'],
      read: (set) => {
        for (const result of TLS_RELOAD_RESULTS) set(stats.authJwksFetches[result], { result });
      },
    });
  }

  mirrorCounter(registry, 'wshub_publish_requests_total', 'POST /publish requests, by HTTP status', {
    labelNames: ['status'],
    read: (set) => {
      for (const status of PUBLISH_STATUSES) set(stats.publishRequests[status], { status });
    },
  });

  // A plain histogram in Stats, so the console's /stats (issue 19) reads the same buckets.
  mirrorHistogram(
    registry,
    'websocket_ping_rtt_seconds',
    'Time from a server ping to the client pong',
    stats.pingRtt,
  );

  mirrorCounter(
    registry,
    'wshub_tls_reloads_total',
    'TLS certificate reloads (file change or SIGHUP), by result',
    {
      labelNames: ['result'],
      read: (set) => {
        for (const result of TLS_RELOAD_RESULTS) set(stats.tlsReloads[result], { result });
      },
    },
  );
  mirrorCounter(
    registry,
    'wshub_tls_handshake_failures_total',
    'TLS handshakes on the WebSocket port that failed, by reason',
    {
      labelNames: ['reason'],
      read: (set) => {
        for (const reason of TLS_HANDSHAKE_FAILURE_REASONS)
          set(stats.tlsHandshakeFailures[reason], { reason });
      },
    },
  );
  const tls = sources.tls;
  if (tls) {
    new Gauge({
      name: 'wshub_tls_certificate_expiry_timestamp_seconds',
      help: 'notAfter of the certificate currently served, in seconds since the epoch',
      registers: [registry],
      // --workers: the soonest expiry of any worker's certificate, never a sum.
      aggregator: 'min',
      collect() {
        this.set(Math.floor(tls.current.validTo / 1000));
      },
    });
  }
  if (sources.backplane) registerBackplaneMetrics(registry, stats, sources.backplane);
  if (sources.history) registerHistoryMetrics(registry, stats, sources.history);
  return registry;
}

function registerHistoryMetrics(registry: Registry, stats: Stats, store: 'memory' | 'redis'): void {
  const history = stats.history;
  // Every history metric exists in both setups (issue 16): the outbox ones stay 0 on a single node.
  const where =
    store === 'memory'
      ? 'in memory'
      : 'in Redis, of the rooms this node has clients in, read from Redis at scrape time';
  const gauges: Array<[name: string, help: string, read: () => number, measure: boolean]> = [
    ['wshub_history_entries', `Messages held in room histories (${where})`, () => history.entries(), true],
    [
      'wshub_history_bytes',
      `Payload bytes of the messages held in room histories (${where})`,
      () => history.bytes(),
      true,
    ],
    [
      'wshub_outbox_messages',
      'Messages this node published that Redis has not accepted yet (kept and retried; 0 without Redis)',
      () => history.outboxMessages(),
      false,
    ],
    ['wshub_outbox_bytes', 'Bytes of the messages in the outbox', () => history.outboxBytes(), false],
  ];
  for (const [name, help, read, measure] of gauges) {
    new Gauge({
      name,
      help,
      registers: [registry],
      async collect() {
        if (measure) await history.measure();
        this.set(read());
      },
    });
  }
  const counters: Array<[name: string, help: string, read: () => number]> = [
    ['wshub_history_replays_total', 'Resumes (?since=) answered with a replay', () => history.replays],
    [
      'wshub_history_replayed_messages_total',
      'Messages sent to clients by replays',
      () => history.replayedMessages,
    ],
    [
      'wshub_history_duplicates_dropped_total',
      'Messages that reached this node twice (same room position) and were delivered once',
      () => history.duplicatesDropped,
    ],
    [
      'wshub_history_pending_total',
      'Messages published on this node that its wshub.v1 clients got as pending frames, before Redis gave them a position (Redis unreachable, or no answer for 250 ms)',
      () => history.pending,
    ],
    [
      'wshub_outbox_redeliveries_total',
      'Messages sent to Redis again because the connection was lost before Redis answered',
      () => history.redeliveries,
    ],
    [
      'wshub_outbox_dropped_total',
      'Messages the outbox could not keep (over --backplane-max-pending while Redis was unreachable); their rooms get a hole and a reset',
      () => history.outboxDropped,
    ],
  ];
  for (const [name, help, read] of counters)
    mirrorCounter(registry, name, help, { read: (set) => set(read()) });
  mirrorCounter(
    registry,
    'wshub_history_resets_total',
    'reset frames sent to wshub.v1 clients, by reason: other_epoch (resume from another epoch), too_old (older than the history kept), history_lost',
    {
      labelNames: ['reason'],
      read: (set) => {
        for (const reason of RESET_REASONS) set(history.resets[reason], { reason });
      },
    },
  );
}

function registerBackplaneMetrics(registry: Registry, stats: Stats, source: BackplaneSource): void {
  const isConnected = source.connected;
  new Gauge({
    name: 'wshub_backplane_subscribed_rooms',
    help: 'Rooms whose backplane channel this node is subscribed to, once the backplane confirmed it (it has a client in them, or had within --backplane-room-linger)',
    registers: [registry],
    collect() {
      this.set(source.subscribedRooms());
    },
  });
  new Gauge({
    name: 'wshub_backplane_shard_connected',
    help: 'Redis Cluster: 1 while this node reaches the master of the shard (labelled by its slot ranges) and holds its subscriptions, else 0',
    labelNames: ['shard'],
    registers: [registry],
    aggregator: 'min',
    collect() {
      this.reset();
      for (const { shard, state } of source.shards()) this.set({ shard }, state === 'connected' ? 1 : 0);
    },
  });
  new Gauge({
    name: 'wshub_backplane_connected',
    help: '1 while the backplane (Redis, or the primary with --workers) is connected and subscribed, else 0',
    registers: [registry],
    // --workers: 1 only when every worker is connected.
    aggregator: 'min',
    collect() {
      this.set(isConnected() ? 1 : 0);
    },
  });
  const backplane = stats.backplane;
  const counters: ReadonlyArray<[name: string, help: string, read: () => number]> = [
    [
      'wshub_backplane_messages_published_total',
      'Messages this node published to the backplane and the backplane accepted',
      () => backplane.published,
    ],
    [
      'wshub_backplane_messages_received_total',
      'Messages from other nodes delivered to this node’s clients',
      () => backplane.receivedFromOtherNodes,
    ],
    [
      'wshub_backplane_messages_inbound_total',
      'Every message the backplane delivered to this node, its own included: with per-room routing only those of rooms it subscribes to',
      () => backplane.received,
    ],
    [
      'wshub_backplane_room_subscribes_total',
      'Room channels this node subscribed to (a first local client joined the room)',
      () => backplane.roomSubscribes,
    ],
    [
      'wshub_backplane_room_unsubscribes_total',
      'Room channels this node unsubscribed from (the last local client left and the linger ended)',
      () => backplane.roomUnsubscribes,
    ],
    [
      'wshub_backplane_topology_changes_total',
      'Changes of the backplane layout seen by this node (Redis Cluster slots moved or a replica promoted, a Sentinel failover)',
      () => backplane.topologyChanges,
    ],
    [
      'wshub_backplane_publish_errors_total',
      'Messages this node could not publish (backplane down, send buffer full, connection lost in flight)',
      () => backplane.publishFailures,
    ],
    [
      'wshub_backplane_reconnects_total',
      'Reconnections to the backplane after a lost connection',
      () => backplane.reconnects,
    ],
    [
      'wshub_backplane_messages_missed_total',
      'Messages from other nodes that never arrived (gaps in their sequence numbers)',
      () => backplane.missed,
    ],
    [
      'wshub_backplane_invalid_messages_total',
      'Messages on the backplane channel that are not wshub envelopes (ignored)',
      () => backplane.invalid,
    ],
  ];
  for (const [name, help, read] of counters)
    mirrorCounter(registry, name, help, { read: (set) => set(read()) });
  mirrorHistogram(
    registry,
    'wshub_backplane_delivery_latency_seconds',
    'From publish on one node to delivery to the local clients on another (clocks of different hosts must agree)',
    backplane.deliveryLatency,
  );
}

/**
 * A Prometheus histogram whose buckets are copied from a PlainHistogram at
 * scrape time, so the path observes with plain arithmetic (no prom-client).
 */
export function mirrorHistogram(
  registry: Registry,
  name: string,
  help: string,
  source: PlainHistogram,
): void {
  const snapshot = () => {
    const values: Array<{ metricName: string; labels: Labels | Record<string, number>; value: number }> = [];
    let cumulative = 0;
    source.bounds.forEach((bound, i) => {
      cumulative += source.counts[i] as number;
      values.push({ metricName: `${name}_bucket`, labels: { le: bound }, value: cumulative });
    });
    values.push(
      { metricName: `${name}_bucket`, labels: { le: '+Inf' }, value: source.count },
      { metricName: `${name}_sum`, labels: {}, value: source.sum },
      { metricName: `${name}_count`, labels: {}, value: source.count },
    );
    return { name, help, type: 'histogram', aggregator: 'sum', values };
  };
  // The registry needs only name, type and get() (lib/registry.js getMetricsAsString).
  const metric = {
    name,
    help,
    type: 'histogram',
    aggregator: 'sum',
    get: async () => snapshot(),
    reset() {},
  };
  registry.registerMetric(metric as unknown as Metric);
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
