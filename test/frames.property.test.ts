import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { clientFrame } from './helpers/clients.js';
import { parseFrame } from './helpers/frames.js';

// The raw-socket tests are only as good as the frames they build and parse.
describe('test frame builder and parser (property)', () => {
  it('parse(clientFrame(...)) gives back opcode, FIN, RSV, the mask bit and the payload, across all length encodings', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 15 }),
        fc.boolean(),
        fc.constantFrom(0, 0x40, 0x20, 0x10, 0x70),
        fc.oneof(fc.uint8Array({ maxLength: 125 }), fc.uint8Array({ minLength: 126, maxLength: 70_000 })),
        fc.uint8Array({ maxLength: 10 }),
        (opcode, fin, rsv, payload, trailing) => {
          const frame = clientFrame(opcode, Buffer.from(payload), { fin, rsv });
          const parsed = parseFrame(Buffer.concat([frame, Buffer.from(trailing)]));
          assert.ok(parsed);
          assert.equal(parsed.length, frame.length);
          assert.deepEqual(
            [parsed.frame.opcode, parsed.frame.fin, parsed.frame.rsv, parsed.frame.masked],
            [opcode, fin, rsv, true],
          );
          assert.ok(parsed.frame.payload.equals(Buffer.from(payload)));
          // Any proper prefix is an incomplete frame, never a wrong one.
          assert.equal(parseFrame(frame.subarray(0, frame.length - 1)), undefined);
        },
      ),
      { numRuns: 200 },
    );
  });
});
