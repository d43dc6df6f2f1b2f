import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { WebSocket } from 'ws';
// The scaleout section starts its own redis-server and Redis Cluster with the same helpers as the tests.
import { RedisServer } from '../../test/helpers/redis.js';
import { RedisClusterFixture } from '../../test/helpers/redis-cluster.js';
import { type BenchServer, startBenchServer } from '../servers.js';
import { fmtStat, ratioText, type Section, type Suite, stat, waitForLog } from '../suite.js';

/** The metrics port a bench wshub logged at startup. */
function metricsPortOf(server: BenchServer): number {
  const match = /Starting metrics server on \S+:(\d+)/.exec(readFileSync(server.logFile, 'utf8'));
  if (!match) throw new Error(`${server.logFile}: no metrics port`);
  return Number(match[1]);
}

async function scrape(server: BenchServer, name: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${metricsPortOf(server)}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line === undefined ? Number.NaN : Number(line.split(' ')[1]);
}

async function openClients(port: number, rooms: readonly string[]): Promise<WebSocket[]> {
  return Promise.all(
    rooms.map(
      (room) =>
        new Promise<WebSocket>((resolve, reject) => {
          const ws = new WebSocket(`ws://127.0.0.1:${port}/ws/${room}`);
          ws.once('open', () => resolve(ws));
          ws.once('error', reject);
        }),
    ),
  );
}

/** Resolves once every client got `count` messages (or rejects after `timeoutMs`). */
function receiveAll(clients: readonly WebSocket[], count: number, timeoutMs: number): Promise<void> {
  let waiting = clients.length;
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () =>
        reject(
          new Error(
            `${waiting} of ${clients.length} clients short of ${count} messages after ${timeoutMs} ms`,
          ),
        ),
      timeoutMs,
    );
    for (const ws of clients) {
      let got = 0;
      ws.on('message', () => {
        if (++got === count && --waiting === 0) {
          clearTimeout(timer);
          resolve();
        }
      });
    }
  });
}

/**
 * Scaling out (issue 18). (1) Per-room routing: twelve nodes on one Redis, ~300 rooms spread over
 * them unevenly (node i holds a share proportional to i+1, one subscriber per room), every room
 * gets the same traffic from a thirteenth node; each node's inbound backplane messages follow its
 * own rooms, not the cluster's total. (2) Cross-node fan-out (publishers on node A, one subscriber
 * per room on node B, 64 rooms) through one redis-server against a 3-master Redis Cluster with
 * sharded pub/sub, alternating in the same run. Everything on this box, nothing pinned.
 */
async function run(suite: Suite): Promise<void> {
  const { options, warnings, rows, say, printTable } = suite;
  const nodeCount = 12;
  const totalRooms = options.quick ? 120 : 300;
  const perRoom = options.quick ? 10 : 20;
  let redis: RedisServer;
  try {
    redis = await RedisServer.start();
  } catch (error) {
    warnings.push(`scaleout: not measured: ${(error as Error).message}`);
    return;
  }
  const start = (logName: string, flags: string[]) =>
    startBenchServer('wshub', 'broadcast', {
      core: undefined,
      nofile: 4096,
      wshubFlags: ['--mode=broadcast', ...flags],
      logName,
    });
  const routingLines: string[][] = [];
  try {
    const flags = [`--backplane=${redis.url}`];
    // Started a few at a time: thirteen Node processes starting at once on a small box take longer
    // than a start is given.
    const servers: BenchServer[] = [];
    try {
      for (let i = 0; i <= nodeCount; i += 4) {
        const batch = Array.from({ length: Math.min(4, nodeCount + 1 - i) }, (_, k) => i + k);
        const started = await Promise.allSettled(
          batch.map((n) =>
            start(
              n === nodeCount ? 'scaleout-publisher' : `scaleout-node-${n + 1}`,
              n === nodeCount ? [...flags, '--broadcast-exclude-sender'] : flags,
            ),
          ),
        );
        for (const result of started) if (result.status === 'fulfilled') servers.push(result.value);
        const failed = started.find((result) => result.status === 'rejected');
        if (failed) throw (failed as PromiseRejectedResult).reason;
      }
    } catch (error) {
      await Promise.all(servers.map((server) => server.stop()));
      throw error;
    }
    const publisher = servers[nodeCount] as BenchServer;
    const weights = Array.from({ length: nodeCount }, (_, i) => i + 1);
    const weightSum = weights.reduce((a, b) => a + b, 0);
    const roomsOf: string[][] = weights.map(() => []);
    let next = 0;
    weights.forEach((weight, i) => {
      const count = Math.max(1, Math.round((totalRooms * weight) / weightSum));
      for (let k = 0; k < count; k++) roomsOf[i]?.push(`r${next++}`);
    });
    const allRooms = roomsOf.flat();
    const clients: WebSocket[] = [];
    try {
      for (const server of servers) await waitForLog(server, /Backplane connected/);
      const subscribers = await Promise.all(
        roomsOf.map((rooms, i) => openClients((servers[i] as BenchServer).port, rooms)),
      );
      const senders = await openClients(publisher.port, allRooms);
      clients.push(...subscribers.flat(), ...senders);
      // Every node has subscribed its rooms before the traffic starts.
      for (let i = 0; i < nodeCount; i++) {
        const deadline = Date.now() + 15_000;
        while (
          (await scrape(servers[i] as BenchServer, 'wshub_backplane_subscribed_rooms')) !== roomsOf[i]?.length
        ) {
          if (Date.now() > deadline) throw new Error(`node ${i + 1} did not subscribe its rooms`);
          await sleep(50);
        }
      }
      const before = await Promise.all(
        servers.slice(0, nodeCount).map((s) => scrape(s, 'wshub_backplane_messages_inbound_total')),
      );
      const done = receiveAll(subscribers.flat(), perRoom, 120_000);
      for (let m = 0; m < perRoom; m++) for (const ws of senders) ws.send(`m${m}`);
      await done;
      await sleep(200);
      const published = allRooms.length * perRoom;
      for (let i = 0; i < nodeCount; i++) {
        const inbound =
          (await scrape(servers[i] as BenchServer, 'wshub_backplane_messages_inbound_total')) -
          (before[i] ?? 0);
        const rooms = roomsOf[i]?.length ?? 0;
        routingLines.push([
          `node ${i + 1}`,
          String(rooms),
          `${((100 * rooms) / allRooms.length).toFixed(1)}%`,
          inbound.toLocaleString('en-US'),
          `${((100 * inbound) / published).toFixed(1)}%`,
          (inbound / rooms).toFixed(1),
        ]);
      }
      rows.push({
        section: 'scaleout',
        case: `per-room routing, ${nodeCount} nodes, ${allRooms.length} rooms × ${perRoom} messages`,
        unit: 'inbound messages per node',
        higherIsBetter: false,
        wshub: undefined,
        ws: stat([published]),
        ratio: undefined,
        extra: {
          perNode: routingLines.map(([node, rooms, , inbound]) => ({
            node,
            rooms: Number(rooms),
            inbound: Number(inbound?.replace(/,/g, '')),
          })),
          published,
        },
      });
      say(
        `scaleout — per-room routing: ${nodeCount} wshub nodes on one redis-server, ${allRooms.length} rooms (one subscriber each, node i holding a share ∝ i), ${perRoom} messages per room from a 13th node (${published.toLocaleString('en-US')} in all; before per-room routing every node received all of them)`,
      );
      printTable(
        [
          'node',
          'rooms',
          'share of rooms',
          'inbound backplane msgs',
          'share of all msgs',
          'inbound per room',
        ],
        routingLines,
      );
    } finally {
      for (const ws of clients) ws.terminate();
      await Promise.all(servers.map((server) => server.stop()));
    }
  } finally {
    await redis.stop();
  }
  await scaleoutThroughput(suite);
}

async function scaleoutThroughput(suite: Suite): Promise<void> {
  const { options, warnings, say, cores, addRow, printTable } = suite;
  const roomCount = 64;
  const perRoom = options.quick ? 200 : 500;
  let redis: RedisServer | undefined;
  let cluster: RedisClusterFixture | undefined;
  try {
    redis = await RedisServer.start();
    cluster = await RedisClusterFixture.start({ masters: 3, replicas: 0 });
  } catch (error) {
    warnings.push(`scaleout: cluster throughput not measured: ${(error as Error).message}`);
    await redis?.stop();
    return;
  }
  const rooms = Array.from({ length: roomCount }, (_, i) => `t${i}`);
  const pair = async (variant: 'single' | 'cluster', url: string) => {
    const nodes = await Promise.all(
      ['a', 'b'].map((name) =>
        startBenchServer('wshub', 'broadcast', {
          core: undefined,
          nofile: 4096,
          wshubFlags: ['--mode=broadcast', '--broadcast-exclude-sender', `--backplane=${url}`],
          logName: `scaleout-${variant}-${name}`,
        }),
      ),
    );
    for (const node of nodes) await waitForLog(node, /Backplane connected/);
    return nodes as [BenchServer, BenchServer];
  };
  const variants = {
    single: await pair('single', redis.url),
    cluster: await pair('cluster', cluster.url),
  };
  const results: { single: number[]; cluster: number[] } = { single: [], cluster: [] };
  try {
    for (let run = 0; run < options.runs; run++) {
      const order = run % 2 === 0 ? (['cluster', 'single'] as const) : (['single', 'cluster'] as const);
      for (const variant of order) {
        const [a, b] = variants[variant];
        const receivers = await openClients(b.port, rooms);
        const senders = await openClients(a.port, rooms);
        try {
          const deadline = Date.now() + 15_000;
          while ((await scrape(b, 'wshub_backplane_subscribed_rooms')) < roomCount) {
            if (Date.now() > deadline) throw new Error(`${variant}: node B did not subscribe its rooms`);
            await sleep(50);
          }
          const done = receiveAll(receivers, perRoom, 120_000);
          const startedAt = performance.now();
          const payload = Buffer.alloc(64, 0x61);
          for (let m = 0; m < perRoom; m++) for (const ws of senders) ws.send(payload);
          await done;
          results[variant].push((roomCount * perRoom) / ((performance.now() - startedAt) / 1000));
        } finally {
          for (const ws of [...receivers, ...senders]) ws.terminate();
        }
        // Let the linger end so the next run subscribes from scratch, as the first did.
        await sleep(300);
      }
    }
  } finally {
    await Promise.all([...variants.single, ...variants.cluster].map((server) => server.stop()));
    await Promise.all([redis.stop(), cluster.stop()]);
  }
  const row = addRow(
    'scaleout',
    `cross-node fan-out, ${roomCount} rooms × ${perRoom} msgs of 64 B`,
    'msgs/s',
    true,
    { wshub: results.cluster, ws: results.single },
    {
      comparison:
        'wshub = through a 3-master Redis Cluster (SPUBLISH/SSUBSCRIBE), ws = through one redis-server',
    },
  );
  say(
    `scaleout — cross-node fan-out: publishers on node A, one subscriber per room on node B, ${roomCount} rooms; through one redis-server against a 3-master Redis Cluster with sharded pub/sub (median [min–max] of ${options.runs}; all on this ${cores}-core box, nothing pinned, the client in the bench process)`,
  );
  printTable(
    ['case', 'one Redis', 'Redis Cluster (3 masters)', 'ratio'],
    [[row.case, fmtStat(row.ws), row.wshub ? fmtStat(row.wshub) : 'n/a', ratioText(row)]],
  );
}

export const scaleoutSection: Section = { name: 'scaleout', run };
