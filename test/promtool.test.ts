import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { TestClient } from './helpers/clients.js';
import { waitForMetric } from './helpers/metrics.js';
import { RedisServer } from './helpers/redis.js';
import { type SpawnedServer, spawnServer } from './helpers/server.js';

/** `promtool check metrics` (Prometheus's own linter) on what a live /metrics serves. */
async function promtoolCheck(
  metricsUrl: string,
): Promise<{ status: number | null; output: string; text: string }> {
  const text = await (await fetch(`${metricsUrl}/metrics`)).text();
  const run = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8', timeout: 30_000 });
  assert.equal(run.error, undefined, 'promtool is installed (npm test installs the prometheus package)');
  return { status: run.status, output: `${run.stdout}${run.stderr}`, text };
}

/** Some traffic first, so histograms and labelled counters have samples. */
async function exercise(server: SpawnedServer): Promise<void> {
  const client = await TestClient.open(server.url);
  await client.send('hello');
  await client.next();
  await client.close();
  await waitForMetric(server.metricsUrl, 'websocket_connections', 0);
}

const CASES = [
  ['echo', ['--mode=echo']],
  ['broadcast with a Redis backplane', ['--mode=broadcast', '--backplane=REDIS']],
  ['--workers=2', ['--workers=2']],
] as const;

describe('promtool check metrics passes on the live /metrics (issue 14)', () => {
  let redis: RedisServer;
  const servers = new Map<string, SpawnedServer>();
  // All three start at once: a spawned --workers=2 takes a while on a loaded machine.
  before(async () => {
    redis = await RedisServer.start();
    await Promise.all(
      CASES.map(async ([name, flags]) => {
        servers.set(name, await spawnServer(flags.map((flag) => flag.replace('REDIS', redis.url))));
      }),
    );
  });
  after(async () => {
    for (const server of servers.values()) server.kill();
    await Promise.all([...servers.values()].map((server) => server.exited));
    await redis.stop();
  });

  for (const [name] of CASES) {
    it(name, async () => {
      const server = servers.get(name) as SpawnedServer;
      if (name.startsWith('broadcast')) {
        assert.equal(await waitForMetric(server.metricsUrl, 'wshub_backplane_connected', 1, {}, 15_000), 1);
      }
      await exercise(server);
      const { status, output, text } = await promtoolCheck(server.metricsUrl);
      assert.equal(status, 0, output);
      assert.equal(output.trim(), '', output);
      assert.match(text, /^nodejs_active_handles\{/m, 'the by-type gauge stays');
      assert.doesNotMatch(text, /^nodejs_active_(handles|requests|resources)_total/m);
    });
  }
});
