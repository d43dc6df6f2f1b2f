import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { TestClient } from './helpers/clients.js';
import { metricValue, waitForMetric } from './helpers/metrics.js';
import { RedisServer, spawnNode } from './helpers/redis.js';
import { runWshub, type SpawnedServer, spawnServer } from './helpers/server.js';

const DROPPED = { reason: 'backplane_unavailable' };

async function texts(client: TestClient, count: number): Promise<string[]> {
  const got: string[] = [];
  for (let i = 0; i < count; i++) got.push((await client.next(10_000)).data.toString());
  return got;
}

const series = (prefix: string, count: number): string[] =>
  Array.from({ length: count }, (_, i) => `${prefix}${i}`);

describe('backplane: Redis failures', () => {
  let redis: RedisServer;
  const spawned: SpawnedServer[] = [];
  before(async () => {
    redis = await RedisServer.start();
  });
  after(async () => {
    for (const node of spawned) node.kill('SIGKILL');
    await redis.stop();
  });

  it('Redis killed mid-stream: local delivery goes on, drops are counted and logged; Redis back: relaying resumes by itself', async () => {
    const a = await spawnNode(redis);
    const b = await spawnNode(redis, ['--backplane-required']);
    spawned.push(a, b);
    const [a1, a2, b1] = await Promise.all([
      TestClient.open(a.url),
      TestClient.open(a.url),
      TestClient.open(b.url),
    ]);
    await waitForMetric(b.metricsUrl, 'wshub_backplane_subscribed_rooms', 1);
    for (const message of series('pre', 100)) await a1.send(message);
    assert.deepEqual(await texts(b1, 100), series('pre', 100));
    // B got them, but A counts a PUBLISH as done only when Redis's reply arrives: wait for that, or a
    // reply lost in the kill turns a delivered message into a counted drop (seen: 102 drops, not 100).
    await waitForMetric(a.metricsUrl, 'wshub_backplane_messages_published_total', 100);

    await redis.kill();
    // Sent at once, before wshub has even noticed: none of these can reach Redis.
    for (const message of series('mid', 100)) await a1.send(message);
    assert.deepEqual(await texts(a2, 200), [...series('pre', 100), ...series('mid', 100)]);

    assert.equal(await waitForMetric(a.metricsUrl, 'websocket_messages_dropped_total', 100, DROPPED), 100);
    assert.equal(await metricValue(a.metricsUrl, 'wshub_backplane_publish_errors_total'), 100);
    assert.equal(await metricValue(a.metricsUrl, 'wshub_backplane_messages_published_total'), 100);
    for (const node of [a, b]) {
      assert.equal(await waitForMetric(node.metricsUrl, 'wshub_backplane_connected', 0), 0);
      await node.stdout.waitFor(
        /Backplane disconnected from redis:\/\/127\.0\.0\.1:\d+\/0 .*local delivery continues/,
      );
    }
    await a.stdout.waitFor(/Message not relayed to other nodes/);
    assert.ok(a.stdout.count(/Message not relayed to other nodes/) <= 10, 'drop log lines are rate-limited');

    // Readiness: degraded by default, not ready with --backplane-required.
    const readyA = await fetch(`${a.metricsUrl}/readyz`);
    assert.equal(readyA.status, 200);
    assert.match(
      await readyA.text(),
      /^ready \(degraded: backplane\)\nbackplane: disconnected \(.+\), redis:/,
    );
    const readyB = await fetch(`${b.metricsUrl}/readyz`);
    assert.equal(readyB.status, 503);
    assert.match(await readyB.text(), /^not ready: backplane\n/);
    // B's own clients are still served.
    await b1.send('local on b');
    assert.deepEqual(await texts(b1, 1), ['local on b']);

    await redis.start();
    for (const node of [a, b]) {
      assert.equal(await waitForMetric(node.metricsUrl, 'wshub_backplane_connected', 1, {}, 10_000), 1);
      assert.equal(await metricValue(node.metricsUrl, 'wshub_backplane_reconnects_total'), 1);
      await node.stdout.waitFor(/Backplane reconnected to redis:.* after [\d.]+s/);
    }
    assert.equal((await fetch(`${b.metricsUrl}/readyz`)).status, 200);
    await a1.send('back');
    // Nothing sent during the outage is replayed: the next message b1 sees is this one.
    assert.deepEqual(await texts(b1, 1), ['back']);
    assert.equal(a.child.exitCode, null, 'wshub A was never restarted');
    assert.equal(b.child.exitCode, null, 'wshub B was never restarted');
    await Promise.all([a1.close(), a2.close(), b1.close()]);
  });

  it('echo mode never connects to Redis: a backplane there is a usage error', async () => {
    const before = Number(await redis.info('total_connections_received'));
    for (const run of [
      runWshub([`--backplane=${redis.url}`]),
      runWshub(['--mode=echo'], { WSHUB_BACKPLANE: redis.url }),
    ]) {
      assert.deepEqual(await run.exited, { code: 2, signal: null });
      assert.equal(run.stderr.lines.length, 1);
      assert.match(run.stderr.lines[0] ?? '', /only works in broadcast mode.*\[WSHUB_CONFLICTING_SETTINGS\]/);
    }
    const echo = await spawnServer(['--stats-interval=0']);
    spawned.push(echo);
    const client = await TestClient.open(echo.url);
    await client.send('ping');
    assert.equal((await client.next()).data.toString(), 'ping');
    assert.equal(await metricValue(echo.metricsUrl, 'wshub_backplane_connected'), undefined);
    await client.close();
    // Only our own INFO connection was received since `before`.
    assert.equal(Number(await redis.info('total_connections_received')), before + 1);
  });

  it('authenticates with the URL password and never shows it in logs or /readyz', async () => {
    const secured = await RedisServer.start({ args: ['--requirepass', 'right-pw'] });
    try {
      const good = await spawnNode(secured, [`--backplane=redis://:right-pw@127.0.0.1:${secured.port}`]);
      spawned.push(good);
      await good.stdout.waitFor(/Backplane connected to redis:\/\/:\*\*\*@127\.0\.0\.1:\d+\/0/);
      const bad = await spawnServer(['--mode=broadcast', '--stats-interval=0'], {
        WSHUB_BACKPLANE: `redis://:wrong-pw@127.0.0.1:${secured.port}`,
      });
      spawned.push(bad);
      await bad.stdout.waitFor(
        /Backplane error \(redis:\/\/:\*\*\*@127\.0\.0\.1:\d+\/0\): .*(WRONGPASS|invalid)/,
      );
      const ready = await fetch(`${bad.metricsUrl}/readyz`);
      const body = await ready.text();
      assert.equal(ready.status, 200);
      assert.match(body, /backplane: connecting \(.*\), redis:\/\/:\*\*\*@/);
      for (const output of [good.stdout, good.stderr, bad.stdout, bad.stderr, { lines: [body] }]) {
        assert.doesNotMatch(output.lines.join('\n'), /right-pw|wrong-pw/);
      }
      // Unconnected, the node still serves its own clients.
      const client = await TestClient.open(bad.url);
      await client.send('still here');
      assert.equal((await client.next()).data.toString(), 'still here');
      await client.close();
    } finally {
      await secured.stop();
    }
  });
});
