import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { rawHandshake, TestClient } from './helpers/clients.js';
import { FrameReader } from './helpers/frames.js';
import { metricValue, waitForMetric } from './helpers/metrics.js';
import { type InProcessServer, startServer } from './helpers/server.js';

let server: InProcessServer | undefined;
const cleanups: Array<() => void> = [];

afterEach(async () => {
  for (const cleanup of cleanups.splice(0)) cleanup();
  await server?.app.stop();
  server = undefined;
});

const MESSAGE_BYTES = 64 * 1024;
// Loopback socket buffers can hold several MiB before the server's own buffer grows: bound the flood well above that.
const MAX_MESSAGES = 2000;

describe('slow consumers', () => {
  it('closes a client that stops reading with 1008 while the others keep receiving', async () => {
    server = await startServer(['--mode=broadcast', '--stats-interval=0', '--max-buffered-bytes=256KiB']);
    const s = server;
    const sender = await TestClient.open(s.url);
    const fast = await TestClient.open(s.url);
    const { socket: slow, response } = await rawHandshake(s.app.port);
    assert.match(response, /^HTTP\/1\.1 101 /);
    slow.pause();
    cleanups.push(
      () => sender.ws.terminate(),
      () => fast.ws.terminate(),
      () => slow.destroy(),
    );
    await waitForMetric(s.metricsUrl, 'websocket_connected_clients', 3);

    const payload = Buffer.alloc(MESSAGE_BYTES, 0x61);
    let sent = 0;
    while (sent < MAX_MESSAGES && (s.log.count(/Closing slow consumer/) === 0 || sent < 2)) {
      payload.writeUInt32BE(sent, 0);
      await sender.send(payload, { binary: true });
      sent++;
      // Every message reaches the fast client before the next is sent: the slow one delays nobody.
      const got = await fast.next();
      assert.equal(got.data.readUInt32BE(0), sent - 1);
      await sender.next();
    }
    assert.ok(
      sent < MAX_MESSAGES,
      `slow consumer not cut off after ${sent} messages of ${MESSAGE_BYTES} bytes`,
    );
    assert.match(
      await s.log.waitFor(/Closing slow consumer/),
      /Closing slow consumer 127\.0\.0\.1:\d+ with 1008: \d+ bytes waiting to be sent, limit 262144/,
    );

    // The slow client, reading again, finds what was buffered for it and then a 1008 close frame.
    const reader = new FrameReader(slow);
    slow.resume();
    const close = await reader.untilClose(20_000);
    assert.equal(close.code, 1008);
    assert.match(close.reason, /slow consumer/);
    assert.ok(close.dataFrames < sent, 'the dropped message was not delivered');
    slow.destroy();

    assert.equal(await waitForMetric(s.metricsUrl, 'websocket_connected_clients', 2), 2);
    assert.equal(
      await metricValue(s.metricsUrl, 'websocket_server_disconnects_total', { reason: 'slow_consumer' }),
      1,
    );
    assert.equal(await metricValue(s.metricsUrl, 'websocket_disconnections_total'), 1);
    const dropped = await metricValue(s.metricsUrl, 'websocket_messages_dropped_total', {
      reason: 'slow_consumer',
    });
    assert.equal(dropped, 1);
    assert.equal(
      await metricValue(s.metricsUrl, 'websocket_messages_delivered_total'),
      2 * sent + close.dataFrames,
    );
    assert.equal(s.log.count(/Closing slow consumer/), 1);

    // And the hub goes on for everyone else.
    await sender.send('after the cut');
    assert.equal((await fast.next()).data.toString(), 'after the cut');
  });

  it('removes a client that vanishes mid-broadcast once: one disconnection, exact gauge, one log line', async () => {
    server = await startServer(['--mode=broadcast', '--stats-interval=0']);
    const s = server;
    const sender = await TestClient.open(s.url);
    const { socket: vanishing } = await rawHandshake(s.app.port);
    vanishing.pause();
    cleanups.push(() => sender.ws.terminate());
    const peer = `127.0.0.1:${vanishing.localPort}`;
    await waitForMetric(s.metricsUrl, 'websocket_connected_clients', 2);

    const payload = Buffer.alloc(16 * 1024, 0x62);
    for (let i = 0; i < 20; i++) void sender.send(payload, { binary: true });
    vanishing.resetAndDestroy();
    for (let i = 0; i < 100; i++) await sender.send(payload, { binary: true });
    await sender.take(120);

    assert.equal(await waitForMetric(s.metricsUrl, 'websocket_connected_clients', 1), 1);
    assert.equal(await metricValue(s.metricsUrl, 'websocket_disconnections_total'), 1);
    await s.log.waitFor(new RegExp(`WebSocket disconnected: ${peer}$`));
    assert.equal(s.log.count(new RegExp(`WebSocket disconnected: ${peer}$`)), 1);
    assert.ok(s.log.count(/WebSocket write to .* failed/) <= 1);
    const writeErrors = await metricValue(s.metricsUrl, 'websocket_server_disconnects_total', {
      reason: 'write_error',
    });
    assert.ok(writeErrors === 0 || writeErrors === 1, `write_error counted ${writeErrors} times`);
  });
});
