import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect as netConnect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { TestClient } from './helpers/clients.js';
import { metricValue, waitForMetric } from './helpers/metrics.js';
import { type InProcessServer, startServer } from './helpers/server.js';
import { closedByServer, readHead, sendUpgrade } from './helpers/upgrade.js';

describe('opening handshake validation (RFC 6455 §4.2.1)', () => {
  let server: InProcessServer;
  before(async () => {
    server = await startServer(['--stats-interval=0', '--max-header-size=4KiB']);
  });
  after(() => server.app.stop());

  const badHandshakes = () =>
    metricValue(server.metricsUrl, 'websocket_upgrades_rejected_total', { reason: 'bad_handshake' });

  it('answers an invalid Sec-WebSocket-Key with 400 and closes', async () => {
    const before = (await badHandshakes()) ?? 0;
    for (const key of ['Sec-WebSocket-Key: short', 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ']) {
      const response = await sendUpgrade(server.app.port, { headers: [key] });
      assert.equal(response.statusLine, 'HTTP/1.1 400 Bad Request', key);
      assert.equal(response.headers.connection, 'close');
      await closedByServer(response.socket);
    }
    const missing = await sendUpgrade(server.app.port, { omit: ['sec-websocket-key'] });
    assert.equal(missing.statusLine, 'HTTP/1.1 400 Bad Request');
    await closedByServer(missing.socket);
    assert.equal(await badHandshakes(), before + 3);
    await server.log.waitFor(
      /upgrade refused: 127\.0\.0\.1:\d+ 400 bad_handshake \(missing or invalid Sec-WebSocket-Key\)/,
    );
  });

  it('answers an unsupported Sec-WebSocket-Version with 400 and Sec-WebSocket-Version: 13 (§4.2.2)', async () => {
    const before = (await badHandshakes()) ?? 0;
    for (const version of [
      'Sec-WebSocket-Version: 8',
      'Sec-WebSocket-Version: 14',
      'Sec-WebSocket-Version: 13, 8',
    ]) {
      const response = await sendUpgrade(server.app.port, { headers: [version] });
      assert.equal(response.statusLine, 'HTTP/1.1 400 Bad Request', version);
      assert.equal(response.headers['sec-websocket-version'], '13', version);
      response.socket.destroy();
    }
    const missing = await sendUpgrade(server.app.port, { omit: ['sec-websocket-version'] });
    assert.equal(missing.statusLine, 'HTTP/1.1 400 Bad Request');
    assert.equal(missing.headers['sec-websocket-version'], '13');
    missing.socket.destroy();
    assert.equal(await badHandshakes(), before + 4);
  });

  it('answers a non-GET upgrade with 405 and Allow: GET', async () => {
    const response = await sendUpgrade(server.app.port, { method: 'POST' });
    assert.equal(response.statusLine, 'HTTP/1.1 405 Method Not Allowed');
    assert.equal(response.headers.allow, 'GET');
    await closedByServer(response.socket);
  });

  it('answers an upgrade to another protocol with 400', async () => {
    const response = await sendUpgrade(server.app.port, { headers: ['Upgrade: h2c'] });
    assert.equal(response.statusLine, 'HTTP/1.1 400 Bad Request');
    await closedByServer(response.socket);
  });

  it('answers a request without Upgrade with 426 and the headers it needs, not counted as a refused upgrade', async () => {
    const before = (await badHandshakes()) ?? 0;
    const response = await sendUpgrade(server.app.port, { omit: ['upgrade', 'connection'] });
    response.socket.destroy();
    assert.equal(response.statusLine, 'HTTP/1.1 426 Upgrade Required');
    assert.equal(response.headers.upgrade, 'websocket');
    assert.equal(response.headers['sec-websocket-version'], '13');
    assert.equal(await badHandshakes(), before);
  });

  it('answers an unknown path with 404, counted as not_found', async () => {
    const response = await sendUpgrade(server.app.port, { path: '/nope' });
    response.socket.destroy();
    assert.equal(response.statusLine, 'HTTP/1.1 404 Not Found');
    assert.equal(
      await metricValue(server.metricsUrl, 'websocket_upgrades_rejected_total', { reason: 'not_found' }),
      1,
    );
  });

  it('answers request headers over --max-header-size with 431, counted as header_too_large', async () => {
    const response = await sendUpgrade(server.app.port, { headers: [`X-Padding: ${'a'.repeat(6000)}`] });
    assert.equal(response.statusLine, 'HTTP/1.1 431 Request Header Fields Too Large');
    await closedByServer(response.socket);
    assert.equal(
      await metricValue(server.metricsUrl, 'websocket_upgrades_rejected_total', {
        reason: 'header_too_large',
      }),
      1,
    );
    await server.log.waitFor(/upgrade refused: 127\.0\.0\.1:\d+ 431 header_too_large/);
    // Headers within the limit still upgrade.
    const fits = await sendUpgrade(server.app.port, { headers: [`X-Padding: ${'a'.repeat(3000)}`] });
    fits.socket.destroy();
    assert.equal(fits.status, 101);
  });

  it('answers malformed HTTP with 400, counted as bad_request', async () => {
    const socket = netConnect(server.app.port, '127.0.0.1');
    await once(socket, 'connect');
    socket.write('GET /ws HTTP/1.1\r\nBad Header Line\r\n\r\n');
    const head = await readHead(socket);
    assert.equal(head.split('\r\n')[0], 'HTTP/1.1 400 Bad Request');
    await closedByServer(socket);
    assert.equal(
      await metricValue(server.metricsUrl, 'websocket_upgrades_rejected_total', { reason: 'bad_request' }),
      1,
    );
  });
});

describe('handshake timeout (--handshake-timeout)', () => {
  let server: InProcessServer;
  before(async () => {
    server = await startServer(['--stats-interval=0', '--handshake-timeout=300ms']);
  });
  after(() => server.app.stop());

  it('closes sockets that send nothing or an incomplete request, and leaves upgraded ones alone', async () => {
    const upgraded = await TestClient.open(server.url);
    const silent = netConnect(server.app.port, '127.0.0.1');
    const partial = netConnect(server.app.port, '127.0.0.1');
    await Promise.all([once(silent, 'connect'), once(partial, 'connect')]);
    partial.write('GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n');
    assert.equal((await readHead(partial)).split('\r\n')[0], 'HTTP/1.1 408 Request Timeout');
    await Promise.all([closedByServer(silent), closedByServer(partial)]);
    assert.equal(
      await waitForMetric(server.metricsUrl, 'websocket_upgrades_rejected_total', 2, {
        reason: 'handshake_timeout',
      }),
      2,
    );
    // The established WebSocket outlived the handshake timeout and still echoes.
    await upgraded.send('after the timeout');
    assert.equal((await upgraded.next()).data.toString(), 'after the timeout');
    assert.equal(server.app.connectionCount(), 1);
    await upgraded.close();
  });
});
