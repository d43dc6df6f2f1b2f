import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type Received, TestClient } from './helpers/clients.js';
import { metricValue, waitForMetric } from './helpers/metrics.js';
import { RedisServer, spawnNode } from './helpers/redis.js';
import type { SpawnedServer } from './helpers/server.js';

const text = (message: Received): string =>
  message.isBinary ? `bin:${message.data.toString('hex')}` : message.data.toString();

async function receiveAll(client: TestClient, count: number): Promise<string[]> {
  const got: string[] = [];
  for (let i = 0; i < count; i++) got.push(text(await client.next(10_000)));
  return got;
}

/** Receives up to and including `marker`; proves nothing else arrived before it. */
async function receiveUntil(client: TestClient, marker: string): Promise<string[]> {
  const got: string[] = [];
  for (let i = 0; i < 10_000; i++) {
    const message = text(await client.next(10_000));
    got.push(message);
    if (message === marker) return got;
  }
  assert.fail(`no ${marker}`);
}

describe('backplane: several wshub processes on one Redis', () => {
  let redis: RedisServer;
  const nodes: SpawnedServer[] = [];
  before(async () => {
    redis = await RedisServer.start();
  });
  after(async () => {
    for (const node of nodes) node.kill('SIGKILL');
    await redis.stop();
  });
  const node = async (extra: string[] = []): Promise<SpawnedServer> => {
    const spawned = await spawnNode(redis, extra);
    nodes.push(spawned);
    return spawned;
  };

  it('three nodes: broadcasts from A and B reach every client exactly once, each sender in order, types kept', async () => {
    const [a, b, c] = await Promise.all([node(), node(), node()]);
    const [a1, a2, b1, c1] = await Promise.all([
      TestClient.open(a.url),
      TestClient.open(a.url),
      TestClient.open(b.url),
      TestClient.open(c.url),
    ]);
    // A node receives a room's messages once its subscription is active (per-room routing, issue 18).
    for (const n of [a, b, c]) await waitForMetric(n.metricsUrl, 'wshub_backplane_subscribed_rooms', 1);
    const count = 150;
    const fromA = Array.from({ length: count }, (_, i) =>
      i % 10 === 9 ? `bin:${(i % 256).toString(16).padStart(2, '0')}` : `a${i}`,
    );
    const fromB = Array.from({ length: count }, (_, i) => `B${i}`);
    const sendAll = async (client: TestClient, messages: string[]): Promise<void> => {
      for (const message of messages) {
        if (message.startsWith('bin:'))
          await client.send(Buffer.from(message.slice(4), 'hex'), { binary: true });
        else await client.send(message);
      }
    };
    await Promise.all([sendAll(a1, fromA), sendAll(b1, fromB)]);

    for (const client of [a1, a2, b1, c1]) {
      const got = await receiveAll(client, 2 * count);
      const fromAGot = got.filter((m) => !m.startsWith('B'));
      assert.deepEqual(fromAGot, fromA, 'A’s messages, once each, in A’s order');
      assert.deepEqual(
        got.filter((m) => m.startsWith('B')),
        fromB,
        'B’s messages, once each, in B’s order',
      );
    }
    // A duplicate would have come before this marker (same sender, same order).
    await a1.send('end');
    for (const client of [a1, a2, b1, c1]) assert.deepEqual(await receiveUntil(client, 'end'), ['end']);

    assert.equal(
      await waitForMetric(a.metricsUrl, 'wshub_backplane_messages_published_total', count + 1),
      count + 1,
    );
    assert.equal(
      await waitForMetric(c.metricsUrl, 'wshub_backplane_messages_received_total', 2 * count + 1),
      2 * count + 1,
    );
    assert.equal(await metricValue(b.metricsUrl, 'wshub_backplane_messages_received_total'), count + 1);
    assert.equal(await metricValue(a.metricsUrl, 'wshub_backplane_messages_received_total'), count);
    assert.equal(await metricValue(b.metricsUrl, 'wshub_backplane_connected'), 1);
    assert.equal(await metricValue(c.metricsUrl, 'wshub_backplane_messages_missed_total'), 0);
    assert.equal(
      await metricValue(c.metricsUrl, 'wshub_backplane_delivery_latency_seconds_count'),
      2 * count + 1,
    );
    // C has one client: every remote message was delivered to it once.
    assert.equal(await metricValue(c.metricsUrl, 'websocket_messages_delivered_total'), 2 * count + 1);
    const ready = await fetch(`${b.metricsUrl}/readyz`);
    assert.equal(ready.status, 200);
    assert.match(await ready.text(), /^ready\nbackplane: connected, redis:\/\/127\.0\.0\.1:\d+\/0\n$/);
    await Promise.all([a1, a2, b1, c1].map((client) => client.close()));
  });

  it('two nodes: rooms stay isolated across nodes', async () => {
    const [a, b] = await Promise.all([node(), node()]);
    const [aRed, bRed, bBlue, bLobby] = await Promise.all([
      TestClient.open(`ws://127.0.0.1:${a.port}/ws/red`),
      TestClient.open(`ws://127.0.0.1:${b.port}/ws/red`),
      TestClient.open(`ws://127.0.0.1:${b.port}/ws/blue`),
      TestClient.open(b.url),
    ]);
    await waitForMetric(b.metricsUrl, 'wshub_backplane_subscribed_rooms', 3);
    await aRed.send('red only');
    assert.equal(text(await bRed.next()), 'red only');
    assert.equal(text(await aRed.next()), 'red only');
    // Each room's own marker, sent from A, must be the first thing its clients on B see.
    const aBlue = await TestClient.open(`ws://127.0.0.1:${a.port}/ws/blue`);
    const aLobby = await TestClient.open(a.url);
    await waitForMetric(a.metricsUrl, 'wshub_backplane_subscribed_rooms', 3);
    await aBlue.send('blue marker');
    await aLobby.send('lobby marker');
    assert.deepEqual(await receiveUntil(bBlue, 'blue marker'), ['blue marker']);
    assert.deepEqual(await receiveUntil(bLobby, 'lobby marker'), ['lobby marker']);
    await Promise.all([aRed, bRed, bBlue, bLobby, aBlue, aLobby].map((client) => client.close()));
  });

  it('SIGTERM of one node does not disturb the others', async () => {
    const [a, b, c] = await Promise.all([node(), node(), node()]);
    const [a1, b1, c1] = await Promise.all([
      TestClient.open(a.url),
      TestClient.open(b.url),
      TestClient.open(c.url),
    ]);
    for (const n of [a, b, c]) await waitForMetric(n.metricsUrl, 'wshub_backplane_subscribed_rooms', 1);
    await a1.send('before');
    for (const client of [a1, b1, c1]) assert.equal(text(await client.next()), 'before');

    c.kill('SIGTERM');
    assert.equal((await c1.closed).code, 1001);
    assert.deepEqual(await c.exited, { code: 0, signal: null });

    await a1.send('after');
    await b1.send('from b');
    // Two senders: no order between them, only within each.
    assert.deepEqual((await receiveAll(b1, 2)).sort(), ['after', 'from b']);
    assert.deepEqual((await receiveAll(a1, 2)).sort(), ['after', 'from b']);
    for (const n of [a, b]) {
      assert.equal(n.stdout.count(/Backplane disconnected|error/i), 0, n.stdout.lines.join('\n'));
      assert.equal(await metricValue(n.metricsUrl, 'wshub_backplane_connected'), 1);
    }
    await Promise.all([a1.close(), b1.close()]);
  });
});
