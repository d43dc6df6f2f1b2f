import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import { hs256, startWithSecret } from './helpers/auth.js';
import { TestClient } from './helpers/clients.js';
import { H2Client } from './helpers/h2.js';
import { metricValue } from './helpers/metrics.js';
import { runWshub } from './helpers/server.js';
import { sendUpgrade } from './helpers/upgrade.js';

/**
 * Issue 15 over HTTP/2 (RFC 8441, issue 17): an extended CONNECT is authenticated exactly like an
 * HTTP/1.1 upgrade, and every refusal is an HTTP/2 response on its stream (the connection stays).
 */
let running: Awaited<ReturnType<typeof startWithSecret>>;
const cleanups: Array<() => void> = [];

before(async () => {
  running = await startWithSecret(['--http2', '--max-connections-per-user=2', '--ping-interval=0']);
});
after(() => running.stop());
afterEach(() => {
  for (const cleanup of cleanups.splice(0)) cleanup();
});

async function h2(): Promise<H2Client> {
  const client = await H2Client.connect(`http://127.0.0.1:${running.server.app.port}`);
  cleanups.push(() => client.close());
  return client;
}

const failures = (reason: string) =>
  metricValue(running.server.metricsUrl, 'wshub_auth_failures_total', { reason });

describe('--auth=jwt over HTTP/2: the extended CONNECT', () => {
  it('401 without or with a bad token, 403 outside the rooms, as HTTP/2 responses; then 200 on the same connection', async () => {
    const client = await h2();
    const missing = await client.open('/ws/chat.en');
    assert.equal(missing.status, 401);
    assert.equal(missing.headers['www-authenticate'], 'Bearer realm="wshub"');
    assert.match(missing.body, /^401 Unauthorized: no token/);

    const expired = await client.open('/ws/chat.en', {
      authorization: `Bearer ${await hs256({ sub: 'h2', rooms: ['*'], exp: Math.floor(Date.now() / 1000) - 5 })}`,
    });
    assert.equal(expired.status, 401);
    assert.match(String(expired.headers['www-authenticate']), /error="invalid_token".*has expired/);

    const none = await client.open('/ws/chat.en', {
      authorization: `Bearer ${await hs256({ sub: 'h2', rooms: ['*'] }, new TextEncoder().encode('k'.repeat(40)))}`,
    });
    assert.equal(none.status, 401);
    assert.match(String(none.headers['www-authenticate']), /error="invalid_token"/);

    const room = await client.open('/ws/chat.en', {
      authorization: `Bearer ${await hs256({ sub: 'h2', rooms: ['news.*'] })}`,
    });
    assert.equal(room.status, 403);
    assert.match(String(room.headers['www-authenticate']), /error="insufficient_scope"/);
    assert.match(room.body, /the token's "rooms" do not cover room chat\.en/);

    // The refusals ended their streams only: the same HTTP/2 connection carries a good one.
    const token = await hs256({ sub: 'h2', rooms: ['chat.*'], publish: ['chat.*'] });
    const ws = await client.openOk('/ws/chat.en', { authorization: `Bearer ${token}` });
    ws.sendText('over h2 with a token');
    assert.equal(await ws.nextText(), 'over h2 with a token');
    // ?access_token= works on the :path as on an HTTP/1.1 request line.
    const viaQuery = await client.openOk(`/ws/chat.fr?access_token=${token}`);
    viaQuery.sendText('by query');
    assert.equal(await viaQuery.nextText(), 'by query');

    assert.ok(((await failures('missing')) ?? 0) >= 1);
    assert.ok(((await failures('expired')) ?? 0) >= 1);
    assert.ok(((await failures('signature')) ?? 0) >= 1);
    assert.ok(((await failures('room')) ?? 0) >= 1);
    await running.server.log.waitFor(
      /WebSocket upgrade refused: 127\.0\.0\.1:\d+ 403 forbidden\/room \(the token's "rooms" do not cover room chat\.en\)/,
    );
    ws.close();
    viaQuery.close();
  });

  it('a message outside the token\'s "publish" closes the HTTP/2 WebSocket with 1008, undelivered', async () => {
    const client = await h2();
    const reader = await client.openOk('/ws/quiet', {
      authorization: `Bearer ${await hs256({ sub: 'reader', rooms: ['quiet'] })}`,
    });
    reader.sendText('not allowed');
    const close = await reader.frames.nextClose();
    assert.equal(close.payload.readUInt16BE(0), 1008);
    assert.equal(close.payload.subarray(2).toString(), 'not allowed to publish to this room');
  });
});

describe('--max-connections-per-user over HTTP/2', () => {
  it('the third connection of a user gets 429 with Retry-After, over HTTP/2 and HTTP/1.1 alike, counted together', async () => {
    const token = await hs256({ sub: 'busy', rooms: ['*'], publish: ['*'] });
    const client = await h2();
    // One over HTTP/1.1, one over HTTP/2: the user's two.
    const http1 = await TestClient.open(running.server.url, {
      headers: { Authorization: `Bearer ${token}` },
    });
    cleanups.push(() => http1.ws.terminate());
    const second = await client.openOk('/ws', { authorization: `Bearer ${token}` });
    const third = await client.open('/ws', { authorization: `Bearer ${token}` });
    assert.equal(third.status, 429);
    assert.equal(third.headers['retry-after'], '5');
    assert.match(third.body, /more than 2 connections for this user/);
    const overHttp1 = await sendUpgrade(running.server.app.port, {
      headers: [`Authorization: Bearer ${token}`],
    });
    overHttp1.socket.destroy();
    assert.equal(overHttp1.status, 429);
    assert.ok(((await failures('user_limit')) ?? 0) >= 2);
    // Another user is not affected; once one of busy's connections ends, busy may connect again.
    const other = await client.openOk('/ws', {
      authorization: `Bearer ${await hs256({ sub: 'other', rooms: ['*'] })}`,
    });
    other.close();
    second.close();
    await second.frames.nextClose();
    second.stream.end();
    let again: Awaited<ReturnType<H2Client['open']>> | undefined;
    const deadline = performance.now() + 10_000;
    while (performance.now() < deadline) {
      again = await client.open('/ws', { authorization: `Bearer ${token}` });
      if (again.status === 200) break;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    assert.equal(again?.status, 200);
  });
});

describe('wshub client --http2 with a token', () => {
  it('sends authorization on the extended CONNECT; without it the 401 is reported', async () => {
    const token = await hs256({ sub: 'cli-h2', rooms: ['*'], publish: ['*'] });
    const url = `ws://127.0.0.1:${running.server.app.port}/ws/cli`;
    const run = runWshub(['client', '--http2', `--token=${token}`, url], {}, { stdin: 'pipe' });
    run.child.stdin?.end('over h2 with a token\n');
    await run.stdout.waitFor(/^over h2 with a token$/);
    assert.equal((await run.exited).code, 0, run.stderr.lines.join('\n'));
    assert.match(run.stderr.lines.join('\n'), /connected to ws:\/\/127\.0\.0\.1:\d+\/ws\/cli \(HTTP\/2\)/);
    const refused = runWshub(['client', '--http2', url], {}, { stdin: 'pipe' });
    refused.child.stdin?.end();
    assert.equal((await refused.exited).code, 1);
    assert.match(refused.stderr.lines.join('\n'), /401/);
  });
});
