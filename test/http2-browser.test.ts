import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type Browser, launchChromium } from './helpers/browser.js';
import { makeCertificate, makeTempDir, requireOpenssl } from './helpers/certs.js';
import { metricValue } from './helpers/metrics.js';
import { type InProcessServer, startServer } from './helpers/server.js';

/**
 * Issue 17, README "WebSockets over HTTP/2" → Browsers: with `--tls --http2` Chromium loads the
 * console over h2 and opens its WebSocket as an extended CONNECT stream of that same connection
 * (RFC 8441), not as a separate HTTP/1.1 upgrade. A real browser, not the code under test.
 */
describe('headless Chromium against wshub --tls --http2', () => {
  let server: InProcessServer;
  let browser: Browser;
  let cleanup = (): void => {};

  before(async () => {
    requireOpenssl();
    const temp = makeTempDir();
    cleanup = temp.cleanup;
    const cert = makeCertificate(temp.dir, 'server');
    server = await startServer([
      '--stats-interval=0',
      '--tls',
      `--tls-cert-file=${cert.certFile}`,
      `--tls-key-file=${cert.keyFile}`,
      '--http2',
    ]);
    browser = await launchChromium(undefined, { ignoreHTTPSErrors: true });
  });

  after(async () => {
    await browser?.close();
    await server?.app.stop();
    cleanup();
  });

  it('loads the console over h2 and opens its WebSocket as a stream of the same HTTP/2 connection', async () => {
    const page = browser.page;
    const response = await page.goto(`https://127.0.0.1:${server.app.port}/`);
    assert.equal(response?.status(), 200);
    // HTTP/2 requests carry pseudo-headers; an HTTP/1.1 request has none.
    assert.equal((await response?.request().allHeaders())?.[':scheme'], 'https');
    await page.click('#connect');
    await page.locator('#state[data-state=open]').waitFor();
    await page.fill('#message', 'from a browser over h2');
    await page.click('#send');
    await page
      .locator('#log li.received span')
      .filter({ hasText: /^from a browser over h2$/ })
      .waitFor();
    const byVersion = (version: string) =>
      metricValue(server.metricsUrl, 'wshub_connections_by_http_version_total', { http_version: version });
    assert.equal(await byVersion('2'), 1);
    assert.equal(await byVersion('1.1'), 0);
    // One HTTP/2 connection: the page, its script and its WebSocket.
    assert.equal(await metricValue(server.metricsUrl, 'wshub_http2_connections_total'), 1);
    await page.click('#disconnect');
    await page.locator('#state[data-state=closed]').waitFor();
    assert.deepEqual(browser.errors, []);
  });
});
