import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { assertUsageError, runToExit } from './helpers/cli.js';
import { TestClient } from './helpers/clients.js';
import { metricValue, waitForMetric } from './helpers/metrics.js';
import { childPids } from './helpers/processes.js';
import { RedisServer, spawnNode } from './helpers/redis.js';
import { type SpawnedServer, spawnServer } from './helpers/server.js';
import { waitUntil } from './helpers/wait.js';

const STAMP = String.raw`^\d{4}/\d{2}/\d{2} \d{2}:\d{2}:\d{2} `;

/** Opens a client with ?hello and returns it with the instance id of the worker that took it. */
async function helloClient(server: SpawnedServer): Promise<{ client: TestClient; instance: string }> {
  const client = await TestClient.open(`${server.url}?hello`);
  const hello = JSON.parse((await client.next()).data.toString()) as { type: string; instance: string };
  assert.equal(hello.type, 'hello');
  return { client, instance: hello.instance };
}

describe('--workers=2 (spawned process)', () => {
  it('spreads connections over both workers, broadcasts across them, sums /metrics, and drains all on SIGTERM', async () => {
    const server = await spawnServer([
      '--workers=2',
      '--mode=broadcast',
      '--allow-fault-injection',
      '--stats-interval=100ms',
    ]);
    try {
      await server.stdout.waitFor(/Starting 2 worker processes \(--workers=2\)/);
      assert.equal(childPids(server.child.pid as number).length, 2, 'two worker processes');
      const opened = [];
      for (let i = 0; i < 4; i++) opened.push(await helloClient(server));
      const instances = new Set(opened.map((entry) => entry.instance));
      assert.equal(instances.size, 2, `connections land on both workers: ${[...instances].join(', ')}`);

      // A client of one worker broadcasts; every client, on either worker, gets it once.
      const [sender] = opened;
      const other = opened.find((entry) => entry.instance !== sender?.instance);
      assert.ok(sender && other);
      // Each worker tells the primary it has a client in the room before it gets the room's messages (issue 18).
      await waitForMetric(server.metricsUrl, 'wshub_backplane_subscribed_rooms', 2);
      await sender.client.send('across workers');
      for (const { client } of opened) {
        assert.equal((await client.next()).data.toString(), 'across workers');
      }
      await other.client.send(Buffer.from([0, 1, 2, 255]));
      for (const { client } of opened) {
        const message = await client.next();
        assert.equal(message.isBinary, true);
        assert.deepEqual([...message.data], [0, 1, 2, 255]);
      }

      // One metrics port for the cluster: the sums over both workers.
      assert.equal(await waitForMetric(server.metricsUrl, 'websocket_connections', 4), 4);
      assert.equal(await metricValue(server.metricsUrl, 'websocket_connected_clients'), 4);
      assert.equal(await metricValue(server.metricsUrl, 'websocket_connections_total'), 4);
      assert.equal(await metricValue(server.metricsUrl, 'websocket_messages_total'), 2);
      // The console's rooms (issue 19): the default room's members summed over both workers.
      const rooms = (
        (await (await fetch(`http://127.0.0.1:${server.port}/stats`)).json()) as {
          rooms: { busiest: Array<{ room: string; members: number }> };
        }
      ).rooms;
      assert.deepEqual(
        rooms.busiest.map((room) => [room.room, room.members]),
        [['', 4]],
      );
      // Each client's ?hello is a message written to it too.
      assert.equal(await metricValue(server.metricsUrl, 'websocket_messages_delivered_total'), 4 + 2 * 4);
      assert.equal(await metricValue(server.metricsUrl, 'wshub_workers', { state: 'listening' }), 2);
      assert.equal(await metricValue(server.metricsUrl, 'wshub_worker_restarts_total'), 0);
      assert.equal(await metricValue(server.metricsUrl, 'wshub_backplane_connected'), 1);
      assert.equal(await metricValue(server.metricsUrl, 'wshub_backplane_messages_received_total'), 2);
      const ready = await fetch(`${server.metricsUrl}/readyz`);
      assert.equal(ready.status, 200);
      assert.match(await ready.text(), /workers: 2 of 2 listening/);
      // The periodic count is the cluster's total, logged once by the primary.
      // Once it has said 4, no line says a worker's share (2): one line per interval, the sum.
      await server.stdout.waitFor(/Active connections: 4$/);
      const fromLine = server.stdout.lines.findIndex((line) => /Active connections: 4$/.test(line));
      await waitUntil(
        () =>
          server.stdout.lines.slice(fromLine).filter((line) => /Active connections/.test(line)).length >= 3,
        'three more counts',
      );
      const counts = server.stdout.lines.slice(fromLine).filter((line) => /Active connections/.test(line));
      assert.ok(
        counts.every((line) => line.endsWith('Active connections: 4')),
        counts.join('\n'),
      );

      server.kill('SIGTERM');
      const closes = await Promise.all(opened.map(({ client }) => client.closed));
      for (const close of closes) assert.equal(close.code, 1001);
      assert.deepEqual(await server.exited, { code: 0, signal: null });
      const logged = server.stdout.lines.map((line) => line.replace(new RegExp(STAMP), ''));
      const steps = [
        'Received SIGTERM, shutting down',
        'Stopping 2 workers',
        'All workers stopped',
        'Metrics server stopped',
        'Shutdown complete',
      ];
      const positions = steps.map((step) => logged.indexOf(step));
      assert.ok(
        positions.every(
          (position, i) => position !== -1 && (i === 0 || position > (positions[i - 1] as number)),
        ),
        `steps in order; log was:\n${logged.join('\n')}`,
      );
      // Each worker drains as a single process does.
      assert.equal(server.stdout.count(/WebSocket server stopped$/), 2);
      const closing = logged.filter((line) => /^Closing \d+ connections? with 1001/.test(line));
      assert.equal(
        closing.reduce((sum, line) => sum + Number(/^Closing (\d+)/.exec(line)?.[1]), 0),
        4,
      );
    } finally {
      server.kill('SIGKILL');
    }
  });

  it('restarts a worker that dies, logs it and counts it', async () => {
    const server = await spawnServer(['--workers=2', '--stats-interval=0', '--allow-fault-injection']);
    try {
      const [victim] = childPids(server.child.pid as number);
      assert.ok(victim !== undefined);
      process.kill(victim, 'SIGKILL');
      await server.stdout.waitFor(
        new RegExp(
          `Worker \\d \\(pid ${victim}\\) exited unexpectedly \\(signal SIGKILL\\); restarting it in \\d+ms`,
        ),
      );
      await server.stdout.waitFor(/Worker \d \(pid \d+\) listening again; 2 of 2 listening/);
      assert.equal(await waitForMetric(server.metricsUrl, 'wshub_worker_restarts_total', 1), 1);
      assert.equal(await waitForMetric(server.metricsUrl, 'wshub_workers', 2, { state: 'listening' }), 2);
      const workers = childPids(server.child.pid as number);
      assert.equal(workers.length, 2);
      assert.ok(!workers.includes(victim));
      // Both workers serve again.
      const instances = new Set<string>();
      const clients: TestClient[] = [];
      for (let i = 0; i < 4; i++) {
        const { client, instance } = await helloClient(server);
        clients.push(client);
        instances.add(instance);
      }
      assert.equal(instances.size, 2);
      server.kill('SIGTERM');
      for (const close of await Promise.all(clients.map((client) => client.closed)))
        assert.equal(close.code, 1001);
      assert.deepEqual(await server.exited, { code: 0, signal: null });
    } finally {
      server.kill('SIGKILL');
    }
  });

  it('sums echo-mode metrics, serves /livez and the total on GET /stats, and drains on SIGINT', async () => {
    const server = await spawnServer(['--workers=2', '--stats-interval=0']);
    try {
      const clients = await Promise.all([1, 2, 3].map(() => TestClient.open(server.url)));
      for (const client of clients) {
        await client.send('ping');
        assert.equal((await client.next()).data.toString(), 'ping');
      }
      assert.equal(await waitForMetric(server.metricsUrl, 'websocket_connections', 3), 3);
      assert.equal(await metricValue(server.metricsUrl, 'websocket_messages_total'), 3);
      // Echo mode relays nothing between workers: no backplane metrics.
      assert.equal(await metricValue(server.metricsUrl, 'wshub_backplane_connected'), undefined);
      assert.equal((await fetch(`${server.metricsUrl}/livez`)).status, 200);
      // GET /stats (the console's figures) is the cluster's, at most a second old: no worker has 3 (2 + 1).
      type Figures = { connections: number; messagesIn: number; messagesOut: number; workers: number };
      let figures: Figures | undefined;
      await waitUntil(async () => {
        figures = (await (await fetch(`http://127.0.0.1:${server.port}/stats`)).json()) as Figures;
        return figures.connections === 3;
      }, 'GET /stats reports all 3 connections');
      assert.deepEqual(
        [figures?.workers, figures?.messagesIn, figures?.messagesOut],
        [2, 3, 3],
        'the same totals as the primary /metrics',
      );
      // SIGINT drains the same way as SIGTERM.
      server.kill('SIGINT');
      for (const close of await Promise.all(clients.map((client) => client.closed)))
        assert.equal(close.code, 1001);
      assert.deepEqual(await server.exited, { code: 0, signal: null });
      await server.stdout.waitFor(/Received SIGINT, shutting down/);
    } finally {
      server.kill('SIGKILL');
    }
  });
});

describe('--workers=2 with --backplane=redis://… (spawned processes)', () => {
  let redis: RedisServer;
  before(async () => {
    redis = await RedisServer.start();
  });
  after(async () => {
    await redis.stop();
  });

  it('every worker is a Redis node of its own: broadcasts reach both workers and another replica, no IPC relay', async () => {
    const [clustered, single] = await Promise.all([
      spawnNode(redis, ['--workers=2', '--allow-fault-injection']),
      spawnNode(redis),
    ]);
    try {
      // spawnNode saw one worker connect; the other says so too.
      await waitUntil(
        () => clustered.stdout.count(/Backplane connected to redis:\/\//) === 2,
        'both workers connected to Redis',
      );
      assert.equal(clustered.stdout.count(/Backplane: node [0-9a-f]+ relays broadcasts over redis:/), 2);
      await clustered.stdout.waitFor(/Broadcast between workers: each worker is a backplane node of its own/);
      const opened = [await helloClient(clustered), await helloClient(clustered)];
      assert.notEqual(opened[0]?.instance, opened[1]?.instance, 'one client on each worker');
      const remote = await TestClient.open(single.url);
      // Each worker and the other replica subscribe the room once a client is in it (issue 18).
      await waitForMetric(clustered.metricsUrl, 'wshub_backplane_subscribed_rooms', 2);
      await waitForMetric(single.metricsUrl, 'wshub_backplane_subscribed_rooms', 1);
      await opened[0]?.client.send('from worker A');
      for (const client of [opened[0]?.client, opened[1]?.client, remote]) {
        assert.equal((await client?.next())?.data.toString(), 'from worker A');
      }
      await remote.send('from the other replica');
      for (const client of [opened[0]?.client, opened[1]?.client, remote]) {
        assert.equal((await client?.next())?.data.toString(), 'from the other replica');
      }
      assert.equal(await waitForMetric(clustered.metricsUrl, 'wshub_backplane_connected', 1), 1);
      assert.equal(
        await waitForMetric(clustered.metricsUrl, 'wshub_backplane_messages_received_total', 3),
        3,
        "worker B got A's message through Redis, both workers got the other replica's",
      );
    } finally {
      clustered.kill('SIGKILL');
      single.kill('SIGKILL');
    }
  });
});

describe('--workers: configuration errors (spawned process)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'wshub-workers-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  for (const bad of ['0', '-1', 'two', '1.5', '257']) {
    it(`refuses --workers=${bad} with exit 2`, async () => {
      assertUsageError(
        await runToExit([`--workers=${bad}`]),
        'WSHUB_INVALID_VALUE',
        /--workers.*auto \(.*\) or an integer from 1 to 256/,
      );
    });
  }

  it('refuses a bad WSHUB_WORKERS and server.workers in the config file', async () => {
    assertUsageError(await runToExit([], { WSHUB_WORKERS: '0' }), 'WSHUB_INVALID_VALUE', /WSHUB_WORKERS/);
    const file = join(dir, 'bad.yaml');
    writeFileSync(file, 'server:\n  workers: many\n');
    assertUsageError(
      await runToExit([`--config-file=${file}`]),
      'WSHUB_INVALID_VALUE',
      /bad\.yaml:2: invalid value for server\.workers/,
    );
  });

  it('accepts auto', async () => {
    const result = await runToExit(['--workers=auto', '--print-config']);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /workers: auto/);
  });

  it('reports a WebSocket port in use once, with exit 2, for the whole cluster', async () => {
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const { port } = blocker.address() as { port: number };
    try {
      const result = await runToExit([
        '--workers=2',
        '--host=127.0.0.1',
        `--port=${port}`,
        '--metrics-port=0',
      ]);
      assertUsageError(
        result,
        'WSHUB_LISTEN_FAILED',
        new RegExp(`127\\.0\\.0\\.1:${port} \\(--host/--port\\)`),
      );
    } finally {
      blocker.close();
    }
  });
});
