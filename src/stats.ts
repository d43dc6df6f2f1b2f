/**
 * Plain counters the message path increments (an integer add, nothing more).
 * metrics/ reads them at scrape time: metrics sit beside the path, never in it.
 */

/** Why the server ended a connection. A bounded set: these become metric labels. */
export const DISCONNECT_REASONS = [
  'shutdown',
  'shutdown_timeout',
  'protocol_error',
  'invalid_utf8',
  'message_too_large',
  'write_error',
  'slow_consumer',
  'too_many_fragments',
  'too_many_buffered_chunks',
  'invalid_compressed_data',
  'ping_timeout',
  'idle_timeout',
  'max_lifetime',
] as const;
export type DisconnectReason = (typeof DISCONNECT_REASONS)[number];

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
] as const;
export type RejectReason = (typeof REJECT_REASONS)[number];

/** Why a message addressed to a client was not written to it. A bounded set: these become metric labels. */
export const DROP_REASONS = ['slow_consumer'] as const;
export type DropReason = (typeof DROP_REASONS)[number];

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
  readonly serverDisconnects: Record<DisconnectReason, number> = zeroes(DISCONNECT_REASONS);
  readonly messagesDropped: Record<DropReason, number> = zeroes(DROP_REASONS);
  readonly upgradesRejected: Record<RejectReason, number> = zeroes(REJECT_REASONS);
  /**
   * Called with each ping round trip in seconds. metrics/ points it at its histogram
   * (a no-op when metrics are disabled): a pong arrives at most once per connection
   * per ping interval, so this is off the message path.
   */
  observePingRtt: (seconds: number) => void = ignoreSample;
  readonly tlsHandshakeFailures: Record<TlsHandshakeFailureReason, number> = zeroes(
    TLS_HANDSHAKE_FAILURE_REASONS,
  );
  readonly tlsReloads: Record<TlsReloadResult, number> = zeroes(TLS_RELOAD_RESULTS);
}

function ignoreSample(_seconds: number): void {}
