import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { type BrowserContext, chromium, type Page } from 'playwright-core';
import { TestClient } from './helpers/clients.js';
import { type InProcessServer, startServer } from './helpers/server.js';

const CHROMIUM = '/usr/bin/chromium';
const ARTIFACTS = fileURLToPath(new URL('../../test-artifacts/', import.meta.url));
const STAMP = /^\d{2}:\d{2}:\d{2}\.\d{3}$/;

describe('browser console (GET /) in headless Chromium', () => {
  let server: InProcessServer;
  let browser: BrowserContext;
  let profile: string;
  let page: Page;
  const pageErrors: string[] = [];

  before(async () => {
    assert.ok(
      existsSync(CHROMIUM),
      `${CHROMIUM} not found: install the Debian packages chromium and chromium-driver (apt-get install chromium chromium-driver)`,
    );
    server = await startServer(['--stats-interval=0']);
    profile = mkdtempSync(join(tmpdir(), 'wshub-chromium-'));
    browser = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--no-first-run',
      ],
      viewport: { width: 1000, height: 700 },
    });
    page = browser.pages()[0] ?? (await browser.newPage());
    page.on('pageerror', (error) => pageErrors.push(String(error)));
    page.on('console', (message) => {
      // CSP violations and script errors surface as console errors; a refused /stats poll
      // (the test stopped that server) is a network event, not a page defect.
      if (message.type() === 'error' && !message.text().startsWith('Failed to load resource')) {
        pageErrors.push(message.text());
      }
    });
  });

  after(async () => {
    await browser?.close();
    if (profile) rmSync(profile, { recursive: true, force: true });
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
  it('GET /stats is the live connection count as JSON; other methods get 405', async () => {
    const server = await startServer(['--stats-interval=0']);
    try {
      const base = `http://127.0.0.1:${server.app.port}`;
      assert.deepEqual(await (await fetch(`${base}/stats`)).json(), { connections: 0, mode: 'echo' });
      const client = await TestClient.open(server.url);
      assert.deepEqual(await (await fetch(`${base}/stats`)).json(), { connections: 1, mode: 'echo' });
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
