import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import { WebSocket } from 'ws';
import { connect, type Message, type WebSocketConstructor, type WshubClient } from 'wshub/client';
import { hs256, inAnHour, startWithSecret } from './helpers/auth.js';
import { metricValue } from './helpers/metrics.js';
import { sendUpgrade } from './helpers/upgrade.js';
import { V1Client } from './helpers/v1.js';
import { waitUntil } from './helpers/wait.js';

/**
 * Issue 16 meets issue 15: a resume (`?since=`) is a new connection and is authenticated exactly
 * like a fresh connect; the client library sends its token on every reconnection and surfaces a
 * refusal instead of retrying it forever.
 */
let running: Awaited<ReturnType<typeof startWithSecret>>;
const closers: Array<() => void> = [];

before(async () => {
  running = await startWithSecret(['--mode=broadcast', '--history-size=100', '--ping-interval=0']);
});
after(() => running.stop());
afterEach(() => {
  for (const close of closers.splice(0)) close();
});

const port = () => running.server.app.port;
const wsUrl = (path: string) => `ws://127.0.0.1:${port()}${path}`;

/** `ws`, recording every URL the library opens. */
function recordingWebSocket(): { Socket: WebSocketConstructor; urls: string[] } {
  const urls: string[] = [];
  class Recording extends WebSocket {
    constructor(url: string, protocols?: string | string[]) {
      super(url, protocols);
      urls.push(url);
    }
  }
  return { Socket: Recording as unknown as WebSocketConstructor, urls };
}

async function v1(path: string, token: string): Promise<V1Client> {
  const client = await V1Client.open(wsUrl(path), { headers: { Authorization: `Bearer ${token}` } });
  closers.push(() => client.ws.terminate());
  return client;
}

describe('a ?since= resume re-checks the token (--auth=jwt with --history-size)', () => {
  it('an expired, invalid or missing token gets 401, a token without the room 403; a valid one resumes', async () => {
    const good = await hs256({ sub: 'reader', rooms: ['feed'], publish: ['feed'] });
    const first = await v1('/ws/feed', good);
    const [welcome] = await first.waitFor(1);
    const epoch = welcome?.epoch as string;
    for (let i = 1; i <= 3; i++) await first.send(`m${i}`);
    await first.waitFor(4);
    first.ws.terminate();

    const resume = async (token: string | undefined) => {
      const response = await sendUpgrade(port(), {
        path: `/ws/feed?since=${epoch}:1`,
        headers: [
          'Sec-WebSocket-Protocol: wshub.v1',
          ...(token === undefined ? [] : [`Authorization: Bearer ${token}`]),
        ],
      });
      response.socket.destroy();
      return response;
    };
    const expired = await resume(
      await hs256({ sub: 'reader', rooms: ['feed'], exp: Math.floor(Date.now() / 1000) - 10 }),
    );
    assert.equal(expired.status, 401);
    assert.match(expired.headers['www-authenticate'] ?? '', /error="invalid_token".*expired/);
    const forged = await resume(
      await hs256({ sub: 'reader', rooms: ['feed'] }, new TextEncoder().encode('x'.repeat(40))),
    );
    assert.equal(forged.status, 401);
    assert.match(forged.headers['www-authenticate'] ?? '', /error="invalid_token"/);
    const missing = await resume(undefined);
    assert.equal(missing.status, 401);
    assert.equal(missing.headers['www-authenticate'], 'Bearer realm="wshub"');
    const otherRoom = await resume(await hs256({ sub: 'reader', rooms: ['news.*'] }));
    assert.equal(otherRoom.status, 403);
    assert.match(otherRoom.headers['www-authenticate'] ?? '', /error="insufficient_scope"/);

    // The same resume with a valid token: welcome at 1, then 2 and 3 replayed.
    const resumed = await v1(`/ws/feed?since=${epoch}:1`, good);
    const frames = await resumed.waitFor(3);
    assert.deepEqual(
      frames.map((frame) => [frame.type, frame.offset, frame.data]),
      [
        ['welcome', 1, undefined],
        ['message', 2, 'm2'],
        ['message', 3, 'm3'],
      ],
    );
    const metrics = running.server.metricsUrl;
    assert.ok(((await metricValue(metrics, 'wshub_auth_failures_total', { reason: 'expired' })) ?? 0) >= 1);
    assert.ok(((await metricValue(metrics, 'wshub_auth_failures_total', { reason: 'room' })) ?? 0) >= 1);
  });
});

describe('a plain GET of a WebSocket path (what a browser can read after a failed handshake)', () => {
  it('answers 401/403 as the handshake would, readable cross-origin; 426 with a good token; refusals counted and logged', async () => {
    const get = (path: string) =>
      fetch(`http://127.0.0.1:${port()}${path}`, { headers: { Origin: 'https://app.example' } });
    const { server } = running;
    const failures = async () => {
      const counts: Record<string, number | undefined> = {};
      for (const reason of ['missing', 'expired', 'room'])
        counts[reason] = await metricValue(server.metricsUrl, 'wshub_auth_failures_total', { reason });
      return counts;
    };
    const before = await failures();
    const missing = await get('/ws/feed');
    assert.equal(missing.status, 401);
    assert.equal(missing.headers.get('www-authenticate'), 'Bearer realm="wshub"');
    assert.equal(missing.headers.get('access-control-allow-origin'), '*');
    const expiredToken = await hs256({ sub: 'g', rooms: ['*'], exp: Math.floor(Date.now() / 1000) - 5 });
    const expired = await get(`/ws/feed?access_token=${expiredToken}`);
    assert.equal(expired.status, 401);
    assert.match(expired.headers.get('www-authenticate') ?? '', /error="invalid_token"/);
    assert.match(await expired.text(), /the token has expired/);
    const narrowToken = await hs256({ sub: 'g', rooms: ['news'] });
    const narrow = await get(`/ws/feed?access_token=${narrowToken}`);
    assert.equal(narrow.status, 403);
    assert.match(await narrow.text(), /do not cover room feed/);
    const goodToken = await hs256({ sub: 'g', rooms: ['feed'] });
    const good = await get(`/ws/feed?access_token=${goodToken}`);
    assert.equal(good.status, 426);
    assert.equal(good.headers.get('access-control-allow-origin'), '*');

    // Each refused GET is a refusal like a refused upgrade: counted by reason and logged with the
    // path and the address, never the query the token travels in.
    const after = await failures();
    assert.deepEqual(
      Object.fromEntries(
        Object.keys(after).map((reason) => [reason, (after[reason] ?? 0) - (before[reason] ?? 0)]),
      ),
      { missing: 1, expired: 1, room: 1 },
    );
    await server.log.waitFor(
      /Request refused: GET \/ws\/feed from 127\.0\.0\.1:\d+ 401 missing \(no token \(Authorization: Bearer or \?access_token=\)\)$/,
    );
    await server.log.waitFor(
      /Request refused: GET \/ws\/feed from 127\.0\.0\.1:\d+ 401 expired \(the token has expired\)$/,
    );
    await server.log.waitFor(
      /Request refused: GET \/ws\/feed from 127\.0\.0\.1:\d+ 403 room \(the token's "rooms" do not cover room feed\)$/,
    );
    const logged = server.log.lines.join('\n');
    for (const token of [expiredToken, narrowToken, goodToken]) {
      assert.ok(!logged.includes(token.split('.')[2] as string), 'no token (nor its signature) in the log');
    }
  });
});

describe('wshub/client with a token (--auth=jwt)', () => {
  it('sends the current token on every reconnection: the token is replaced, the resume uses the new one', async () => {
    const { Socket, urls } = recordingWebSocket();
    // The first token expires within 2 s: the server closes the connection with 1008 "token expired".
    const first = await hs256({
      sub: 'sdk',
      rooms: ['live'],
      publish: ['live'],
      exp: Math.floor(Date.now() / 1000) + 2,
    });
    const second = await hs256({ sub: 'sdk', rooms: ['live'], publish: ['live'], exp: inAnHour() });
    let current = first;
    const got: Message[] = [];
    const closes: Array<{ code: number; reason: string; retryInMs?: number }> = [];
    const opens: Array<{ resumed: boolean }> = [];
    const client: WshubClient = connect(wsUrl('/ws/live'), {
      WebSocket: Socket,
      minDelayMs: 20,
      token: () => current,
      onMessage: (message) => got.push(message),
      onOpen: (info) => opens.push(info),
      onClose: (info) => closes.push(info),
    });
    closers.push(() => client.close());
    await waitUntil(() => opens.length === 1, 'the first welcome');
    current = second;
    const producer = await v1('/ws/live', second);
    await producer.send('before expiry');
    await waitUntil(() => got.length === 1, 'the first message');
    await waitUntil(() => closes.length >= 1, 'the close at token expiry', 10_000);
    assert.equal(closes[0]?.code, 1008);
    assert.equal(closes[0]?.reason, 'token expired');
    await waitUntil(() => opens.length >= 2, 'the reconnection', 10_000);
    assert.equal(opens[1]?.resumed, true);
    assert.equal(new URL(urls[0] as string).searchParams.get('access_token'), first);
    const again = new URL(urls[1] as string);
    assert.equal(again.searchParams.get('access_token'), second, 'the new token is used');
    assert.ok(again.searchParams.get('since'), 'the reconnection resumes');
    await producer.send('after the new token');
    await waitUntil(() => got.length === 2, 'the second message');
    assert.deepEqual(
      got.map((message) => message.data),
      ['before expiry', 'after the new token'],
    );
    assert.equal(client.state, 'open');
  });

  it('a revoked room: the 403 is surfaced to the application once, and the client stops', async () => {
    const { Socket, urls } = recordingWebSocket();
    let current = await hs256({ sub: 'revoked', rooms: ['vip'], exp: Math.floor(Date.now() / 1000) + 2 });
    const refusals: Array<{ status: number; room: string }> = [];
    const closes: Array<{ code: number; retryInMs?: number; status?: number }> = [];
    let opened = 0;
    const client = connect(wsUrl('/ws/vip'), {
      WebSocket: Socket,
      minDelayMs: 10,
      maxDelayMs: 20,
      token: () => current,
      onOpen: () => opened++,
      onRefused: (info) => {
        refusals.push(info);
        return undefined;
      },
      onClose: (info) => closes.push(info),
    });
    closers.push(() => client.close());
    await waitUntil(() => opened === 1, 'the first connection');
    // The application's backend no longer grants the room: the next token lacks it.
    current = await hs256({ sub: 'revoked', rooms: ['lobby'], exp: inAnHour() });
    await waitUntil(() => client.state === 'closed', 'the client to stop after the refusal', 10_000);
    assert.deepEqual(refusals, [{ status: 403, room: 'vip' }]);
    const last = closes.at(-1);
    assert.equal(last?.status, 403);
    assert.equal(last?.retryInMs, undefined, 'no reconnection is scheduled');
    const attempts = urls.length;
    assert.equal(attempts, 2, 'the first connection and the refused one');
    // With 10-20 ms of backoff a retry loop would have made dozens of attempts by now.
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.equal(urls.length, attempts, 'no further attempt');
  });

  it('onRefused returning true keeps reconnecting: a fresh token then gets through', async () => {
    const { Socket, urls } = recordingWebSocket();
    const refused = await hs256({ sub: 'late', rooms: ['other'] });
    let current = refused;
    let opened = 0;
    const statuses: number[] = [];
    const client = connect(wsUrl('/ws/late'), {
      WebSocket: Socket,
      minDelayMs: 10,
      maxDelayMs: 20,
      token: () => current,
      onOpen: () => opened++,
      onRefused: ({ status }) => {
        statuses.push(status);
        return true;
      },
    });
    closers.push(() => client.close());
    await waitUntil(() => statuses.length >= 1, 'the first refusal');
    current = await hs256({ sub: 'late', rooms: ['late'] });
    await waitUntil(() => opened >= 1, 'the connection with the new token', 10_000);
    assert.ok(statuses.every((status) => status === 403));
    assert.equal(new URL(urls.at(-1) as string).searchParams.get('access_token'), current);
  });
});
