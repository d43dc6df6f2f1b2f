import { isUtf8 } from 'node:buffer';

/**
 * The envelope a broadcast travels in between nodes (issue 6): compact,
 * binary, and enough for the receiver to ignore its own messages, notice
 * gaps, keep the text/binary type and the room, and measure latency.
 *
 *   offset  size  field
 *   0       1     version (1)
 *   1       1     flags: bit 0 = binary message; other bits must be 0
 *   2       8     node id (random per process start)
 *   10      8     sequence: per node and room, +1 per message, unsigned big-endian (≤ 2^53-1)
 *   18      8     sent at: ms since the Unix epoch, float64 big-endian (publisher's clock)
 *   26      2     room length in bytes, unsigned big-endian
 *   28      n     room, UTF-8
 *   28+n    rest  payload, unchanged
 */
export const ENVELOPE_VERSION = 1;
export const NODE_ID_BYTES = 8;
export const ENVELOPE_HEADER_BYTES = 28;
export const MAX_ROOM_BYTES = 0xffff;

const FLAG_BINARY = 0x01;
const KNOWN_FLAGS = FLAG_BINARY;
const OFFSET_FLAGS = 1;
const OFFSET_NODE_ID = 2;
const OFFSET_SEQUENCE = 10;
const OFFSET_SENT_AT = 18;
const OFFSET_ROOM_LENGTH = 26;
const TWO_TO_32 = 2 ** 32;

export interface Envelope {
  /** NODE_ID_BYTES bytes. */
  readonly nodeId: Buffer;
  readonly sequence: number;
  /** Milliseconds since the Unix epoch, fractional. */
  readonly sentAt: number;
  readonly isBinary: boolean;
  readonly room: string;
  readonly payload: Buffer;
}

export type DecodeResult =
  | { readonly ok: true; readonly envelope: Envelope }
  | { readonly ok: false; readonly error: string };

/** One allocation and one copy of the payload. Throws RangeError on values the format cannot carry (a bug, not input). */
export function encodeEnvelope(envelope: Envelope): Buffer {
  const { nodeId, sequence, room, payload } = envelope;
  if (nodeId.length !== NODE_ID_BYTES) throw new RangeError(`node id must be ${NODE_ID_BYTES} bytes`);
  if (!Number.isSafeInteger(sequence) || sequence < 0) {
    throw new RangeError(`sequence must be a safe non-negative integer, not ${sequence}`);
  }
  const roomBytes = Buffer.byteLength(room, 'utf8');
  if (roomBytes > MAX_ROOM_BYTES)
    throw new RangeError(`room is ${roomBytes} bytes; at most ${MAX_ROOM_BYTES}`);
  const buffer = Buffer.allocUnsafe(ENVELOPE_HEADER_BYTES + roomBytes + payload.length);
  buffer[0] = ENVELOPE_VERSION;
  buffer[OFFSET_FLAGS] = envelope.isBinary ? FLAG_BINARY : 0;
  nodeId.copy(buffer, OFFSET_NODE_ID);
  buffer.writeUInt32BE(Math.floor(sequence / TWO_TO_32), OFFSET_SEQUENCE);
  buffer.writeUInt32BE(sequence % TWO_TO_32, OFFSET_SEQUENCE + 4);
  buffer.writeDoubleBE(envelope.sentAt, OFFSET_SENT_AT);
  buffer.writeUInt16BE(roomBytes, OFFSET_ROOM_LENGTH);
  if (roomBytes > 0) buffer.write(room, ENVELOPE_HEADER_BYTES, 'utf8');
  payload.copy(buffer, ENVELOPE_HEADER_BYTES + roomBytes);
  return buffer;
}

/**
 * Never throws: a backplane channel is shared infrastructure and anyone with
 * access can publish garbage on it. The payload is a view into `buffer`.
 */
export function decodeEnvelope(buffer: Buffer): DecodeResult {
  if (buffer.length < ENVELOPE_HEADER_BYTES) {
    return {
      ok: false,
      error: `${buffer.length} bytes is shorter than the ${ENVELOPE_HEADER_BYTES}-byte header`,
    };
  }
  if (buffer[0] !== ENVELOPE_VERSION) {
    return { ok: false, error: `unsupported envelope version ${buffer[0]}` };
  }
  const flags = buffer[OFFSET_FLAGS] as number;
  if ((flags & ~KNOWN_FLAGS) !== 0) return { ok: false, error: `unknown flags 0x${flags.toString(16)}` };
  const high = buffer.readUInt32BE(OFFSET_SEQUENCE);
  const sequence = high * TWO_TO_32 + buffer.readUInt32BE(OFFSET_SEQUENCE + 4);
  if (!Number.isSafeInteger(sequence)) return { ok: false, error: 'sequence above 2^53-1' };
  const sentAt = buffer.readDoubleBE(OFFSET_SENT_AT);
  if (!Number.isFinite(sentAt)) return { ok: false, error: 'sent-at time is not a finite number' };
  const roomBytes = buffer.readUInt16BE(OFFSET_ROOM_LENGTH);
  const payloadStart = ENVELOPE_HEADER_BYTES + roomBytes;
  if (payloadStart > buffer.length) {
    return {
      ok: false,
      error: `room length ${roomBytes} runs past the end of the ${buffer.length}-byte envelope`,
    };
  }
  const roomView = buffer.subarray(ENVELOPE_HEADER_BYTES, payloadStart);
  if (!isUtf8(roomView)) return { ok: false, error: 'room is not valid UTF-8' };
  return {
    ok: true,
    envelope: {
      nodeId: buffer.subarray(OFFSET_NODE_ID, OFFSET_NODE_ID + NODE_ID_BYTES),
      sequence,
      sentAt,
      isBinary: (flags & FLAG_BINARY) !== 0,
      room: roomView.toString('utf8'),
      payload: buffer.subarray(payloadStart),
    },
  };
}

/** True when the envelope in `buffer` (already decoded or not) was sent by `nodeId`; cheap, no allocation. */
export function isFromNode(buffer: Buffer, nodeId: Buffer): boolean {
  return (
    buffer.length >= ENVELOPE_HEADER_BYTES &&
    buffer[0] === ENVELOPE_VERSION &&
    buffer.compare(nodeId, 0, NODE_ID_BYTES, OFFSET_NODE_ID, OFFSET_NODE_ID + NODE_ID_BYTES) === 0
  );
}
