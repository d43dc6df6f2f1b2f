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
] as const;
export type DisconnectReason = (typeof DISCONNECT_REASONS)[number];

export class Stats {
  connectionsTotal = 0;
  disconnectionsTotal = 0;
  messagesReceived = 0;
  bytesReceived = 0;
  readonly serverDisconnects: Record<DisconnectReason, number> = Object.fromEntries(
    DISCONNECT_REASONS.map((reason) => [reason, 0]),
  ) as Record<DisconnectReason, number>;
}
