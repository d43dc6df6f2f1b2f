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
] as const;
export type DisconnectReason = (typeof DISCONNECT_REASONS)[number];

/** Why a message addressed to a client was not written to it. A bounded set: these become metric labels. */
export const DROP_REASONS = ['slow_consumer'] as const;
export type DropReason = (typeof DROP_REASONS)[number];

const zeroes = <K extends string>(keys: readonly K[]): Record<K, number> =>
  Object.fromEntries(keys.map((key) => [key, 0])) as Record<K, number>;

export class Stats {
  connectionsTotal = 0;
  disconnectionsTotal = 0;
  messagesReceived = 0;
  bytesReceived = 0;
  /** Messages written to clients: one per receiver (a broadcast to 10 clients counts 10). */
  messagesDelivered = 0;
  /** Payload bytes of the messages written to clients (framing excluded, like bytesReceived). */
  bytesSent = 0;
  readonly serverDisconnects: Record<DisconnectReason, number> = zeroes(DISCONNECT_REASONS);
  readonly messagesDropped: Record<DropReason, number> = zeroes(DROP_REASONS);
}
