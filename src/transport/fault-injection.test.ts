import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isSendableCloseCode, parseFaultQuery } from './fault-injection.js';

const plan = (url: string) => {
  const parsed = parseFaultQuery(url);
  assert.ok(parsed.ok, parsed.ok ? '' : parsed.detail);
  return parsed.plan;
};
const error = (url: string) => {
  const parsed = parseFaultQuery(url);
  assert.equal(parsed.ok, false, `${url} should be refused`);
  return parsed.ok ? '' : parsed.detail;
};

describe('fault injection query', () => {
  it('is absent without a query or without any known knob', () => {
    assert.equal(plan('/ws'), undefined);
    assert.equal(plan('/ws?token=abc&v=2'), undefined);
  });

  it('reads every knob', () => {
    assert.deepEqual(plan('/ws?delay=200ms'), {
      delayMs: 200,
      close: undefined,
      drop: false,
      immediately: false,
      hello: false,
    });
    assert.deepEqual(plan('/ws/room?close=4000&reason=bye&hello&x=1'), {
      delayMs: 0,
      close: { code: 4000, reason: 'bye' },
      drop: false,
      immediately: false,
      hello: true,
    });
    assert.deepEqual(plan('/ws?close=1000&immediately')?.immediately, true);
    assert.deepEqual(plan('/ws?drop&immediately'), {
      delayMs: 0,
      close: undefined,
      drop: true,
      immediately: true,
      hello: false,
    });
    assert.equal(plan('/ws?delay=10s')?.delayMs, 10_000);
    assert.equal(plan('/ws?close=4999')?.close?.reason, '');
  });

  it('refuses values out of bounds, with what is allowed', () => {
    assert.match(error('/ws?delay=11s'), /delay must be a duration from 0 to 10s/);
    assert.match(error('/ws?delay=200'), /delay/);
    assert.match(error('/ws?delay=-1s'), /delay/);
    for (const code of ['1001', '1006', '2999', '5000', '4000.5', 'abc', '']) {
      assert.match(error(`/ws?close=${code}`), /close must be 1000 or a code from 3000 to 4999/, code);
    }
    assert.match(error(`/ws?close=4000&reason=${'x'.repeat(124)}`), /at most 123 bytes/);
    assert.match(error('/ws?reason=bye'), /reason needs close/);
    assert.match(error('/ws?close=4000&drop'), /cannot be combined/);
    assert.match(error('/ws?immediately'), /immediately needs/);
    assert.match(error('/ws?drop&immediately&delay=1s'), /no effect/);
  });

  it('allows only the close codes an application may send (RFC 6455 §7.4)', () => {
    assert.deepEqual([999, 1000, 1001, 1005, 1015, 2999, 3000, 4999, 5000].map(isSendableCloseCode), [
      false,
      true,
      false,
      false,
      false,
      false,
      true,
      true,
      false,
    ]);
  });
});
