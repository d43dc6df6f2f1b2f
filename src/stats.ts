/**
 * Plain counters the message path increments (an integer add, nothing more).
 * metrics/ reads them at scrape time: metrics sit beside the path, never in it.
 */

import { DISCONNECT_REASONS, type DisconnectReason } from './disconnects.js';

/** Why the server ended a connection: the labels of the close catalogue (src/disconnects.ts). */
export { DISCONNECT_REASONS, type DisconnectReason };

/**
 * Why an upgrade request on the WebSocket port was refused (transport/upgrade-gate.ts
 * re-exports these). A bounded set: these become metric labels.
 */
export const REJECT_REASONS = [
  'not_found',
  'invalid_room',
  'shutting_down',
  'bad_handshake',
  'origin_not_allowed',
  'max_connections',
  'max_connections_per_ip',
  'header_too_large',
  'handshake_timeout',
  'bad_request',
  'invalid_fault_injection',
  'invalid_position',
  /** ?status=CODE (--allow-fault-injection): the client asked to be refused with that status. */
  'injected_status',
  'unauthorized',
  'forbidden',
  'max_connections_per_user',
  'auth_unavailable',
] as const;
export type RejectReason = (typeof REJECT_REASONS)[number];

/**
 * The fault-injection knobs (--allow-fault-injection, transport/fault-injection.ts), as counted in
 * wshub_fault_injections_total{knob}: once per connection (or refused handshake) that asked for each.
 */
export const FAULT_KNOBS = [
  'delay',
  'close',
  'drop',
  'hello',
  'status',
  'close_after',
  'close_in',
  'ignore_pings',
] as const;
export type FaultKnob = (typeof FAULT_KNOBS)[number];

/**
 * Refusals of the access policy (issue 15), by reason: handshakes and POST /publish
 * calls refused for their token (missing … keys_unavailable), a room the token does
 * not cover (room), the per-user limit (user_limit), and client messages refused
 * and not delivered: a room the connection may not publish to (publish, also with
 * --client-publish=false) or faster than --max-messages-per-second (rate).
 * A bounded set: these become metric labels.
 */
export const AUTH_FAILURE_REASONS = [
  'missing',
  'malformed',
  'signature',
  'algorithm',
  'unknown_key',
  'expired',
  'not_yet_valid',
  'issuer',
  'audience',
  'claims',
  'keys_unavailable',
  'room',
  'user_limit',
  'publish',
  'rate',
] as const;
export type AuthFailureReason = (typeof AUTH_FAILURE_REASONS)[number];

/** Why a message addressed to a client was not written to it. A bounded set: these become metric labels. */
export const DROP_REASONS = ['slow_consumer'] as const;
export type DropReason = (typeof DROP_REASONS)[number];

/**
 * Why a client's message did not reach the other nodes (issue 6). One reason,
 * counted by the backplane driver as BackplaneStats.publishFailures; exported as
 * websocket_messages_dropped_total{reason="backplane_unavailable"} too.
 */
export const RELAY_DROP_REASON = 'backplane_unavailable';

/** Seconds; fits a same-datacenter Redis hop (sub-millisecond) up to a congested one. */
export const BACKPLANE_LATENCY_BUCKETS = [
  0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5,
] as const;

/** Ping round trips from a LAN (sub-millisecond) to a peer about to time out (default 20 s). */
export const PING_RTT_BUCKETS = [
  0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20,
] as const;

/** A histogram in plain numbers: observe() is a loop over a dozen bounds and two adds. */
export class PlainHistogram {
  /** counts[i]: observations ≤ bounds[i] and > bounds[i-1]; counts[bounds.length]: above the last bound. */
  readonly counts: number[];
  sum = 0;
  count = 0;

  constructor(readonly bounds: readonly number[]) {
    this.counts = new Array<number>(bounds.length + 1).fill(0);
  }

  observe(value: number): void {
    let i = 0;
    while (i < this.bounds.length && value > (this.bounds[i] as number)) i++;
    this.counts[i] = (this.counts[i] as number) + 1;
    this.sum += value;
    this.count++;
  }
}

/** The backplane's counters (issue 6); all zero on a single node. */
export class BackplaneStats {
  /** Messages Redis accepted from this node. */
  published = 0;
  /** Messages this node could not publish: refused at once (not connected, buffer full) or lost in flight. */
  publishFailures = 0;
  /** Messages the driver received, this node's own included. */
  received = 0;
  /** Reconnections after a lost connection. */
  reconnects = 0;
  /** Messages from other nodes handed to the local hub. */
  receivedFromOtherNodes = 0;
  /** Messages from other nodes that never arrived, from gaps in their sequence numbers. */
  missed = 0;
  /** Messages on the channel that are not valid envelopes. */
  invalid = 0;
  /** Rooms whose channel this node subscribed to (a first local member arrived, issue 18). */
  roomSubscribes = 0;
  /** Rooms whose channel this node unsubscribed from (the linger after the last member ended). */
  roomUnsubscribes = 0;
  /** Times the backplane's layout changed (Redis Cluster slots moved, a replica promoted, a Sentinel switch). */
  topologyChanges = 0;
  /** From publish on one node to delivery to the local hub on another, in seconds. */
  readonly deliveryLatency = new PlainHistogram(BACKPLANE_LATENCY_BUCKETS);
}

/**
 * Why a wshub.v1 client got a `reset` frame (issue 16): its ?since= names another epoch
 * (or a position this epoch never reached), its position is older than the history
 * kept, or the room's history was lost under it (Redis restarted empty, the TTL passed,
 * messages a publishing node had to drop). A bounded set: these become metric labels.
 */
export const RESET_REASONS = ['other_epoch', 'too_old', 'history_lost'] as const;
export type ResetReason = (typeof RESET_REASONS)[number];

/**
 * Why a server told a wshub.v1 client to reconnect (a `reconnect` frame before its 1001, issue 17):
 * the node is going away (a graceful shutdown or drain), or the connection reached
 * --max-connection-lifetime. Each is also the label of the close that follows
 * (`websocket_server_disconnects_total{reason}`). A bounded set: these become metric labels.
 */
export const RECONNECT_REASONS = ['shutdown', 'max_lifetime'] as const satisfies readonly DisconnectReason[];
export type ReconnectReason = (typeof RECONNECT_REASONS)[number];

/** Room history, resume and the publishing outbox (issue 16); all zero without --history-size. */
export class HistoryStats {
  /** Resumes (?since=) answered with a replay. */
  replays = 0;
  /** Messages sent to clients by replays. */
  replayedMessages = 0;
  readonly resets: Record<ResetReason, number> = zeroes(RESET_REASONS);
  /** Messages this node handed to its wshub.v1 clients as `pending` (Redis late to position them). */
  pending = 0;
  /** Messages a node received twice (same room position) and delivered once. */
  duplicatesDropped = 0;
  /** Outbox messages sent to Redis again after a failure (connection lost before Redis answered). */
  redeliveries = 0;
  /** Messages the outbox could not keep (past --backplane-max-pending while Redis was unreachable). */
  outboxDropped = 0;
  /** Gauges, read at scrape time from the store and the outbox (set by wiring/history.ts). */
  entries: () => number = zero;
  /** Called (and awaited) before `entries` and `bytes` are read: the Redis store measures then. */
  measure: () => Promise<void> | undefined = nothing;
  bytes: () => number = zero;
  outboxMessages: () => number = zero;
  outboxBytes: () => number = zero;
}

function zero(): number {
  return 0;
}

function nothing(): undefined {
  return undefined;
}

const zeroes = <K extends string>(keys: readonly K[]): Record<K, number> =>
  Object.fromEntries(keys.map((key) => [key, 0])) as Record<K, number>;

/** Outcome of a TLS certificate reload (SIGHUP or file change). */
export const TLS_RELOAD_RESULTS = ['success', 'failure'] as const;
export type TlsReloadResult = (typeof TLS_RELOAD_RESULTS)[number];

/**
 * Why a TLS handshake on the WebSocket port failed: plain HTTP sent to it, no
 * handshake within --handshake-timeout, the peer closed first (TCP health checks,
 * clients that reject the certificate), or anything else OpenSSL refused.
 */
export const TLS_HANDSHAKE_FAILURE_REASONS = ['http_request', 'timeout', 'closed', 'protocol'] as const;
export type TlsHandshakeFailureReason = (typeof TLS_HANDSHAKE_FAILURE_REASONS)[number];

/** HTTP statuses of POST /publish (issue 8). A bounded set: these become metric labels. */
export const PUBLISH_STATUSES = ['200', '400', '401', '403', '405', '413', '429', '503'] as const;
export type PublishStatus = (typeof PUBLISH_STATUSES)[number];

/** The HTTP versions a WebSocket handshake can arrive over: an upgrade (RFC 6455) or an extended CONNECT (RFC 8441). */
export const HTTP_VERSIONS = ['1.1', '2'] as const;
export type HttpVersion = (typeof HTTP_VERSIONS)[number];

export class Stats {
  connectionsTotal = 0;
  disconnectionsTotal = 0;
  messagesReceived = 0;
  bytesReceived = 0;
  /** Messages written to clients: one per receiver (a broadcast to 10 clients counts 10). */
  messagesDelivered = 0;
  /** Payload bytes of the messages written to clients (framing excluded, like bytesReceived). */
  bytesSent = 0;
  /** Socket writes of data frames: at most one per connection per event-loop turn (issue 5, corking). */
  socketWrites = 0;
  /** permessage-deflate compressions of broadcast messages: one per message and server window, shared by its receivers. */
  sharedCompressions = 0;
  readonly serverDisconnects: Record<DisconnectReason, number> = zeroes(DISCONNECT_REASONS);
  readonly messagesDropped: Record<DropReason, number> = zeroes(DROP_REASONS);
  readonly upgradesRejected: Record<RejectReason, number> = zeroes(REJECT_REASONS);
  readonly publishRequests: Record<PublishStatus, number> = zeroes(PUBLISH_STATUSES);
  /** Connections (and refused handshakes, ?status) that asked for each fault-injection knob. */
  readonly faultInjections: Record<FaultKnob, number> = zeroes(FAULT_KNOBS);
  /** Pings a ?ignore-pings connection sent that the server did not answer. */
  faultPingsIgnored = 0;
  /**
   * Ping round trips in seconds, read by /metrics and the console's /stats (issue 19).
   * A pong arrives at most once per connection per ping interval: off the message path.
   */
  readonly pingRtt = new PlainHistogram(PING_RTT_BUCKETS);
  readonly tlsHandshakeFailures: Record<TlsHandshakeFailureReason, number> = zeroes(
    TLS_HANDSHAKE_FAILURE_REASONS,
  );
  readonly tlsReloads: Record<TlsReloadResult, number> = zeroes(TLS_RELOAD_RESULTS);
  readonly authFailures: Record<AuthFailureReason, number> = zeroes(AUTH_FAILURE_REASONS);
  /** Reloads of the auth key files (--auth-jwt-secret-file, --auth-jwks-file) on SIGHUP or change. */
  readonly authKeyReloads: Record<TlsReloadResult, number> = zeroes(TLS_RELOAD_RESULTS);
  /** Fetches of --auth-jwks-url. */
  readonly authJwksFetches: Record<TlsReloadResult, number> = zeroes(TLS_RELOAD_RESULTS);
  readonly backplane = new BackplaneStats();
  readonly history = new HistoryStats();
  /** WebSocket connections accepted, by the HTTP version that carried the handshake (issue 17). */
  readonly connectionsByHttpVersion: Record<HttpVersion, number> = zeroes(HTTP_VERSIONS);
  /** HTTP/2 connections opened on the WebSocket port (--http2). */
  http2Sessions = 0;
  /** GOAWAY frames sent at shutdown, one per HTTP/2 connection still open or opened while draining. */
  http2GoAways = 0;
  /** Where a graceful shutdown is (lifecycle/shutdown.ts SHUTDOWN_PHASES): 0 serving, 1 drain delay, 2 closing, 3 waiting for the last closes. */
  shutdownPhase = 0;
  /** WebSocket connections accepted during --drain-delay (readiness already 503). */
  acceptedWhileDraining = 0;
  /** `reconnect` frames sent to wshub.v1 clients before a 1001 close (issue 17), by why the server closed. */
  readonly reconnectFramesSent: Record<ReconnectReason, number> = zeroes(RECONNECT_REASONS);
}
