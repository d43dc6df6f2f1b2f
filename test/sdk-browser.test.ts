import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Page } from 'playwright-core';
import { type Browser, launchChromium } from './helpers/browser.js';
import { TestClient } from './helpers/clients.js';
import { metricValue } from './helpers/metrics.js';
import { RedisServer, spawnNode } from './helpers/redis.js';
import { type InProcessServer, type SpawnedServer, startServer } from './helpers/server.js';

let browser: Browser;
let page: Page;
before(async () => {
  browser = await launchChromium();
  page = browser.page;
});
after(async () => {
  await browser?.close();
});

/** Sends `m1`…`m<total>` from `producer`, one every `everyMs`. */
async function sendSteadily(producer: TestClient, total: number, everyMs: number): Promise<void> {
  for (let i = 1; i <= total; i++) {
    producer.ws.send(`m${i}`);
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
}

describe('wshub/client in headless Chromium (through the console page, GET /)', () => {
  let server: InProcessServer;

  before(async () => {
    server = await startServer([
      '--stats-interval=0',
      '--mode=broadcast',
      '--history-size=10000',
      '--allow-fault-injection',
    ]);
  });

  after(async () => {
    await server?.app.stop();
  });

  it('a connection dropped mid-stream reconnects and resumes: every message once, in order', async () => {
    const base = `http://127.0.0.1:${server.app.port}`;
    const library = await fetch(`${base}/client.js`);
    assert.equal(library.status, 200);
    assert.match(library.headers.get('content-type') ?? '', /^text\/javascript/);
    const source = await library.text();
    assert.match(source, /export function connect\(/);
    assert.doesNotMatch(source, /^import /m, 'the browser build has no imports');

    await page.goto(`${base}/`);
    // ?drop (fault injection): the server cuts the TCP connection when this client next sends.
    await page.fill('#path', '/ws/stream?drop');
    await page.click('#connect');
    await page
      .locator('#log li.event')
      .filter({ hasText: /welcome at [0-9a-f]{12}:0$/ })
      .waitFor();
    const producer = await TestClient.open(`ws://127.0.0.1:${server.app.port}/ws/stream`);
    const total = 300;
    const sending = sendSteadily(producer, total, 5);
    await page
      .locator('#log li.received span')
      .filter({ hasText: /^m100$/ })
      .waitFor({ timeout: 20_000 });
    await page.fill('#message', 'cut me off');
    await page.click('#send');
    await sending;
    await page
      .locator('#log li.received span')
      .filter({ hasText: new RegExp(`^m${total}$`) })
      .waitFor({ timeout: 20_000 });
    await page
      .locator('#log li.event')
      .filter({ hasText: /resumed at [0-9a-f]{12}:\d+$/ })
      .waitFor();
    const received = await page.locator('#log li.received span').allTextContents();
    assert.deepEqual(
      received,
      Array.from({ length: total }, (_, i) => `m${i + 1}`),
    );
    const events = await page.locator('#log li.event span').allTextContents();
    assert.ok(
      events.some((text) => /^closed with code 1006/.test(text)),
      events.join('\n'),
    );
    assert.ok(
      events.some((text) => /^reconnecting in \d+ ms$/.test(text)),
      events.join('\n'),
    );
    producer.ws.terminate();
    await page.click('#disconnect');
    await page.locator('#state[data-state=closed]').waitFor();
    assert.deepEqual(browser.errors, []);
  });
});

describe('wshub/client in headless Chromium with the history in Redis: pending frames while Redis is frozen', () => {
  let redis: RedisServer;
  let node: SpawnedServer;
  const cleanups: Array<() => void> = [];

  before(async () => {
    redis = await RedisServer.start();
    node = await spawnNode(redis, ['--history-size=5000', '--history-ttl=10m', '--allow-fault-injection']);
  });

  after(async () => {
    for (const cleanup of cleanups) cleanup();
    node?.kill('SIGKILL');
    redis?.resume();
    await redis?.stop();
  });

  it('messages of its node keep coming during a SIGSTOP of Redis (as pending), and each is shown once when their positions follow', async () => {
    const received = page.locator('#log li.received span');
    await page.goto(`http://127.0.0.1:${node.port}/`);
    // ?drop (fault injection): at the end, a send cuts the connection, and the resume shows the position the page reached.
    await page.fill('#path', '/ws/frozen?drop');
    await page.click('#connect');
    const welcome = page.locator('#log li.event span').filter({ hasText: /welcome at [0-9a-f]{12}:0$/ });
    await welcome.waitFor();
    const epoch = /welcome at ([0-9a-f]{12}):0$/.exec(await welcome.innerText())?.[1];
    const producer = await TestClient.open(`ws://127.0.0.1:${node.port}/ws/frozen`);
    cleanups.push(() => producer.ws.terminate());
    const total = 300;
    const sending = sendSteadily(producer, total, 20);
    await received.filter({ hasText: /^m30$/ }).waitFor({ timeout: 20_000 });
    redis.pause();
    const frozenAt = performance.now();
    const before = await received.count();
    // Frozen at least 2 s, and until 50 more messages reached the page meanwhile (bounded): Redis
    // positions nothing now, so they can only have come as pending frames.
    const deadline = performance.now() + 20_000;
    while (
      (performance.now() - frozenAt < 2000 || (await received.count()) < before + 50) &&
      performance.now() < deadline
    ) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const during = (await received.count()) - before;
    redis.resume();
    assert.ok(during >= 50, `the page showed ${during} messages while Redis was frozen`);
    await sending;
    await received.filter({ hasText: new RegExp(`^m${total}$`) }).waitFor({ timeout: 30_000 });
    assert.ok(((await metricValue(node.metricsUrl, 'wshub_history_pending_total')) ?? 0) >= 50);
    // Cut the connection: the page resumes from the position the library reached, which only
    // positioned frames move: every pending message's positioned copy arrived, in the same epoch.
    await page.fill('#message', 'cut me off');
    await page.click('#send');
    await page
      .locator('#log li.event span')
      .filter({ hasText: new RegExp(`resumed at ${epoch}:${total}$`) })
      .waitFor({ timeout: 20_000 });
    // Every message once, in order: the positioned copies of the pending ones were not shown again.
    assert.deepEqual(
      await received.allTextContents(),
      Array.from({ length: total }, (_, i) => `m${i + 1}`),
    );
    await page.click('#disconnect');
    await page.locator('#state[data-state=closed]').waitFor();
    assert.deepEqual(browser.errors, []);
  });
});
