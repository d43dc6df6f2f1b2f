import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Page } from 'playwright-core';
import { type Browser, launchChromium } from './helpers/browser.js';
import { TestClient } from './helpers/clients.js';
import { type InProcessServer, startServer } from './helpers/server.js';

describe('wshub/client in headless Chromium (through the console page, GET /)', () => {
  let server: InProcessServer;
  let browser: Browser;
  let page: Page;

  before(async () => {
    server = await startServer([
      '--stats-interval=0',
      '--mode=broadcast',
      '--history-size=10000',
      '--allow-fault-injection',
    ]);
    browser = await launchChromium();
    page = browser.page;
  });

  after(async () => {
    await browser?.close();
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
    const sending = (async () => {
      for (let i = 1; i <= total; i++) {
        producer.ws.send(`m${i}`);
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
    })();
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
