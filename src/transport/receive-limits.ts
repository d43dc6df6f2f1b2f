/**
 * Limits on what ws's receiver may hold for one connection. ws bounds the bytes
 * of a message (maxPayload) but keeps a message's fragments and a frame's
 * pending network reads as arrays of Buffers; each element that arrived in its
 * own read costs about 1 KiB of RSS (measured on Node 20), so a client sending
 * a message as thousands of 1-byte (or empty) frames, or trickling a frame one
 * byte per TCP segment, would hold far more memory than the byte limit says.
 * These counts bound that; 'auto' scales them with the message size limit.
 */
export interface ReceiveLimits {
  readonly maxPayload: number;
  readonly maxFragments: number;
  readonly maxBufferedChunks: number;
}

/**
 * 'auto' allows one fragment (or read) per this many bytes of the size limit: a
 * legitimate message up to --max-message-size sent in 512-byte fragments, or
 * arriving in segments as small as the IPv4 minimum MSS (536 bytes), passes.
 */
export const AUTO_BYTES_PER_PIECE = 512;
/** ...and never fewer than this, so small size limits still allow ordinary fragmentation. */
export const AUTO_MIN_PIECES = 1024;

export function autoPieces(maxMessageSize: number): number {
  return Math.max(AUTO_MIN_PIECES, Math.ceil(maxMessageSize / AUTO_BYTES_PER_PIECE));
}

export function receiveLimits(settings: {
  readonly maxMessageSize: number;
  readonly maxFragments: number | 'auto';
  readonly maxBufferedChunks: number | 'auto';
}): ReceiveLimits {
  const auto = autoPieces(settings.maxMessageSize);
  return {
    maxPayload: settings.maxMessageSize,
    maxFragments: settings.maxFragments === 'auto' ? auto : settings.maxFragments,
    maxBufferedChunks: settings.maxBufferedChunks === 'auto' ? auto : settings.maxBufferedChunks,
  };
}
