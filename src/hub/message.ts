/**
 * One message on its way out to one or more peers. The hub creates it once per
 * message; the transport frames it on first delivery and caches the wire bytes
 * in `wire`, so a broadcast is framed once and the same buffers are written to
 * every receiver (issue 3). The hub never reads `wire` or `deflated`: framing is transport's.
 */
export class OutboundMessage {
  /** The framed bytes (header, payload), filled by the transport on first delivery. */
  wire: readonly Buffer[] | undefined = undefined;
  /**
   * The permessage-deflate frame (RSV1), compressed once for every receiver that
   * negotiated the server window `deflatedBits` (RFC 7692 §7.1.1.1: without
   * context takeover a compressed message is the same bytes for each of them).
   */
  deflated: readonly Buffer[] | undefined = undefined;
  deflatedBits = 0;
  /** Frames for further window sizes (a client asked for a smaller window than the server's). */
  moreDeflated: Map<number, readonly Buffer[]> | undefined = undefined;

  constructor(
    readonly data: Buffer,
    readonly isBinary: boolean,
    /**
     * Whether the message fans out to many receivers (a broadcast): then it is
     * compressed once, in the event loop, for all receivers that negotiated
     * compression, instead of once per receiver in ws's zlib pool (issue 5).
     */
    readonly fanOut = false,
  ) {}
}
