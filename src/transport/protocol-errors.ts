import type { DisconnectReason } from '../disconnects.js';

/**
 * ws error codes (lib/receiver.js, lib/permessage-deflate.js) mapped to why the
 * connection ended; the catalogue (src/disconnects.ts) pairs each reason with the close
 * code ws itself would send (RFC 6455 §7.4.1): 1009 for size, 1007 for invalid UTF-8 and
 * undecompressable data, 1008 for the fragment and chunk counts, 1002 for every other
 * protocol error.
 */
const WS_ERROR_REASONS: Readonly<Record<string, DisconnectReason>> = {
  WS_ERR_UNSUPPORTED_MESSAGE_LENGTH: 'message_too_large',
  WS_ERR_UNSUPPORTED_DATA_PAYLOAD_LENGTH: 'message_too_large',
  WS_ERR_INVALID_UTF8: 'invalid_utf8',
};

export function disconnectReasonOf(error: Error & { code?: string }): DisconnectReason {
  const code = error.code ?? '';
  const known = WS_ERROR_REASONS[code];
  if (known !== undefined) return known;
  // ws reports both count limits with one code; its messages tell them apart
  // (test/limits.test.ts fails if a ws upgrade changes them).
  if (code === 'WS_ERR_TOO_MANY_BUFFERED_PARTS') {
    return /chunks/i.test(error.message) ? 'too_many_buffered_chunks' : 'too_many_fragments';
  }
  // zlib's own codes (Z_DATA_ERROR, Z_BUF_ERROR, ...): the compressed payload is corrupt.
  if (code.startsWith('Z_')) return 'invalid_compressed_data';
  return 'protocol_error';
}
