import assert from 'node:assert/strict';
import { once } from 'node:events';
import { after, before, describe, it } from 'node:test';
import { rawHandshake, TestClient } from './helpers/clients.js';
import { metricValue, waitForMetric } from './helpers/metrics.js';
import { type InProcessServer, startServer } from './helpers/server.js';

describe('metrics port', () => {
  let server: InProcessServer;
  before(async () => {
    server = await startServer(['--stats-interval=0']);
  });
  after(() => server.app.stop());

  it('serves Prometheus text with websocket_connections and the default process metrics', async () => {
    const response = await fetch(`${server.metricsUrl}/metrics`);
    assert.equal(response.status, 200);
    assert.match(response.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
    const text = await response.text();
    assert.match(text, /^# TYPE websocket_connections gauge$/m);
    assert.match(text, /^process_resident_memory_bytes \d+/m);
    assert.match(text, /^nodejs_eventloop_lag_seconds /m);
  });

  it('keeps websocket_connections exact through clean closes and abrupt drops', async () => {
    assert.equal(await metricValue(server.metricsUrl, 'websocket_connections'), 0);
    const clients = await Promise.all(Array.from({ length: 5 }, () => TestClient.open(server.url)));
    const raw = await Promise.all(Array.from({ length: 3 }, () => rawHandshake(server.app.port)));
    assert.equal(await waitForMetric(server.metricsUrl, 'websocket_connections', 8), 8);

    await clients[0]?.close();
    await clients[1]?.close(1001);
    assert.equal(await waitForMetric(server.metricsUrl, 'websocket_connections', 6), 6);

    // Abrupt drops: TCP reset / FIN without any close frame.
    clients[2]?.ws.terminate();
    for (const { socket } of raw) socket.destroy();
    assert.equal(await waitForMetric(server.metricsUrl, 'websocket_connections', 2), 2);

    await Promise.all([clients[3]?.close(), clients[4]?.close()]);
    assert.equal(await waitForMetric(server.metricsUrl, 'websocket_connections', 0), 0);
    // Never negative, even after everything is gone.
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(await metricValue(server.metricsUrl, 'websocket_connections'), 0);
  });

  it('answers /livez and /readyz with 200 while running, and 404 elsewhere', async () => {
    const live = await fetch(`${server.metricsUrl}/livez`);
    const ready = await fetch(`${server.metricsUrl}/readyz`);
    const other = await fetch(`${server.metricsUrl}/nope`);
    assert.deepEqual([live.status, ready.status, other.status], [200, 200, 404]);
    await Promise.all([live.text(), ready.text(), other.text()]);
  });

  it('counts a half-open client (socket half-closed) correctly once it is gone', async () => {
    const { socket } = await rawHandshake(server.app.port);
    assert.equal(await waitForMetric(server.metricsUrl, 'websocket_connections', 1), 1);
    socket.end();
    await once(socket, 'close');
    assert.equal(await waitForMetric(server.metricsUrl, 'websocket_connections', 0), 0);
  });
});

describe('metrics disabled', () => {
  it('runs no metrics server and says so in the log', async () => {
    const server = await startServer(['--no-metrics', '--stats-interval=0']);
    try {
      assert.equal(server.app.metricsPort, undefined);
      assert.ok(server.log.lines.includes('Metrics server disabled (metrics.enabled: false)'));
    } finally {
      await server.app.stop();
    }
  });
});
