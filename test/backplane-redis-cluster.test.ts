import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { keySlot } from '../src/backplane/key-slot.js';
import { roomChannel, roomHistoryKey, roomMetaKey } from '../src/backplane/room-keys.js';
import { TestClient } from './helpers/clients.js';
import { metricValue, sampleValue, waitForMetric } from './helpers/metrics.js';
import { type ClusterShard, RedisClusterFixture } from './helpers/redis-cluster.js';
import { type SpawnedServer, spawnServer } from './helpers/server.js';
import { payloadsFrom, V1Client } from './helpers/v1.js';
import { waitUntil } from './helpers/wait.js';

/** One short-lived connection to one cluster node (not the cluster client: this asks that node only). */
async function withRedis<T>(port: number, work: (redis: Redis) => Promise<T>): Promise<T> {
  const redis = new Redis({ host: '127.0.0.1', port, lazyConnect: true, maxRetriesPerRequest: 0 });
  try {
    await redis.connect();
    return await work(redis);
  } finally {
    redis.disconnect();
  }
}

async function spawnClusterNode(url: string, extra: readonly string[] = []): Promise<SpawnedServer> {
  const node = await spawnServer([
    '--mode=broadcast',
    '--stats-interval=0',
    `--backplane=${url}`,
    '--backplane-reconnect-max=200ms',
    '--backplane-room-linger=200ms',
    ...extra,
  ]);
  try {
    await node.stdout.waitFor(/Backplane connected to redis-cluster:\/\/\S+ \(3 shards\)/, 30_000);
  } catch (error) {
    node.kill('SIGKILL');
    throw error;
  }
  return node;
}

/** Messages a client received, as text, as they arrive (no awaiting one by one). */
function collect(client: TestClient): string[] {
  const got: string[] = [];
  client.ws.on('message', (data: Buffer) => got.push(data.toString()));
  return got;
}

/** Issue 18: wshub over a 3-master, 3-replica Redis Cluster with sharded pub/sub. */
describe('backplane: Redis Cluster (sharded pub/sub), three wshub nodes', () => {
  let cluster: RedisClusterFixture;
  let shards: ClusterShard[];
  /** One room per shard, in shard order. */
  let rooms: string[];
  const nodes: SpawnedServer[] = [];
  const clients: TestClient[] = [];

  before(async () => {
    cluster = await RedisClusterFixture.start({ masters: 3, nodeTimeoutMs: 1000 });
    shards = await cluster.shards();
    rooms = [];
    for (const shard of shards) {
      for (let i = 0; ; i++) {
        const room = `room-${i}`;
        const slot = keySlot(roomChannel('wshub', room));
        if (!shard.ranges.some(([from, to]) => slot >= from && slot <= to) || rooms.includes(room)) continue;
        rooms.push(room);
        break;
      }
    }
    nodes.push(...(await Promise.all([0, 1, 2].map(() => spawnClusterNode(cluster.url)))));
  });
  after(async () => {
    await Promise.all(clients.map((client) => client.close().catch(() => {})));
    for (const node of nodes) node.kill('SIGKILL');
    await cluster?.stop();
  });

  const open = async (node: SpawnedServer, room: string): Promise<TestClient> => {
    const client = await TestClient.open(`ws://127.0.0.1:${node.port}/ws/${room}`);
    clients.push(client);
    return client;
  };

  it('routes each room through the shard owning CLUSTER KEYSLOT <room>; a node without members in a flooded room receives none of it', async () => {
    const [a, b, c] = nodes as [SpawnedServer, SpawnedServer, SpawnedServer];
    for (const room of rooms) {
      assert.equal(
        await cluster.keySlot(room),
        keySlot(roomChannel('wshub', room)),
        'the hash tag is the room',
      );
    }
    assert.equal(await cluster.keySlot('~'), keySlot(roomChannel('wshub', '')), 'the default room is {~}');
    const [r0, r1, r2] = rooms as [string, string, string];
    // Room r0 lives on A and B; C has a client in r2 only.
    const aR0 = await open(a, r0);
    const bR0 = await open(b, r0);
    const cR2 = await open(c, r2);
    const bR1 = await open(b, r1);
    const aR1 = await open(a, r1);
    await waitForMetric(a.metricsUrl, 'wshub_backplane_subscribed_rooms', 2);
    await waitForMetric(b.metricsUrl, 'wshub_backplane_subscribed_rooms', 2);
    await waitForMetric(c.metricsUrl, 'wshub_backplane_subscribed_rooms', 1);
    // Sharded subscriptions sit on the master of the room's slot, and only there.
    const [s0, s1] = shards as [ClusterShard, ClusterShard];
    assert.equal(await cluster.shardSubscribers(s0.masterPort, roomChannel('wshub', r0)), 2);
    assert.equal(await cluster.shardSubscribers(s1.masterPort, roomChannel('wshub', r0)), 0);

    const count = 1000;
    for (let i = 0; i < count; i++) void aR0.send(`m${i}`);
    await aR0.send('end');
    const got = (await bR0.take(count + 1, 30_000)).map((m) => m.data.toString());
    assert.deepEqual(
      got,
      [...Array.from({ length: count }, (_, i) => `m${i}`), 'end'],
      'all, once, in order',
    );
    await aR1.send('to r1');
    assert.equal((await bR1.next(10_000)).data.toString(), 'to r1');
    assert.equal(
      await waitForMetric(b.metricsUrl, 'wshub_backplane_messages_inbound_total', count + 2),
      count + 2,
    );
    assert.equal(await metricValue(c.metricsUrl, 'wshub_backplane_messages_inbound_total'), 0);
    assert.equal(await metricValue(c.metricsUrl, 'wshub_backplane_messages_missed_total'), 0);
    void cR2;

    // Every shard reachable: /readyz and the per-shard gauge say so, labelled by slot ranges.
    const ready = await fetch(`${a.metricsUrl}/readyz`);
    assert.equal(ready.status, 200);
    const readyText = await ready.text();
    assert.match(
      readyText,
      /backplane: connected, redis-cluster:\/\/127\.0\.0\.1:\d+,127\.0\.0\.1:\d+, shards: 0-\d+ connected, \d+-\d+ connected, \d+-16383 connected/,
    );
    const metrics = await (await fetch(`${a.metricsUrl}/metrics`)).text();
    for (const shard of shards) {
      const label = shard.ranges.map(([from, to]) => `${from}-${to}`).join(',');
      assert.equal(sampleValue(metrics, 'wshub_backplane_shard_connected', { shard: label }), 1, label);
    }
    assert.doesNotMatch(metrics, /shard="[^"]*127\.0\.0\.1/, 'no address in a label');
  });

  it("room history on the cluster: the room's channel, stream and meta hash share the room's slot; positions on every node, resume on another", async () => {
    const base = 'hist';
    const history = ['--history-size=1000', `--backplane-channel=${base}`];
    const [a, b] = await Promise.all([
      spawnClusterNode(cluster.url, history),
      spawnClusterNode(cluster.url, history),
    ]);
    try {
      const room = rooms[1] as string;
      const slot = await cluster.keySlot(room);
      for (const key of [roomChannel(base, room), roomHistoryKey(base, room), roomMetaKey(base, room)]) {
        assert.equal(await cluster.keySlot(key), slot, `${key} is in slot CLUSTER KEYSLOT ${room}`);
      }
      const onB = await V1Client.open(`ws://127.0.0.1:${b.port}/ws/${room}`);
      const [welcome] = await onB.waitFor(1);
      const epoch = welcome?.epoch ?? '';
      const sender = await open(a, room);
      const count = 50;
      for (let i = 1; i <= count; i++) void sender.send(`h${i}`);
      const frames = (await onB.waitFor(1 + count, 20_000)).slice(1);
      assert.deepEqual(
        payloadsFrom(frames, 0),
        Array.from({ length: count }, (_, i) => `h${i + 1}`),
      );
      // The history lives on the master that owns the room's slot, and nowhere else.
      const owner = await cluster.masterOf(slot);
      const stored = await withRedis(owner.masterPort, (redis) => redis.xlen(roomHistoryKey(base, room)));
      assert.equal(stored, count);
      for (const shard of shards.filter((candidate) => candidate.masterPort !== owner.masterPort)) {
        assert.equal(
          await withRedis(shard.masterPort, (redis) => redis.dbsize()),
          0,
          'no key on another shard',
        );
      }
      // Resumed on node A from a position B's client saw: the rest of the history, the same frames.
      const resumed = await V1Client.open(`ws://127.0.0.1:${a.port}/ws/${room}?since=${epoch}:20`);
      const replay = await resumed.waitFor(1 + count - 20, 20_000);
      assert.deepEqual(replay[0], { type: 'welcome', room, epoch, offset: 20 });
      assert.deepEqual(replay.slice(1), frames.slice(20));
      await Promise.all([onB.close(), resumed.close()]);
    } finally {
      a.kill('SIGKILL');
      b.kill('SIGKILL');
      await Promise.all([a.exited, b.exited]);
    }
  });

  it('kill -9 of a master while messages flow: the other shards never pause, the failed shard resumes after the promotion', async () => {
    const [a, b] = nodes as [SpawnedServer, SpawnedServer];
    const senders = await Promise.all(rooms.map((room) => open(a, room)));
    const receivers = await Promise.all(rooms.map((room) => open(b, room)));
    const received = receivers.map(collect);
    await waitForMetric(b.metricsUrl, 'wshub_backplane_subscribed_rooms', 3);
    const victim = shards[0] as ClusterShard;

    // Each room gets a numbered message every 20 ms; the receivers on B note when each arrives.
    const sentAt: number[][] = rooms.map(() => []);
    const arrivals = received.map(() => [] as number[]);
    let running = true;
    let sequence = 0;
    const sending = (async () => {
      while (running) {
        const n = sequence++;
        senders.forEach((sender, i) => {
          sentAt[i]?.push(performance.now());
          void sender.send(`${n}`).catch(() => {});
        });
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    })();
    receivers.forEach((receiver, i) => {
      receiver.ws.on('message', () => arrivals[i]?.push(performance.now()));
    });
    await waitUntil(() => received.every((got) => got.length >= 20), 'traffic flows in every room');

    const killedAt = performance.now();
    await cluster.server(victim.masterPort).kill();
    // /readyz names the unreachable shard (by slots, not address) and the node stays ready: local delivery goes on.
    await waitUntil(async () => {
      const response = await fetch(`${a.metricsUrl}/readyz`);
      const body = await response.text();
      return response.status === 200 && /2 of 3 shards connected; shard 0-\d+ unreachable/.test(body);
    }, '/readyz names the lost shard');
    // The replica takes over: CLUSTER SLOTS names a new master for the victim's slots.
    let promotedAt = 0;
    await waitUntil(
      async () => {
        try {
          const now = await cluster.masterOf(victim.ranges[0]?.[0] ?? 0);
          if (now.masterPort === victim.masterPort) return false;
          promotedAt = performance.now();
          return true;
        } catch {
          return false;
        }
      },
      'a replica is promoted',
      30_000,
    );
    // The failed shard's room resumes within seconds of the promotion.
    const beforeResume = received[0]?.length ?? 0;
    await waitUntil(() => (received[0]?.length ?? 0) > beforeResume + 10, 'room 0 is relayed again', 10_000);
    const resumedAt = arrivals[0]?.[beforeResume] ?? performance.now();
    // Some more traffic after the resume, then stop.
    await new Promise((resolve) => setTimeout(resolve, 500));
    running = false;
    await sending;
    const finalSequence = sequence;
    await waitUntil(
      () => received.slice(1).every((got) => got.at(-1) === `${finalSequence - 1}`),
      'the last message of the healthy shards',
      10_000,
    );

    // Healthy shards: every message, in order, none lost, and no long pause while the master was down.
    for (const i of [1, 2]) {
      const got = received[i] ?? [];
      const numbers = got.map(Number);
      const first = numbers[0] ?? 0;
      assert.deepEqual(
        numbers,
        Array.from({ length: finalSequence - first }, (_, k) => first + k),
        `room ${rooms[i]} on a healthy shard lost nothing`,
      );
      const during = (arrivals[i] ?? []).filter((t) => t >= killedAt && t <= promotedAt);
      let longestPause = 0;
      for (let k = 1; k < during.length; k++)
        longestPause = Math.max(longestPause, (during[k] ?? 0) - (during[k - 1] ?? 0));
      assert.ok(during.length > 0, `room ${rooms[i]} got messages during the failover`);
      assert.ok(longestPause < 1000, `room ${rooms[i]} paused ${longestPause} ms during the failover`);
    }
    // The failed shard's room: a gap (at most once: what was published to the dead master is lost), then order again.
    const resumed = (received[0] ?? []).slice(beforeResume).map(Number);
    for (let k = 1; k < resumed.length; k++) assert.equal(resumed[k], (resumed[k - 1] ?? 0) + 1);
    assert.ok(resumedAt - promotedAt < 5000, `resumed ${resumedAt - promotedAt} ms after the promotion`);

    assert.ok(((await metricValue(a.metricsUrl, 'wshub_backplane_topology_changes_total')) ?? 0) >= 1);
    assert.ok(
      ((await metricValue(a.metricsUrl, 'wshub_backplane_publish_errors_total')) ?? 0) > 0,
      'the dead shard refused fast',
    );
    // Refused at once by A (counted above), so not a gap B could see: A reuses those sequence numbers.
    await waitUntil(async () => (await fetch(`${a.metricsUrl}/readyz`)).status === 200, 'ready again');
    assert.equal(await waitForMetric(a.metricsUrl, 'wshub_backplane_connected', 1, {}, 10_000), 1);
    const label = victim.ranges.map(([from, to]) => `${from}-${to}`).join(',');
    assert.equal(await metricValue(a.metricsUrl, 'wshub_backplane_shard_connected', { shard: label }), 1);
    await a.stdout.waitFor(/Backplane: lost shard 0-\d+ of redis-cluster:\/\//);
    await a.stdout.waitFor(/Backplane: the Redis Cluster's slot map changed/);
  });

  it('room history: kill -9 of the master of a room while two nodes publish to it: a wshub.v1 client on a third node gets every message, once, in order, without a reset', async () => {
    // After the test above, the first shard has a promoted master without a replica: this one kills the second's.
    const room = rooms[1] as string;
    const slot = await cluster.keySlot(room);
    const victim = await cluster.masterOf(slot);
    assert.ok(victim.replicaPorts.length > 0, 'the shard has a replica to promote');
    const history = ['--history-size=10000', '--backplane-channel=failover'];
    const [b, ...publishers] = await Promise.all([0, 1, 2].map(() => spawnClusterNode(cluster.url, history)));
    try {
      const receiver = await V1Client.open(`ws://127.0.0.1:${b?.port}/ws/${room}`);
      await receiver.waitFor(1);
      const senders = await Promise.all(
        publishers.map((node) => TestClient.open(`ws://127.0.0.1:${node.port}/ws/${room}`)),
      );
      clients.push(...senders);
      const sent = senders.map(() => 0);
      let running = true;
      const sending = senders.map(async (sender, k) => {
        while (running) {
          void sender.send(`${k}:${sent[k]}`).catch(() => {});
          sent[k] = (sent[k] ?? 0) + 1;
          await new Promise((resolve) => setTimeout(resolve, 10));
        }
      });
      await waitUntil(() => receiver.frames.length > 100, 'messages flow', 20_000);
      await cluster.server(victim.masterPort).kill();
      await waitUntil(
        async () => (await cluster.masterOf(slot).catch(() => victim)).masterPort !== victim.masterPort,
        'a replica is promoted',
        30_000,
      );
      const atPromotion = receiver.frames.length;
      await waitUntil(() => receiver.frames.length > atPromotion + 50, 'the room is relayed again', 15_000);
      running = false;
      await Promise.all(sending);
      const total = sent.reduce((sum, count) => sum + count, 0);
      // Every message the two publishers' nodes took: the outboxes deliver what waited through the failover.
      await waitUntil(() => receiver.frames.length === 1 + total, `all ${total} messages arrive`, 30_000);
      const frames = receiver.frames.slice(1);
      assert.deepEqual(
        frames.map((frame) => frame.type),
        frames.map(() => 'message'),
        'no reset: nothing was lost',
      );
      assert.deepEqual(
        frames.map((frame) => frame.offset),
        frames.map((_, i) => (receiver.frames[0]?.offset ?? 0) + i + 1),
        'offsets without a gap',
      );
      for (const [k, count] of sent.entries()) {
        assert.deepEqual(
          frames.filter((frame) => frame.data?.startsWith(`${k}:`)).map((frame) => frame.data),
          Array.from({ length: count }, (_, n) => `${k}:${n}`),
          `publisher ${k}: every message once, in order`,
        );
      }
      await receiver.close();
    } finally {
      for (const node of [b, ...publishers]) node?.kill('SIGKILL');
    }
  });
});
