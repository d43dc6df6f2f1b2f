/**
 * One message on its way out to one or more peers. The hub creates it once per
 * message; the transport frames it on first delivery and caches the wire bytes
 * in `wire`, so a broadcast is framed once and the same buffers are written to
 * every receiver (issue 3). The hub never reads `wire`: framing is transport's.
 */
export class OutboundMessage {
  /** The framed bytes (header, payload), filled by the transport on first delivery. */
  wire: readonly Buffer[] | undefined = undefined;

  constructor(
    readonly data: Buffer,
    readonly isBinary: boolean,
  ) {}
}
