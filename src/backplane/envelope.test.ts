import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  decodeEnvelope,
  ENVELOPE_HEADER_BYTES,
  type Envelope,
  encodeEnvelope,
  isFromNode,
  MAX_ROOM_BYTES,
} from './envelope.js';

const nodeId = Buffer.from('0123456789abcdef', 'hex');

function sample(overrides: Partial<Envelope> = {}): Envelope {
  return {
    nodeId,
    sequence: 42,
    sentAt: 1_700_000_000_123.25,
    isBinary: false,
    room: 'lobby',
    payload: Buffer.from('hello'),
    ...overrides,
  };
}

function decoded(buffer: Buffer): Envelope {
  const result = decodeEnvelope(buffer);
  if (!result.ok) assert.fail(`decode failed: ${result.error}`);
  return result.envelope;
}

describe('envelope', () => {
  it('round-trips every field', () => {
    const original = sample();
    const envelope = decoded(encodeEnvelope(original));
    assert.deepEqual(envelope.nodeId, original.nodeId);
    assert.equal(envelope.sequence, 42);
    assert.equal(envelope.sentAt, original.sentAt);
    assert.equal(envelope.isBinary, false);
    assert.equal(envelope.room, 'lobby');
    assert.deepEqual(envelope.payload, Buffer.from('hello'));
  });

  it('keeps the binary flag, an empty room, an empty payload and arbitrary bytes', () => {
    const bytes = Buffer.from([0, 255, 0x80, 0xc3, 0x28]);
    const binary = decoded(encodeEnvelope(sample({ isBinary: true, room: '', payload: bytes })));
    assert.equal(binary.isBinary, true);
    assert.equal(binary.room, '');
    assert.deepEqual(binary.payload, bytes);
    assert.equal(decoded(encodeEnvelope(sample({ payload: Buffer.alloc(0) }))).payload.length, 0);
  });

  it('carries multi-byte UTF-8 room names and the largest room', () => {
    assert.equal(decoded(encodeEnvelope(sample({ room: 'zürich/東京/🚀' }))).room, 'zürich/東京/🚀');
    const longest = 'r'.repeat(MAX_ROOM_BYTES);
    assert.equal(decoded(encodeEnvelope(sample({ room: longest }))).room, longest);
    assert.throws(() => encodeEnvelope(sample({ room: `${longest}r` })), RangeError);
  });

  it('carries sequences above 2^32 up to 2^53-1 and refuses others', () => {
    for (const sequence of [0, 2 ** 32 - 1, 2 ** 32, 2 ** 32 + 7, Number.MAX_SAFE_INTEGER]) {
      assert.equal(decoded(encodeEnvelope(sample({ sequence }))).sequence, sequence);
    }
    assert.throws(() => encodeEnvelope(sample({ sequence: -1 })), RangeError);
    assert.throws(() => encodeEnvelope(sample({ sequence: 1.5 })), RangeError);
    assert.throws(() => encodeEnvelope(sample({ nodeId: Buffer.alloc(4) })), RangeError);
  });

  it('is compact: a 28-byte header plus room plus payload', () => {
    assert.equal(encodeEnvelope(sample()).length, ENVELOPE_HEADER_BYTES + 5 + 5);
  });

  it('tells its sender from the raw bytes', () => {
    const buffer = encodeEnvelope(sample());
    assert.equal(isFromNode(buffer, nodeId), true);
    assert.equal(isFromNode(buffer, Buffer.alloc(8)), false);
    assert.equal(isFromNode(buffer.subarray(0, 9), nodeId), false);
  });

  describe('rejects malformed input without throwing', () => {
    const valid = encodeEnvelope(sample());
    const mutate = (change: (buffer: Buffer) => void): Buffer => {
      const copy = Buffer.from(valid);
      change(copy);
      return copy;
    };
    const cases: Array<[string, Buffer, RegExp]> = [
      ['empty input', Buffer.alloc(0), /shorter than/],
      ['a truncated header', valid.subarray(0, ENVELOPE_HEADER_BYTES - 1), /shorter than/],
      ['another version', mutate((b) => (b[0] = 2)), /version 2/],
      ['version 0', mutate((b) => (b[0] = 0)), /version 0/],
      ['unknown flags', mutate((b) => (b[1] = 0x03)), /unknown flags 0x3/],
      ['a sequence above 2^53', mutate((b) => b.writeUInt32BE(0x00200000, 10)), /sequence/],
      ['a NaN timestamp', mutate((b) => b.writeDoubleBE(Number.NaN, 18)), /finite/],
      ['an infinite timestamp', mutate((b) => b.writeDoubleBE(Number.POSITIVE_INFINITY, 18)), /finite/],
      ['a room longer than the envelope', mutate((b) => b.writeUInt16BE(11, 26)), /runs past the end/],
      ['a room that is not UTF-8', mutate((b) => b.write('\xff\xfe', 28, 'latin1')), /UTF-8/],
      ['a JSON string', Buffer.from('{"room":"lobby","data":"hello world"}'), /version 123/],
    ];
    for (const [name, input, error] of cases) {
      it(name, () => {
        const result = decodeEnvelope(input);
        assert.equal(result.ok, false);
        if (!result.ok) assert.match(result.error, error);
      });
    }

    it('survives every truncation and random bytes', () => {
      for (let length = 0; length < valid.length; length++) {
        const result = decodeEnvelope(valid.subarray(0, length));
        // Cutting into the payload still decodes (the payload is the rest); cutting the header or room does not.
        assert.equal(result.ok, length >= ENVELOPE_HEADER_BYTES + 5, `length ${length}`);
      }
      let seed = 7;
      const random = (): number => {
        seed = (seed * 1103515245 + 12345) & 0x7fffffff;
        return seed;
      };
      for (let round = 0; round < 2000; round++) {
        const input = Buffer.alloc(random() % 64);
        for (let i = 0; i < input.length; i++) input[i] = random() & 0xff;
        if (round % 2 === 0 && input.length > 0) input[0] = 1;
        decodeEnvelope(input);
      }
    });
  });
});
