import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { rawHttp } from './helpers/clients.js';
import { type InProcessServer, startServer } from './helpers/server.js';

describe('the WebSocket port over plain HTTP', () => {
  let server: InProcessServer;
  before(async () => {
    server = await startServer(['--stats-interval=0']);
  });
  after(() => server.app.stop());

  it('answers a plain GET /ws with 426 Upgrade Required and an Upgrade header', async () => {
    const response = await fetch(`http://127.0.0.1:${server.app.port}/ws`);
    assert.equal(response.status, 426);
    assert.equal(response.headers.get('upgrade'), 'websocket');
    assert.match(await response.text(), /Upgrade Required/);
  });

  it('answers any other path with 404 (GET / is the console, see console.test.ts)', async () => {
    for (const path of ['/wss', '/ws/../x', '/favicon.ico', '/index.html']) {
      const response = await fetch(`http://127.0.0.1:${server.app.port}${path}`);
      assert.equal(response.status, 404, path);
      await response.text();
    }
  });

  it('never serves metrics on the WebSocket port', async () => {
    const response = await fetch(`http://127.0.0.1:${server.app.port}/metrics`);
    assert.equal(response.status, 404);
    assert.doesNotMatch(await response.text(), /websocket_connections/);
  });

  it('refuses a WebSocket upgrade on another path with 404', async () => {
    const response = await rawHttp(
      server.app.port,
      'GET /other HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
        'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
    );
    assert.match(response, /^HTTP\/1\.1 404 /);
  });
});
