import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { TestClient } from './helpers/clients.js';
import { metricValue, waitForMetric } from './helpers/metrics.js';
import { RedisSentinelFixture } from './helpers/redis-cluster.js';
import { type SpawnedServer, spawnServer } from './helpers/server.js';
import { waitUntil } from './helpers/wait.js';

/** Issue 18: a primary with a replica behind three Sentinels; kill -9 of the primary while messages flow. */
describe('backplane: Redis Sentinel failover, two wshub nodes', () => {
  let sentinel: RedisSentinelFixture;
  const nodes: SpawnedServer[] = [];
  before(async () => {
    sentinel = await RedisSentinelFixture.start();
  });
  after(async () => {
    for (const node of nodes) node.kill('SIGKILL');
    await sentinel?.stop();
  });

  it('follows the Sentinels to the promoted replica: relaying resumes by itself within seconds', async () => {
    for (let i = 0; i < 2; i++) {
      const node = await spawnServer([
        '--mode=broadcast',
        '--stats-interval=0',
        `--backplane=${sentinel.url}`,
        '--backplane-reconnect-max=200ms',
      ]);
      nodes.push(node);
      await node.stdout.waitFor(/Backplane connected to redis-sentinel:\/\/\S+\/mymaster\/0/, 30_000);
    }
    const [a, b] = nodes as [SpawnedServer, SpawnedServer];
    const sender = await TestClient.open(`ws://127.0.0.1:${a.port}/ws/news`);
    const receiver = await TestClient.open(`ws://127.0.0.1:${b.port}/ws/news`);
    await waitForMetric(b.metricsUrl, 'wshub_backplane_subscribed_rooms', 1);
    const received: number[] = [];
    receiver.ws.on('message', (data: Buffer) => received.push(Number(data.toString())));

    let running = true;
    let sequence = 0;
    const sending = (async () => {
      while (running) {
        void sender.send(`${sequence++}`).catch(() => {});
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    })();
    await waitUntil(() => received.length >= 20, 'messages flow through the primary');
    const oldPrimary = await sentinel.primaryPort();
    assert.equal(oldPrimary, sentinel.primary.port);
    await sentinel.primary.kill();
    let promotedAt = 0;
    await waitUntil(
      async () => {
        const port = await sentinel.primaryPort().catch(() => oldPrimary);
        if (port === oldPrimary) return false;
        promotedAt = performance.now();
        return true;
      },
      'the Sentinels promote the replica',
      30_000,
    );
    assert.equal(await sentinel.primaryPort(), sentinel.replica.port);
    const before = received.length;
    await waitUntil(() => received.length > before + 10, 'relaying resumes on the new primary', 15_000);
    const resumedAfter = performance.now() - promotedAt;
    running = false;
    await sending;
    // In order after the resume; the outage is a gap (at most once), counted, never a duplicate.
    const resumed = received.slice(before);
    for (let k = 1; k < resumed.length; k++) assert.equal(resumed[k], (resumed[k - 1] ?? 0) + 1);
    assert.equal(new Set(received).size, received.length, 'no duplicates');
    assert.ok(resumedAfter < 10_000, `resumed ${resumedAfter} ms after the promotion`);
    assert.equal(await waitForMetric(a.metricsUrl, 'wshub_backplane_connected', 1), 1);
    assert.equal(await waitForMetric(b.metricsUrl, 'wshub_backplane_topology_changes_total', 1), 1);
    // The outage is counted where it happened: a message PUBLISHed to the dying primary is missed by B
    // (a gap in A's sequence); one sent while A knew Redis was down is refused by A. Which of the two
    // depends on when each node notices, so the sum is what must be positive.
    const missedByB = (await metricValue(b.metricsUrl, 'wshub_backplane_messages_missed_total')) ?? 0;
    const refusedByA = (await metricValue(a.metricsUrl, 'wshub_backplane_publish_errors_total')) ?? 0;
    assert.ok(missedByB + refusedByA > 0, `missed by B ${missedByB}, refused by A ${refusedByA}`);
    await b.stdout.waitFor(/Sentinel names a new primary for mymaster/);
    const ready = await fetch(`${a.metricsUrl}/readyz`);
    assert.equal(ready.status, 200);
    assert.match(
      await ready.text(),
      /backplane: connected, redis-sentinel:\/\/127\.0\.0\.1:\d+,127\.0\.0\.1:\d+,127\.0\.0\.1:\d+\/mymaster\/0/,
    );
    await Promise.all([sender.close(), receiver.close()]);
  });
});
