import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { AUTO_MIN_PIECES, autoPieces, receiveLimits } from './receive-limits.js';

const MiB = 1024 * 1024;

describe('receive limits (property)', () => {
  it("'auto' lets every message up to the size limit through in fragments of 512 bytes or more", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 256 * MiB }),
        fc.integer({ min: 512, max: 64 * 1024 }),
        (limit, piece) => {
          const { maxFragments, maxBufferedChunks, maxPayload } = receiveLimits({
            maxMessageSize: limit,
            maxFragments: 'auto',
            maxBufferedChunks: 'auto',
          });
          assert.equal(maxPayload, limit);
          assert.ok(Math.ceil(limit / piece) <= maxFragments);
          assert.ok(Math.ceil(limit / piece) <= maxBufferedChunks);
        },
      ),
      { numRuns: 500 },
    );
  });

  it("'auto' is never below the floor, grows with the limit, and stays within one piece per 512 bytes", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 256 * MiB }), fc.integer({ min: 1, max: 256 * MiB }), (a, b) => {
        const [small, large] = a <= b ? [a, b] : [b, a];
        assert.ok(autoPieces(small) >= AUTO_MIN_PIECES);
        assert.ok(autoPieces(small) <= autoPieces(large));
        assert.ok(autoPieces(large) <= Math.max(AUTO_MIN_PIECES, large / 512 + 1));
      }),
      { numRuns: 500 },
    );
  });

  it('explicit values are used as given', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 1e7 }), fc.integer({ min: 1, max: 1e7 }), (fragments, chunks) => {
        const limits = receiveLimits({
          maxMessageSize: MiB,
          maxFragments: fragments,
          maxBufferedChunks: chunks,
        });
        return limits.maxFragments === fragments && limits.maxBufferedChunks === chunks;
      }),
    );
  });

  it('the default 1 MiB limit allows 2048 of each', () => {
    assert.equal(autoPieces(MiB), 2048);
  });
});
