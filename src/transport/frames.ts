import type { OutboundMessage } from '../hub/message.js';

/**
 * Server frames as RFC 6455 §5.2 lays them out: FIN, RSV1 (RFC 7692 §6: "Per-Message
 * Compressed"), the opcode, a 7-, 16- or 64-bit payload length, never a mask (§5.1).
 * wshub frames everything it sends itself (issue 14: ws's Sender is not used).
 */
export const OPCODE_TEXT = 0x1;
export const OPCODE_BINARY = 0x2;
export const OPCODE_CLOSE = 0x8;
export const OPCODE_PING = 0x9;
export const OPCODE_PONG = 0xa;

/** Up to this payload size a frame is one buffer (header + payload copied once per message). */
const SINGLE_BUFFER_MAX = 4096;
/** §5.5: a control frame's payload is at most 125 bytes; a close frame's is a 2-byte code and the text. */
const MAX_CLOSE_TEXT = 123;

/** A ping without payload: the same bytes for every connection, never written to. */
export const PING_FRAME: Buffer = Buffer.from([0x80 | OPCODE_PING, 0]);

/** The frame header of a final frame of `length` payload bytes. */
function header(opcode: number, compressed: boolean, length: number, extra: number): Buffer {
  const size = length < 126 ? 2 : length < 0x10000 ? 4 : 10;
  const bytes = Buffer.allocUnsafe(size + extra);
  bytes[0] = 0x80 | (compressed ? 0x40 : 0) | opcode;
  if (size === 2) {
    bytes[1] = length;
  } else if (size === 4) {
    bytes[1] = 126;
    bytes.writeUInt16BE(length, 2);
  } else {
    bytes[1] = 127;
    // §5.2: the most significant bit is 0; lengths here are far below 2^53.
    bytes.writeUInt32BE(Math.floor(length / 0x100000000), 2);
    bytes.writeUInt32BE(length >>> 0, 6);
  }
  return bytes;
}

/**
 * One final frame of `payload`: [header + payload] for small payloads (one buffer), or
 * [header, payload] for large ones (no copy of the payload).
 */
export function framePayload(payload: Buffer, opcode: number, compressed: boolean): readonly Buffer[] {
  const length = payload.length;
  if (length > SINGLE_BUFFER_MAX) return [header(opcode, compressed, length, 0), payload];
  const frame = header(opcode, compressed, length, length);
  payload.copy(frame, frame.length - length);
  return [frame];
}

/** The wire bytes of a message as one unfragmented, uncompressed frame. */
export function frameMessage(message: OutboundMessage): readonly Buffer[] {
  return framePayload(message.data, message.isBinary ? OPCODE_BINARY : OPCODE_TEXT, false);
}

/** A pong echoing a ping's application data (§5.5.3; at most 125 bytes, as the receiver checked). */
export function pongFrame(data: Buffer): Buffer {
  const frame = header(OPCODE_PONG, false, data.length, data.length);
  data.copy(frame, 2);
  return frame;
}

/**
 * A close frame (§5.5.1): no body without a code, else the code and the text in UTF-8,
 * cut at a character boundary to fit 123 bytes.
 */
export function closeFrame(code: number | undefined, text: string): Buffer {
  if (code === undefined) return Buffer.from([0x80 | OPCODE_CLOSE, 0]);
  let reason = Buffer.from(text, 'utf8');
  if (reason.length > MAX_CLOSE_TEXT) {
    let end = MAX_CLOSE_TEXT;
    // Back up to the first byte of a UTF-8 sequence (continuation bytes are 10xxxxxx).
    while (end > 0 && ((reason[end] as number) & 0xc0) === 0x80) end--;
    reason = reason.subarray(0, end);
  }
  const frame = header(OPCODE_CLOSE, false, 2 + reason.length, 2 + reason.length);
  frame.writeUInt16BE(code, 2);
  reason.copy(frame, 4);
  return frame;
}
