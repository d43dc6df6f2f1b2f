import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { constants, inflateRawSync } from 'node:zlib';
import fc from 'fast-check';
import { deflateMessage, offeredServerWindowBits, validDeflateOffers } from './compression.js';

describe('validDeflateOffers', () => {
  it('keeps valid offers, canonically, in order', () => {
    assert.equal(
      validDeflateOffers(
        'permessage-deflate; client_max_window_bits=16, permessage-deflate;client_max_window_bits',
      ),
      'permessage-deflate; client_max_window_bits',
    );
    assert.equal(
      validDeflateOffers(
        'permessage-deflate; server_max_window_bits="10"; server_no_context_takeover, x-foo',
      ),
      'permessage-deflate; server_max_window_bits=10; server_no_context_takeover',
    );
    assert.equal(validDeflateOffers('x-webkit-deflate-frame'), undefined);
    assert.equal(validDeflateOffers('permessage-deflate; server_max_window_bits'), undefined);
  });

  it('(property) whatever the header, the result is undefined or only valid permessage-deflate offers', () => {
    const param = fc.constantFrom(
      'client_max_window_bits',
      'client_max_window_bits=8',
      'client_max_window_bits=15',
      'client_max_window_bits=16',
      'server_max_window_bits=9',
      'server_max_window_bits=7',
      'server_max_window_bits',
      'server_no_context_takeover',
      'client_no_context_takeover',
      'client_no_context_takeover=x',
      'foo',
      '',
      '=',
    );
    const offer = fc.tuple(
      fc.constantFrom('permessage-deflate', 'PerMessage-Deflate', 'x-other'),
      fc.array(param, { maxLength: 4 }),
    );
    fc.assert(
      fc.property(
        fc.array(offer, { minLength: 1, maxLength: 4 }),
        fc.string({ maxLength: 10 }),
        (offers, noise) => {
          const header = offers.map(([name, params]) => [name, ...params].join('; ')).join(', ') + noise;
          const result = validDeflateOffers(header);
          if (result === undefined) return;
          for (const kept of result.split(', ')) {
            const [name, ...params] = kept.split('; ');
            assert.equal(name, 'permessage-deflate');
            const keys = params.map((p) => p.split('=')[0]);
            assert.equal(new Set(keys).size, keys.length, kept);
            for (const p of params) {
              assert.match(
                p,
                /^(?:(?:server|client)_no_context_takeover|server_max_window_bits=(?:8|9|1[0-5])|client_max_window_bits(?:=(?:8|9|1[0-5]))?)$/,
                kept,
              );
            }
          }
          // Idempotent: cleaning a clean header changes nothing.
          assert.equal(validDeflateOffers(result), result);
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe('offeredServerWindowBits', () => {
  it('finds the smallest server window asked for', () => {
    assert.equal(offeredServerWindowBits(undefined), undefined);
    assert.equal(offeredServerWindowBits('permessage-deflate'), undefined);
    assert.equal(
      offeredServerWindowBits(
        'permessage-deflate; server_max_window_bits=10, permessage-deflate; server_max_window_bits=9',
      ),
      9,
    );
  });
});

describe('deflateMessage', () => {
  it('inflates back to the message once 00 00 ff ff is appended (RFC 7692 §7.2.2)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 5000 }), fc.integer({ min: 9, max: 15 }), (bytes, bits) => {
        const data = Buffer.from(bytes);
        const compressed = deflateMessage(data, bits, { memLevel: 6 });
        const inflated = inflateRawSync(Buffer.concat([compressed, Buffer.from([0, 0, 0xff, 0xff])]), {
          finishFlush: constants.Z_SYNC_FLUSH,
          windowBits: bits,
        });
        assert.ok(inflated.equals(data));
      }),
      { numRuns: 100 },
    );
  });
});
