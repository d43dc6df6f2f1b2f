import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { Page } from 'playwright-core';
import { DISCONNECT_REASONS, PING_RTT_BUCKETS, REJECT_REASONS } from '../src/stats.js';
import { hs256, startWithSecret } from './helpers/auth.js';
import { type Browser, launchChromium } from './helpers/browser.js';
import { TestClient } from './helpers/clients.js';
import { sampleValue } from './helpers/metrics.js';
import { type InProcessServer, startServer } from './helpers/server.js';

const ARTIFACTS = fileURLToPath(new URL('../../test-artifacts/', import.meta.url));
const STAMP = /^\d{2}:\d{2}:\d{2}\.\d{3}$/;

describe('browser console (GET /) in headless Chromium', () => {
  let server: InProcessServer;
  let browser: Browser;
  let page: Page;
  let pageErrors: string[] = [];

  before(async () => {
    server = await startServer(['--stats-interval=0']);
    browser = await launchChromium();
    page = browser.page;
    pageErrors = browser.errors;
  });

  after(async () => {
    await browser?.close();
    await server?.app.stop();
  });

  it('connects to /ws, sends, shows the echo with timestamps, the count, and the close code', async () => {
    const base = `http://127.0.0.1:${server.app.port}`;
    const response = await page.goto(`${base}/`);
    assert.equal(response?.status(), 200);
    assert.equal(await page.title(), 'wshub console');
    await page
      .locator('#server')
      .filter({ hasText: '0 connections open on the server (echo mode)' })
      .waitFor();

    await page.click('#connect');
    await page.locator('#state[data-state=open]').waitFor();
    assert.equal(server.app.connectionCount(), 1);
    // The count is polled every 2 s.
    await page.locator('#server').filter({ hasText: '1 connection open on the server' }).waitFor();

    await page.fill('#message', 'hello from chromium');
    await page.click('#send');
    const echo = page.locator('#log li.received').filter({ hasText: 'hello from chromium' });
    await echo.waitFor();
    assert.match((await echo.locator('time').textContent()) ?? '', STAMP);
    assert.equal(await page.locator('#log li.sent').count(), 1);
    assert.equal(await page.textContent('#counts'), '1 sent, 1 received');

    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: join(ARTIFACTS, 'console.png'), fullPage: true });

    await page.click('#disconnect');
    await page
      .locator('#log li.event')
      .filter({ hasText: 'closed with code 1000 "closed from the console"' })
      .waitFor();
    assert.equal(await page.getAttribute('#state', 'data-state'), 'closed');
    assert.deepEqual(pageErrors, []);
  });

  it('shows a close code the server sends (1001 when it shuts down)', async () => {
    const other = await startServer(['--stats-interval=0']);
    try {
      await page.goto(`http://127.0.0.1:${other.app.port}/`);
      await page.click('#connect');
      await page.locator('#state[data-state=open]').waitFor();
      await other.app.stop();
      await page
        .locator('#log li.event')
        .filter({ hasText: 'closed with code 1001 "server shutting down"' })
        .waitFor();
      // The client library reconnects by itself (with backoff) until told to stop.
      await page
        .locator('#log li.event')
        .filter({ hasText: /^.*reconnecting in \d+ ms$/ })
        .first()
        .waitFor();
      await page.click('#disconnect');
      await page.locator('#state[data-state=closed]').waitFor();
    } finally {
      await other.app.stop();
    }
    assert.deepEqual(pageErrors, []);
  });

  it('live charts move while traffic runs, and show what /metrics says; nothing leaves the origin', async () => {
    const hub = await startServer([
      '--stats-interval=0',
      '--mode=broadcast',
      '--ping-interval=300ms',
      '--max-message-size=1KiB',
    ]);
    // The previous test's page may still be polling or reconnecting to its own server: leave it first,
    // so only this page's requests are recorded (seen once: a late request of the old page).
    await page.goto('about:blank');
    const requests: string[] = [];
    const onRequest = (request: { url(): string }) => requests.push(request.url());
    page.on('request', onRequest);
    page.on('websocket', onRequest);
    const clients: TestClient[] = [];
    try {
      const origin = `http://127.0.0.1:${hub.app.port}`;
      await page.goto(`${origin}/`);
      for (const id of ['chart-connections', 'chart-messages', 'chart-events', 'chart-ping']) {
        await page.locator(`#${id} canvas`).waitFor();
      }
      for (let i = 0; i < 3; i++) clients.push(await TestClient.open(`${hub.url}/lobby`));
      clients.push(await TestClient.open(`${hub.url}/quiet`));
      const points = async () => Number(await page.getAttribute('#chart-messages', 'data-points'));
      const before = await points();
      // Traffic for about 3 s: the chart gains points and shows a rate above zero.
      const [sender] = clients as [TestClient];
      for (let round = 0; round < 30; round++) {
        await sender.send(`message ${round}`);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      assert.ok((await points()) >= before + 2, 'the charts gained a point a second');
      await page.waitForFunction("Number(document.getElementById('rate-out').dataset.value) > 0");
      // The busiest room first, with its members.
      await page.locator('#room-rows tr').first().filter({ hasText: 'lobby' }).waitFor();
      assert.equal(await page.textContent('#room-rows tr:first-child td:nth-child(2)'), '3');
      assert.equal(await page.isVisible('#rooms'), true);

      // A server disconnect (message too large) appears as a series of the events chart.
      const big = await TestClient.open(`${hub.url}/lobby`);
      await big.send('x'.repeat(2048));
      assert.equal((await big.closed).code, 1009);
      await page
        .locator('#chart-events .u-legend')
        .filter({ hasText: 'disconnect message too large' })
        .waitFor();

      // Once traffic stops, the numbers on the page are /metrics' (each at most one poll old).
      const metrics = await (await fetch(`${hub.metricsUrl}/metrics`)).text();
      const expected: Record<string, number | undefined> = {
        'now-connections': sampleValue(metrics, 'websocket_connections'),
        'total-in': sampleValue(metrics, 'websocket_messages_total'),
        'total-out': sampleValue(metrics, 'websocket_messages_delivered_total'),
        'total-disconnects': sampleValue(metrics, 'websocket_server_disconnects_total', {
          reason: 'message_too_large',
        }),
      };
      assert.deepEqual(expected, {
        'now-connections': 4,
        'total-in': 30,
        'total-out': 90,
        'total-disconnects': 1,
      });
      for (const [id, value] of Object.entries(expected)) {
        await page.waitForFunction(`document.getElementById('${id}').dataset.value === '${value}'`);
      }
      // Ping percentiles: pongs arrive every 300 ms; the page's count is the histogram's.
      await page.waitForFunction("Number(document.getElementById('ping-now').dataset.value) > 0");
      const pongs = Number(await page.getAttribute('#ping-pongs', 'data-value'));
      const scraped = sampleValue(
        await (await fetch(`${hub.metricsUrl}/metrics`)).text(),
        'websocket_ping_rtt_seconds_count',
      );
      assert.ok(
        pongs > 0 && scraped !== undefined && scraped >= pongs,
        `${pongs} pongs shown, ${scraped} scraped`,
      );

      assert.ok(requests.length > 3, 'the page polled');
      assert.deepEqual(
        requests.filter((url) => !url.startsWith(origin)),
        [],
        'no request leaves the page origin',
      );
      mkdirSync(ARTIFACTS, { recursive: true });
      await page.screenshot({ path: join(ARTIFACTS, 'console-live.png'), fullPage: true });
      assert.deepEqual(pageErrors, []);
    } finally {
      page.off('request', onRequest);
      page.off('websocket', onRequest);
      for (const client of clients) await client.close();
      await hub.app.stop();
    }
  });

  it('a token goes in ?access_token= on the WebSocket and in Authorization: Bearer on /stats', async () => {
    const other = await startServer(['--stats-interval=0']);
    try {
      await page.goto(`http://127.0.0.1:${other.app.port}/`);
      await page.fill('#token', 'test.token.value');
      const polled = await page.waitForRequest((request) => request.url().endsWith('/stats'));
      assert.equal(await polled.headerValue('authorization'), 'Bearer test.token.value');
      const opened = page.waitForEvent('websocket');
      await page.click('#connect');
      assert.match((await opened).url(), /\/ws\?access_token=test\.token\.value$/);
      await page.locator('#state[data-state=open]').waitFor();
      const logged = (await page.textContent('#log')) ?? '';
      assert.doesNotMatch(logged, /test\.token\.value/, 'the token is not shown in the log');
      await page.click('#disconnect');
      await page.fill('#token', '');
    } finally {
      await other.app.stop();
    }
    assert.deepEqual(pageErrors, []);
  });

  it('in broadcast mode, a room shows what another client of the room sends', async () => {
    const hub = await startServer(['--stats-interval=0', '--mode=broadcast']);
    try {
      await page.goto(`http://127.0.0.1:${hub.app.port}/`);
      await page.fill('#path', '/ws/lobby');
      await page.click('#connect');
      await page.locator('#state[data-state=open]').waitFor();
      const other = await TestClient.open(`ws://127.0.0.1:${hub.app.port}/ws/lobby`);
      await other.send('from another client');
      await page.locator('#log li.received').filter({ hasText: 'from another client' }).waitFor();
      await other.close();
    } finally {
      await hub.app.stop();
    }
  });
});

describe('console endpoints over plain HTTP', () => {
  it('GET /stats is the live figures as JSON; other methods get 405', async () => {
    const server = await startServer(['--stats-interval=0', '--ping-interval=0']);
    try {
      const base = `http://127.0.0.1:${server.app.port}`;
      const stats = async () => (await (await fetch(`${base}/stats`)).json()) as Record<string, unknown>;
      const idle = await stats();
      assert.equal(typeof idle.time, 'number');
      assert.deepEqual(
        { ...idle, time: 0 },
        {
          mode: 'echo',
          workers: 1,
          pingIntervalMs: 0,
          time: 0,
          connections: 0,
          messagesIn: 0,
          messagesOut: 0,
          bytesIn: 0,
          bytesOut: 0,
          dropped: { slow_consumer: 0, backplane_unavailable: 0 },
          serverDisconnects: Object.fromEntries(DISCONNECT_REASONS.map((reason) => [reason, 0])),
          upgradesRejected: Object.fromEntries(REJECT_REASONS.map((reason) => [reason, 0])),
          pingRtt: { bounds: [...PING_RTT_BUCKETS], counts: Array(16).fill(0), count: 0, sum: 0 },
        },
      );
      const client = await TestClient.open(server.url);
      await client.send('hello');
      await client.next();
      const busy = await stats();
      assert.deepEqual(
        [busy.connections, busy.messagesIn, busy.messagesOut, busy.bytesIn, busy.bytesOut],
        [1, 1, 1, 5, 5],
      );
      assert.equal(busy.rooms, undefined, 'rooms only in broadcast mode');
      await client.close();
      const page = await fetch(`${base}/`);
      assert.equal(page.headers.get('content-type'), 'text/html; charset=utf-8');
      assert.match(page.headers.get('content-security-policy') ?? '', /script-src 'sha256-/);
      assert.doesNotMatch(await page.text(), /https?:\/\//, 'self-contained: no external URL');
      const post = await fetch(`${base}/`, { method: 'POST', body: 'x' });
      assert.equal(post.status, 405);
      assert.equal(post.headers.get('allow'), 'GET, HEAD');
    } finally {
      await server.app.stop();
    }
  });

  it('GET /stats in broadcast mode: the busiest rooms, with members and rates from one look a second', async () => {
    const server = await startServer(['--stats-interval=0', '--mode=broadcast']);
    const clients: TestClient[] = [];
    try {
      for (const room of ['a', 'a', 'b']) clients.push(await TestClient.open(`${server.url}/${room}`));
      await (clients[2] as TestClient).send('to b');
      await (clients[2] as TestClient).next();
      const read = async () =>
        (
          (await (await fetch(`http://127.0.0.1:${server.app.port}/stats`)).json()) as {
            rooms: {
              count: number;
              busiest: Array<{ room: string; members: number; messagesPerSecond: number }>;
            };
          }
        ).rooms;
      const first = await read();
      assert.equal(first.count, 2);
      assert.deepEqual(
        first.busiest.map((room) => [room.room, room.members, room.messagesPerSecond > 0]),
        [
          ['b', 1, true],
          ['a', 2, false],
        ],
      );
      // Within the same second the answer is the cached one (one pass over the rooms per second).
      assert.deepEqual(await read(), first);
    } finally {
      for (const client of clients) await client.close();
      await server.app.stop();
    }
  });

  it('GET /stats with --history-size: the busiest rooms still count members and messages', async () => {
    const server = await startServer(['--stats-interval=0', '--mode=broadcast', '--history-size=10']);
    const clients: TestClient[] = [];
    try {
      for (let i = 0; i < 2; i++) clients.push(await TestClient.open(`${server.url}/kept`));
      await (clients[0] as TestClient).send('remembered');
      for (const client of clients) assert.equal((await client.next()).data.toString(), 'remembered');
      const stats = (await (await fetch(`http://127.0.0.1:${server.app.port}/stats`)).json()) as {
        rooms: {
          count: number;
          busiest: Array<{ room: string; members: number; messagesPerSecond: number }>;
        };
      };
      assert.equal(stats.rooms.count, 1);
      assert.deepEqual(
        stats.rooms.busiest.map((room) => [room.room, room.members, room.messagesPerSecond > 0]),
        [['kept', 2, true]],
      );
      await (clients.pop() as TestClient).close();
      await (clients.pop() as TestClient).close();
      await new Promise((resolve) => setTimeout(resolve, 1100));
      const after = (await (await fetch(`http://127.0.0.1:${server.app.port}/stats`)).json()) as {
        rooms: { count: number; busiest: unknown[] };
      };
      assert.deepEqual(after.rooms, { count: 0, busiest: [] }, 'an empty room is forgotten');
    } finally {
      for (const client of clients) await client.close();
      await server.app.stop();
    }
  });

  it('--no-console turns both off (404)', async () => {
    const server = await startServer(['--stats-interval=0', '--no-console']);
    try {
      const base = `http://127.0.0.1:${server.app.port}`;
      assert.equal((await fetch(`${base}/`)).status, 404);
      assert.equal((await fetch(`${base}/stats`)).status, 404);
    } finally {
      await server.app.stop();
    }
  });
});

describe('browser console with --auth=jwt (headless Chromium)', () => {
  it('without a token the page says it was refused (charts and connection); with the token from the field they fill', async () => {
    const hub = await startWithSecret(['--mode=broadcast', '--ping-interval=300ms']);
    const browser = await launchChromium();
    const page = browser.page;
    const good = await hs256({ sub: 'console', rooms: ['lobby'], publish: ['lobby'] });
    const narrow = await hs256({ sub: 'console', rooms: ['news.*'] });
    try {
      await page.goto(`http://127.0.0.1:${hub.server.app.port}/`);
      // The live figures need a token: the page says so instead of drawing nothing.
      await page
        .locator('#live-state[data-state=error]')
        .filter({ hasText: 'stats unavailable (HTTP 401 — enter an access token above)' })
        .waitFor();
      await page.fill('#path', '/ws/lobby');
      await page.click('#connect');
      await page
        .locator('#log li.error')
        .filter({ hasText: 'refused: 401 Unauthorized — the access token is missing, invalid or expired' })
        .waitFor();
      await page.locator('#state[data-state=closed]').waitFor();
      assert.equal(await page.textContent('#state-detail'), 'refused with HTTP 401');
      // A token that does not cover the room: 403, named, and no reconnection loop.
      await page.fill('#token', narrow);
      await page.click('#connect');
      await page
        .locator('#log li.error')
        .filter({ hasText: 'refused: 403 Forbidden — the access token does not allow room lobby' })
        .waitFor();
      await page.locator('#state[data-state=closed]').waitFor();
      assert.equal(await page.locator('#log li.error').count(), 2, 'each refusal shown once');

      await page.fill('#token', good);
      await page.click('#connect');
      await page.locator('#state[data-state=open]').waitFor();
      await page.click('#send');
      await page.locator('#log li.received').filter({ hasText: 'hello wshub' }).waitFor();
      // The charts fill from /stats with the token: one connection, the message in and out.
      await page.locator('#now-connections[data-value="1"]').waitFor();
      await page.locator('#total-in[data-value="1"]').waitFor();
      assert.notEqual(await page.getAttribute('#live-state', 'data-state'), 'error');
      await page.locator('#room-rows tr').first().filter({ hasText: 'lobby' }).waitFor();

      // The token is never shown on the page nor written to the server's log.
      const text = await page.locator('body').innerText();
      assert.ok(!text.includes(good) && !text.includes(narrow), 'no token on the page');
      await hub.server.log.waitFor(/WebSocket upgrade refused: .* 401 unauthorized\/missing/);
      await hub.server.log.waitFor(/WebSocket upgrade refused: .* 403 forbidden\/room/);
      const logged = hub.server.log.lines.join('\n');
      assert.ok(!logged.includes(good) && !logged.includes(narrow), 'no token in the log');
      assert.deepEqual(browser.errors, []);
    } finally {
      await browser.close();
      await hub.stop();
    }
  });
});
