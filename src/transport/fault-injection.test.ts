import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { describe, it } from 'node:test';
import { describeRequest, isSendableCloseCode, parseFaultQuery, redactTarget } from './fault-injection.js';

const NONE = { status: undefined, closeAfter: undefined, closeInMs: undefined, ignorePings: false };
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
      ...NONE,
    });
    assert.deepEqual(plan('/ws/room?close=4000&reason=bye&hello&x=1'), {
      delayMs: 0,
      close: { code: 4000, reason: 'bye' },
      drop: false,
      immediately: false,
      hello: true,
      ...NONE,
    });
    assert.deepEqual(plan('/ws?close=1000&immediately')?.immediately, true);
    assert.deepEqual(plan('/ws?drop&immediately'), {
      delayMs: 0,
      close: undefined,
      drop: true,
      immediately: true,
      hello: false,
      ...NONE,
    });
    assert.equal(plan('/ws?delay=10s')?.delayMs, 10_000);
    assert.equal(plan('/ws?close=4999')?.close?.reason, '');
  });

  it('refuses values out of bounds, with what is allowed', () => {
    assert.match(error('/ws?delay=11s'), /delay must be a duration from 0 to 10s/);
    assert.match(error('/ws?delay=200'), /delay/);
    assert.match(error('/ws?delay=-1s'), /delay/);
    for (const code of ['1004', '1005', '1006', '1015', '2999', '5000', '4000.5', 'abc', '']) {
      assert.match(
        error(`/ws?close=${code}`),
        /close must be a code a server may send: 1000-1003, 1007-1014 or 3000-4999/,
        code,
      );
    }
    assert.match(error(`/ws?close=4000&reason=${'x'.repeat(124)}`), /at most 123 bytes/);
    assert.match(error('/ws?reason=bye'), /reason needs close=CODE, close-after=N or close-in=DURATION/);
    assert.match(error('/ws?close=4000&drop'), /cannot be combined/);
    assert.match(error('/ws?immediately'), /immediately needs/);
    assert.match(error('/ws?drop&immediately&delay=1s'), /no effect/);
  });

  it('allows only the close codes an endpoint may send (RFC 6455 §7.4)', () => {
    const sendable = [];
    for (let code = 0; code < 6000; code++) if (isSendableCloseCode(code)) sendable.push(code);
    assert.deepEqual(
      sendable.slice(0, 15),
      [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3001, 3002],
    );
    assert.equal(sendable.length, 12 + 2000);
    assert.equal(sendable.at(-1), 4999);
  });

  it('reads ?status, ?retry-after, ?close-after, ?close-in and ?ignore-pings (issue 17)', () => {
    assert.deepEqual(plan('/ws?status=503&retry-after=7')?.status, { code: 503, retryAfter: 7 });
    assert.deepEqual(plan('/ws?status=418')?.status, { code: 418, retryAfter: undefined });
    assert.equal(plan('/ws?status=599&retry-after=86400')?.status?.retryAfter, 86_400);
    assert.deepEqual(plan('/ws?close-after=3'), {
      ...NONE,
      delayMs: 0,
      close: undefined,
      drop: false,
      immediately: false,
      hello: false,
      closeAfter: 3,
    });
    assert.deepEqual(plan('/ws?close-after=2&close=4002&reason=enough')?.close, {
      code: 4002,
      reason: 'enough',
    });
    // A reason alone comes with code 1000 when something closes.
    assert.deepEqual(plan('/ws?close-in=1s&reason=bye')?.close, { code: 1000, reason: 'bye' });
    assert.equal(plan('/ws?close-in=1500ms')?.closeInMs, 1500);
    assert.equal(plan('/ws?close-in=1h')?.closeInMs, 3_600_000);
    assert.equal(plan('/ws?ignore-pings')?.ignorePings, true);
    assert.equal(plan('/ws?close=1011&reason=%C3%A9t%C3%A9')?.close?.reason, 'été');
  });

  it('refuses ?status, ?close-after and ?close-in values out of bounds or combinations that cannot act', () => {
    for (const code of ['200', '101', '302', '600', '399', '5030', 'abc', '']) {
      assert.match(error(`/ws?status=${code}`), /status must be an HTTP status from 400 to 599/, code);
    }
    for (const seconds of ['-1', '1.5', '86401', 'soon', '']) {
      assert.match(
        error(`/ws?status=503&retry-after=${seconds}`),
        /retry-after must be whole seconds from 0 to 86400/,
      );
    }
    assert.match(error('/ws?retry-after=5'), /retry-after needs status=CODE/);
    assert.match(
      error('/ws?status=503&hello'),
      /status refuses the handshake: it cannot be combined with hello/,
    );
    for (const count of ['0', '-1', '1000001', '1e3', 'x', '']) {
      assert.match(
        error(`/ws?close-after=${count}`),
        /close-after must be a number of messages from 1 to 1000000/,
      );
    }
    for (const duration of ['2h', '5', '-1s', 'soon', '']) {
      assert.match(error(`/ws?close-in=${duration}`), /close-in must be a duration from 0 to 1h, such as 2s/);
    }
    assert.match(error('/ws?close-after=1&drop'), /cannot be combined with drop/);
    assert.match(error('/ws?close-in=1s&close=4000&immediately'), /cannot be combined with immediately/);
    assert.match(error('/ws?close-after=1&close=1005'), /close must be a code a server may send/);
    // RFC 6455 §5.5: 123 bytes of reason, counted in UTF-8 (é is 2 bytes).
    assert.match(error(`/ws?close-after=1&reason=${'%C3%A9'.repeat(62)}`), /at most 123 bytes of UTF-8/);
    assert.ok(parseFaultQuery(`/ws?close-after=1&reason=${'%C3%A9'.repeat(61)}x`).ok);
  });

  it('redacts credentials in what ?hello reports', () => {
    assert.equal(
      redactTarget('/ws/lobby?access_token=abc.def&hello&room=x&api_key=k'),
      '/ws/lobby?access_token=%5Bredacted%5D&hello=&room=x&api_key=%5Bredacted%5D',
    );
    assert.equal(redactTarget('/ws?hello'), '/ws?hello');
    const request = {
      httpVersion: '1.1',
      method: 'GET',
      url: '/ws?hello&token=t0p',
      headers: {
        host: 'h',
        authorization: 'Bearer secret',
        cookie: 'sid=secret',
        'proxy-authorization': 'Basic secret',
        'x-auth-token': 'secret',
        'x-forwarded-for': '203.0.113.9, 10.0.0.1',
        forwarded: 'for=203.0.113.9;proto=https',
        'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==',
      },
      socket: {},
    } as unknown as IncomingMessage;
    const described = describeRequest(request);
    assert.equal(JSON.stringify(described).includes('secret'), false);
    assert.equal(JSON.stringify(described).includes('t0p'), false);
    assert.equal(described.headers.authorization, '[redacted]');
    assert.equal(described.headers['sec-websocket-key'], 'dGhlIHNhbXBsZSBub25jZQ==');
    assert.deepEqual(described.forwarded, {
      'x-forwarded-for': '203.0.113.9, 10.0.0.1',
      forwarded: 'for=203.0.113.9;proto=https',
    });
    assert.equal(described.tls, null);
    assert.equal(described.http_version, '1.1');
  });
});
