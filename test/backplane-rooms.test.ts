import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { TestClient } from './helpers/clients.js';
import { metricValue, waitForMetric } from './helpers/metrics.js';
import { RedisServer, spawnNode } from './helpers/redis.js';
import type { SpawnedServer } from './helpers/server.js';
import { waitUntil } from './helpers/wait.js';

/** Issue 18: a node receives a room's messages only while one of its clients is in the room. */
describe('backplane: per-room routing (several wshub processes on one Redis)', () => {
  let redis: RedisServer;
  let admin: Redis;
  const nodes: SpawnedServer[] = [];
  before(async () => {
    redis = await RedisServer.start();
    admin = new Redis({ host: '127.0.0.1', port: redis.port, lazyConnect: true });
    await admin.connect();
  });
  after(async () => {
    for (const node of nodes) node.kill('SIGKILL');
    admin.disconnect();
    await redis.stop();
  });
  const node = async (): Promise<SpawnedServer> => {
    const spawned = await spawnNode(redis, ['--backplane-room-linger=300ms']);
    nodes.push(spawned);
    return spawned;
  };
  const subscribers = async (channel: string): Promise<number> => {
    const reply = (await admin.pubsub('NUMSUB', channel)) as [string, number];
    return Number(reply[1]);
  };
  const metric = async (n: SpawnedServer, name: string): Promise<number | undefined> =>
    metricValue(n.metricsUrl, name);

  it('a flooded room reaches only the nodes with a member in it; joining and leaving (after the linger) subscribe and unsubscribe', async () => {
    const [a, b, c] = await Promise.all([node(), node(), node()]);
    const [aFlood, bFlood, cQuiet] = await Promise.all([
      TestClient.open(`ws://127.0.0.1:${a.port}/ws/flood`),
      TestClient.open(`ws://127.0.0.1:${b.port}/ws/flood`),
      TestClient.open(`ws://127.0.0.1:${c.port}/ws/quiet`),
    ]);
    await waitUntil(async () => (await subscribers('wshub:{flood}')) === 2, 'A and B subscribe {flood}');
    // C subscribes on its own schedule: on a loaded machine it may come after A and B.
    await waitUntil(async () => (await subscribers('wshub:{quiet}')) === 1, 'C subscribes {quiet}');
    assert.equal(await subscribers('wshub'), 0, 'nobody listens on one channel for everything');
    assert.equal(await metric(c, 'wshub_backplane_subscribed_rooms'), 1);

    const count = 2000;
    for (let i = 0; i < count; i++) void aFlood.send(`m${i}`);
    await aFlood.send('last');
    const got = (await bFlood.take(count + 1, 20_000)).map((m) => m.data.toString());
    assert.equal(got.at(-1), 'last');
    assert.equal(
      await waitForMetric(a.metricsUrl, 'wshub_backplane_messages_published_total', count + 1),
      count + 1,
    );
    // Published once, to the room's channel: B received each once, C none at all (not even to drop it).
    assert.equal(await metric(b, 'wshub_backplane_messages_inbound_total'), count + 1);
    assert.equal(await metric(b, 'wshub_backplane_messages_received_total'), count + 1);
    assert.equal(await metric(c, 'wshub_backplane_messages_inbound_total'), 0);
    assert.equal(await metric(c, 'wshub_backplane_messages_received_total'), 0);
    assert.equal(await metric(c, 'wshub_backplane_room_subscribes_total'), 1);

    // A member on C: C subscribes and gets the room's messages from then on.
    const cFlood = await TestClient.open(`ws://127.0.0.1:${c.port}/ws/flood`);
    await waitUntil(async () => (await subscribers('wshub:{flood}')) === 3, 'C subscribes {flood}');
    assert.equal(await metric(c, 'wshub_backplane_room_subscribes_total'), 2);
    await aFlood.send('now C too');
    assert.equal((await cFlood.next()).data.toString(), 'now C too');
    // It leaves and comes back within the linger: no churn.
    await cFlood.close();
    const cAgain = await TestClient.open(`ws://127.0.0.1:${c.port}/ws/flood`);
    await new Promise((resolve) => setTimeout(resolve, 500));
    assert.equal(await metric(c, 'wshub_backplane_room_subscribes_total'), 2);
    assert.equal(await metric(c, 'wshub_backplane_room_unsubscribes_total'), 0);
    // It leaves for good: after the linger C unsubscribes and the flood costs it nothing again.
    await cAgain.close();
    assert.equal(await waitForMetric(c.metricsUrl, 'wshub_backplane_room_unsubscribes_total', 1), 1);
    assert.equal(await metric(c, 'wshub_backplane_subscribed_rooms'), 1);
    assert.equal(await subscribers('wshub:{flood}'), 2);
    const inboundBefore = await metric(c, 'wshub_backplane_messages_inbound_total');
    for (let i = 0; i < 500; i++) void aFlood.send(`again${i}`);
    await aFlood.send('last again');
    await bFlood.take(1 + 500 + 1, 20_000);
    assert.equal(await metric(c, 'wshub_backplane_messages_inbound_total'), inboundBefore);
    assert.equal(await metric(c, 'wshub_backplane_messages_missed_total'), 0);
    assert.equal(await metric(b, 'wshub_backplane_messages_missed_total'), 0);
    await Promise.all([aFlood, bFlood, cQuiet].map((client) => client.close()));
  });
});
