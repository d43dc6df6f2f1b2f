/**
 * Every way the server ends a client connection, in one catalogue (issue 14; modelled on
 * centrifuge's `Disconnect` values): the close code the client gets (RFC 6455 §7.4.1;
 * undefined: the TCP connection is cut without a close frame, the client sees 1006), the
 * reason label it is counted and logged under (`websocket_server_disconnects_total{reason}`,
 * a bounded list: never a client-chosen value), and the close frame's text. Call sites
 * name an entry (`connection.disconnect(DISCONNECT.slow_consumer)`), so a code, its label
 * and its text cannot drift apart.
 *
 * Adding a way to disconnect is one line here: the label list below is derived from it.
 * Close texts are at most 123 bytes (§5.5: a control frame's payload is at most 125).
 */
export const DISCONNECTS = {
  shutdown: { code: 1001, text: 'server shutting down' },
  shutdown_timeout: { code: undefined, text: '' },
  // Protocol errors found by ws's receiver: the code is the one ws chose (lib/receiver.js);
  // ws sends it without a text, and so does wshub (the wire is unchanged by the catalogue).
  protocol_error: { code: 1002, text: '' },
  invalid_utf8: { code: 1007, text: '' },
  message_too_large: { code: 1009, text: '' },
  too_many_fragments: { code: 1008, text: '' },
  too_many_buffered_chunks: { code: 1008, text: '' },
  invalid_compressed_data: { code: 1007, text: '' },
  write_error: { code: undefined, text: '' },
  slow_consumer: { code: 1008, text: 'slow consumer: outbound buffer limit exceeded' },
  ping_timeout: { code: undefined, text: '' },
  idle_timeout: { code: 1000, text: 'idle timeout' },
  max_lifetime: { code: 1001, text: 'connection lifetime reached, please reconnect' },
  // ?close=<code>&reason=<text> chooses its own code and text (see FaultPlan); ?drop cuts.
  fault_injection: { code: 1008, text: 'too much waiting on ?delay' },
  // Issue 15: the access policy (RFC 6455 §7.4.1: 1008, a message that violates the server's policy).
  publish_denied: { code: 1008, text: 'not allowed to publish to this room' },
  rate_limited: { code: 1008, text: 'message rate limit exceeded' },
  token_expired: { code: 1008, text: 'token expired' },
} as const satisfies Readonly<Record<string, { readonly code: number | undefined; readonly text: string }>>;

export type DisconnectReason = keyof typeof DISCONNECTS;

/** One catalogue entry with its label. */
export interface Disconnect {
  readonly reason: DisconnectReason;
  /** The close code, or undefined: no close frame, the TCP connection is cut. */
  readonly code: number | undefined;
  readonly text: string;
}

/** The bounded list of reason labels, in catalogue order. */
export const DISCONNECT_REASONS = Object.keys(DISCONNECTS) as DisconnectReason[];

/** Each catalogue entry with its label, built once: `DISCONNECT.slow_consumer`. */
export const DISCONNECT = Object.freeze(
  Object.fromEntries(
    DISCONNECT_REASONS.map((reason) => [reason, Object.freeze({ reason, ...DISCONNECTS[reason] })]),
  ),
) as { readonly [R in DisconnectReason]: Disconnect & { readonly reason: R } };
