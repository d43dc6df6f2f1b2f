import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import type { ClientOptions } from 'ws';
import { connect, type Message, type ResetInfo, type WshubClient } from 'wshub/client';
import { TestClient } from './helpers/clients.js';
import { assertZeroMetrics, metricValue, QUIET_HISTORY_METRICS } from './helpers/metrics.js';
import { RedisServer, spawnNode } from './helpers/redis.js';
import type { SpawnedServer } from './helpers/server.js';
import { payloadsFrom, V1Client, type V1Frame } from './helpers/v1.js';

const HISTORY = ['--history-size=5000', '--history-ttl=10m'];
const series = (prefix: string, from: number, to: number): string[] =>
  Array.from({ length: to - from + 1 }, (_, i) => `${prefix}${from + i}`);

const roomUrl = (node: SpawnedServer, room: string, query = ''): string =>
  `ws://127.0.0.1:${node.port}/ws/${room}${query}`;

/** The message payloads of `frames` in order, asserting each offset follows the previous one within its epoch. */
function payloadsAcrossEpochs(frames: readonly V1Frame[]): { payloads: string[]; epochs: string[] } {
  const payloads: string[] = [];
  const epochs: string[] = [];
  let epoch = '';
  let offset = 0;
  for (const frame of frames) {
    if (frame.type === 'welcome' || frame.type === 'reset') {
      epoch = frame.epoch;
      offset = frame.offset;
      if (!epochs.includes(epoch)) epochs.push(epoch);
      continue;
    }
    assert.equal(frame.epoch, epoch, `message in epoch ${frame.epoch} after ${epoch}`);
    assert.equal(frame.offset, offset + 1, `offset ${frame.offset} after ${offset}`);
    offset = frame.offset;
    payloads.push(frame.data ?? '');
  }
  return { payloads, epochs };
}

const only = (prefix: string, payloads: readonly string[]): string[] =>
  payloads.filter((p) => p.startsWith(prefix));

/** Sends `count` messages at a steady rate (one per `everyMs`), from `sender`. */
async function sendSteadily(
  sender: TestClient,
  prefix: string,
  count: number,
  everyMs: number,
): Promise<void> {
  for (let i = 1; i <= count; i++) {
    sender.ws.send(`${prefix}${i}`);
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
}

async function until(condition: () => boolean, what: string, timeoutMs = 30_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!condition()) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** The client library (wshub/client), recording what it hands the application. */
function library(url: string): { client: WshubClient; got: Message[]; resets: ResetInfo[]; opened: boolean } {
  const got: Message[] = [];
  const resets: ResetInfo[] = [];
  const state = {
    got,
    resets,
    opened: false,
    client: connect(url, {
      minDelayMs: 50,
      maxDelayMs: 500,
      onMessage: (message) => got.push(message),
      onReset: (info) => resets.push(info),
      onOpen: () => {
        state.opened = true;
      },
    }),
  };
  return state;
}

describe('room history in Redis: positions on every node, resume anywhere, Redis faults', () => {
  let redis: RedisServer;
  const nodes: SpawnedServer[] = [];
  const clients: Array<{ ws: { terminate(): void } }> = [];
  const libraries: WshubClient[] = [];
  before(async () => {
    redis = await RedisServer.start();
  });
  after(async () => {
    for (const client of clients) client.ws.terminate();
    for (const client of libraries) client.close();
    for (const node of nodes) node.kill('SIGKILL');
    await redis.stop();
  });

  async function node(extra: string[] = []): Promise<SpawnedServer> {
    const spawned = await spawnNode(redis, [...HISTORY, ...extra]);
    nodes.push(spawned);
    return spawned;
  }
  async function v1(url: string, options: ClientOptions = {}): Promise<V1Client> {
    const client = await V1Client.open(url, options);
    clients.push(client);
    return client;
  }
  async function raw(url: string): Promise<TestClient> {
    const client = await TestClient.open(url);
    clients.push(client);
    return client;
  }

  it('three nodes: the same positions everywhere; resume on another node at a random position, with permessage-deflate', async () => {
    const [a, b, c] = await Promise.all([node(), node(), node(['--compression'])]);
    assert.ok(a && b && c);
    const onA = await v1(roomUrl(a, 'three'));
    const onB = await v1(roomUrl(b, 'three'));
    const [welcome] = await onA.waitFor(1);
    const epoch = welcome?.epoch ?? '';
    assert.deepEqual((await onB.waitFor(1))[0], { type: 'welcome', room: 'three', epoch, offset: 0 });
    const senderA = await raw(roomUrl(a, 'three'));
    const senderC = await raw(roomUrl(c, 'three'));
    for (let i = 1; i <= 100; i++) {
      senderA.ws.send(`a${i}`);
      senderC.ws.send(`c${i}`);
    }
    const framesA = (await onA.waitFor(201, 20_000)).slice(1);
    const framesB = (await onB.waitFor(201, 20_000)).slice(1);
    assert.deepEqual(framesA, framesB, 'identical frames, positions included, on both nodes');
    const payloads = payloadsFrom(framesB, 0);
    assert.deepEqual(
      payloads.filter((p) => p.startsWith('a')),
      series('a', 1, 100),
    );
    assert.deepEqual(
      payloads.filter((p) => p.startsWith('c')),
      series('c', 1, 100),
    );
    // A client of node A read up to a random position, went away; 50 more were sent; it resumes on node C.
    const seen = 1 + Math.floor(Math.random() * 199);
    onA.ws.terminate();
    for (const text of series('late', 1, 50)) senderA.ws.send(text);
    await onB.waitFor(251, 20_000);
    const resumed = await v1(roomUrl(c, 'three', `?since=${epoch}:${seen}`), { perMessageDeflate: true });
    assert.match(resumed.ws.extensions, /permessage-deflate/);
    const frames = await resumed.waitFor(1 + 250 - seen, 20_000);
    assert.deepEqual(frames[0], { type: 'welcome', room: 'three', epoch, offset: seen });
    assert.deepEqual(frames.slice(1), (await onB.waitFor(251)).slice(1 + seen));
    senderC.ws.send('live');
    const [live] = (await resumed.waitFor(2 + 250 - seen)).slice(-1);
    assert.match(live?.id ?? '', /^[0-9a-f]{16}\.\d+$/, 'with the backplane a message frame carries its id');
    assert.deepEqual(live, {
      type: 'message',
      room: 'three',
      epoch,
      offset: 251,
      id: live?.id,
      data: 'live',
    });
    assert.equal(await metricValue(c.metricsUrl, 'wshub_history_replays_total'), 1);
  });

  it('metrics: history entries and bytes read from Redis (trimmed by --history-size), replays, outbox', async () => {
    const spawned = await spawnNode(redis, ['--history-size=5', '--history-ttl=10m']);
    nodes.push(spawned);
    const metrics = spawned.metricsUrl;
    const sender = await raw(roomUrl(spawned, 'sized'));
    const watcher = await v1(roomUrl(spawned, 'sized'));
    await watcher.waitFor(1);
    // Payloads of 1, 2, …, 8 bytes: the history keeps the last 5 (4 + 5 + 6 + 7 + 8 bytes).
    for (let i = 1; i <= 8; i++) sender.ws.send('x'.repeat(i));
    await watcher.waitFor(9);
    assert.equal(await metricValue(metrics, 'wshub_history_entries'), 5);
    assert.equal(await metricValue(metrics, 'wshub_history_bytes'), 4 + 5 + 6 + 7 + 8);
    // Another room of this node counts too.
    const other = await raw(roomUrl(spawned, 'sized2'));
    const otherWatcher = await v1(roomUrl(spawned, 'sized2'));
    await otherWatcher.waitFor(1);
    other.ws.send('abc');
    await otherWatcher.waitFor(2);
    assert.equal(await metricValue(metrics, 'wshub_history_entries'), 6);
    assert.equal(await metricValue(metrics, 'wshub_history_bytes'), 30 + 3);
    const [welcome] = watcher.frames;
    const resumed = await v1(roomUrl(spawned, 'sized', `?since=${welcome?.epoch}:5`));
    await resumed.waitFor(4);
    assert.equal(await metricValue(metrics, 'wshub_history_replays_total'), 1);
    assert.equal(await metricValue(metrics, 'wshub_history_replayed_messages_total'), 3);
    await assertZeroMetrics(metrics, QUIET_HISTORY_METRICS);
    assert.equal(await metricValue(metrics, 'wshub_history_resets_total', { reason: 'too_old' }), 0);
    // Redis frozen: a scrape still answers (within about a second), with the last values read.
    redis.pause();
    try {
      assert.equal(await metricValue(metrics, 'wshub_history_entries'), 6);
    } finally {
      redis.resume();
    }
  });

  it('--history-ttl in Redis: a quiet room’s keys expire; the next message starts a new epoch, live clients get a reset, an old position gets welcome + reset', async () => {
    const [a, b] = await Promise.all([
      spawnNode(redis, ['--history-size=100', '--history-ttl=1s']),
      spawnNode(redis, ['--history-size=100', '--history-ttl=1s']),
    ]);
    nodes.push(a, b);
    const watcher = await v1(roomUrl(b, 'quiet'));
    const sender = await raw(roomUrl(a, 'quiet'));
    await watcher.waitFor(1);
    sender.ws.send('before');
    const [welcome, first] = await watcher.waitFor(2);
    assert.equal(first?.offset, 1);
    const client = new Redis({
      host: '127.0.0.1',
      port: redis.port,
      lazyConnect: true,
      maxRetriesPerRequest: 0,
    });
    try {
      await client.connect();
      assert.equal(await client.exists('wshub:{quiet}:meta', 'wshub:{quiet}:history'), 2);
      const deadline = performance.now() + 15_000;
      while ((await client.exists('wshub:{quiet}:meta', 'wshub:{quiet}:history')) > 0) {
        assert.ok(performance.now() < deadline, 'the keys expire after --history-ttl');
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    } finally {
      client.disconnect();
    }
    sender.ws.send('after');
    const [reset, next] = (await watcher.waitFor(4)).slice(2);
    assert.equal(reset?.type, 'reset');
    assert.notEqual(reset?.epoch, welcome?.epoch);
    assert.equal(reset?.offset, 0);
    assert.deepEqual(next, {
      type: 'message',
      room: 'quiet',
      epoch: reset?.epoch,
      offset: 1,
      id: next?.id,
      data: 'after',
    });
    const old = await v1(roomUrl(a, 'quiet', `?since=${welcome?.epoch}:1`));
    assert.deepEqual(await old.waitFor(2), [
      { type: 'welcome', room: 'quiet', epoch: reset?.epoch, offset: 1 },
      { type: 'reset', room: 'quiet', epoch: reset?.epoch, offset: 1 },
    ]);
    assert.equal(
      await metricValue(b.metricsUrl, 'wshub_history_resets_total', { reason: 'history_lost' }),
      1,
    );
    assert.equal(await metricValue(a.metricsUrl, 'wshub_history_resets_total', { reason: 'other_epoch' }), 1);
  });

  it('past --backplane-max-pending while Redis is frozen: drops are counted and logged, and other nodes’ v1 clients get a reset at the hole', async () => {
    const [a, b] = await Promise.all([node(['--backplane-max-pending=64KiB']), node()]);
    assert.ok(a && b);
    const watcher = await v1(roomUrl(b, 'bounded'));
    await watcher.waitFor(1);
    const sender = await raw(roomUrl(a, 'bounded'));
    const big = (i: number) => `${i}:${'x'.repeat(4000)}`;
    redis.pause();
    try {
      for (let i = 1; i <= 40; i++) await sender.send(big(i));
      await sender.take(40);
    } finally {
      redis.resume();
    }
    const dropped = (await metricValue(a.metricsUrl, 'wshub_outbox_dropped_total')) ?? 0;
    const kept = 40 - dropped;
    assert.ok(dropped > 0 && kept > 0, `kept ${kept}, dropped ${dropped} of 40 (64 KiB of 4 KB messages)`);
    await a.stdout.waitFor(/Message not relayed to other nodes: more than 65536 bytes are waiting for Redis/);
    sender.ws.send('after');
    const frames = await watcher.waitFor(1 + kept + 2, 30_000);
    assert.deepEqual(
      payloadsFrom(frames.slice(1, 1 + kept), 0),
      Array.from({ length: kept }, (_, i) => big(i + 1)),
    );
    assert.deepEqual(frames[1 + kept], {
      type: 'reset',
      room: 'bounded',
      epoch: frames[0]?.epoch,
      offset: 40,
    });
    assert.deepEqual(frames[2 + kept], {
      type: 'message',
      room: 'bounded',
      epoch: frames[0]?.epoch,
      offset: 41,
      id: frames[2 + kept]?.id,
      data: 'after',
    });
    assert.equal(
      await metricValue(b.metricsUrl, 'wshub_history_resets_total', { reason: 'history_lost' }),
      1,
    );
    assert.equal(
      await metricValue(a.metricsUrl, 'websocket_messages_dropped_total', {
        reason: 'backplane_unavailable',
      }),
      dropped,
    );
  });

  it('Redis frozen for 5 s (SIGSTOP) while messages flow: a v1 client on another node gets every one, once, in order; local delivery, v1 included, never pauses', async () => {
    const [a, b, c] = await Promise.all([node(), node(), node()]);
    assert.ok(a && b && c);
    const watcher = await v1(roomUrl(b, 'frozen'));
    await watcher.waitFor(1);
    const sender = await raw(roomUrl(a, 'frozen'));
    // A second sender on a third node: its messages wait in node C's outbox through the freeze.
    const senderC = await raw(roomUrl(c, 'frozen'));
    const local = await raw(roomUrl(a, 'frozen'));
    // wshub.v1 on the publishing node: on the wire, and through the client library.
    const localV1 = await v1(roomUrl(a, 'frozen'));
    await localV1.waitFor(1);
    const app = library(roomUrl(a, 'frozen'));
    libraries.push(app.client);
    await until(() => app.opened, 'the library connected');
    const total = 300;
    const sending = Promise.all([
      sendSteadily(sender, 'm', total, 20),
      sendSteadily(senderC, 'c', total, 20),
    ]);
    await new Promise((resolve) => setTimeout(resolve, 1000));
    redis.pause();
    const frozenAt = performance.now();
    const localBefore = local.received.length;
    const appBefore = app.got.length;
    // Frozen for 5 s, and until the local v1 client got 100 messages meanwhile (bounded).
    await until(
      () => performance.now() - frozenAt >= 5000 && localV1.pending.length >= 100,
      '100 pending frames',
      30_000,
    );
    const localDuring = local.received.length - localBefore;
    const appDuring = app.got.length - appBefore;
    redis.resume();
    await sending;
    assert.ok(localDuring >= 100, `raw local client got ${localDuring} messages during the freeze`);
    assert.ok(appDuring >= 100, `the library on node A delivered ${appDuring} messages during the freeze`);
    const localGot = (await local.take(2 * total, 30_000)).map((m) => m.data.toString());
    assert.deepEqual(only('m', localGot), series('m', 1, total));
    assert.deepEqual(only('c', localGot), series('c', 1, total));
    const frames = await watcher.waitFor(1 + 2 * total, 30_000);
    const payloads = payloadsFrom(frames.slice(1), 0);
    assert.deepEqual(only('m', payloads), series('m', 1, total));
    assert.deepEqual(only('c', payloads), series('c', 1, total));
    // Node A: the positioned stream is the same as node B's (positions, ids), every message once;
    // each pending frame came before its positioned copy, with the same id, and nothing in Redis's
    // order was positioned during the freeze.
    const localFrames = await localV1.waitFor(1 + 2 * total, 30_000);
    assert.deepEqual(localFrames.slice(1), frames.slice(1));
    const pendingIds = localV1.pending.map((frame) => frame.id);
    assert.deepEqual(
      localV1.pending.map((frame) => frame.data),
      frames.filter((frame) => pendingIds.includes(frame.id)).map((frame) => frame.data),
    );
    for (const frame of localV1.pending) {
      const at = localV1.all.indexOf(frame);
      assert.ok(localV1.all.findIndex((f) => f.type === 'message' && f.id === frame.id) > at);
    }
    // The application saw every message once, each sender's in order, and ends at node B's position.
    await until(() => app.client.position?.offset === 2 * total, 'the library at the last position');
    const appGot = app.got.map((m) => String(m.data));
    assert.deepEqual(only('m', appGot), series('m', 1, total));
    assert.deepEqual(only('c', appGot), series('c', 1, total));
    assert.ok(app.got.some((m) => m.pending === true && m.position === undefined));
    assert.ok(
      app.got.every((m) => m.pending !== true || String(m.data).startsWith('m')),
      'only node A’s own are pending',
    );
    assert.deepEqual(app.client.position, { epoch: frames[0]?.epoch, offset: 2 * total });
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.equal(watcher.frames.length, 1 + 2 * total, 'no duplicate after the last');
    assert.equal(app.got.length, 2 * total, 'no duplicate after the last');
    assert.equal(await metricValue(a.metricsUrl, 'wshub_outbox_messages'), 0);
    assert.equal(await metricValue(a.metricsUrl, 'wshub_outbox_dropped_total'), 0);
    assert.ok(((await metricValue(a.metricsUrl, 'wshub_history_pending_total')) ?? 0) >= 100);
    assert.equal(await metricValue(b.metricsUrl, 'wshub_history_pending_total'), 0);
  });

  it('Redis killed (-9) and restarted empty while messages flow: every message once, in order; the epoch changes with a reset; local v1 delivery goes on meanwhile', async () => {
    const [a, b] = await Promise.all([node(), node()]);
    assert.ok(a && b);
    const watcher = await v1(roomUrl(b, 'restart'));
    const epoch = (await watcher.waitFor(1))[0]?.epoch ?? '';
    const localV1 = await v1(roomUrl(a, 'restart'));
    await localV1.waitFor(1);
    const app = library(roomUrl(a, 'restart'));
    libraries.push(app.client);
    await until(() => app.opened, 'the library connected');
    const sender = await raw(roomUrl(a, 'restart'));
    const total = 300;
    const sending = sendSteadily(sender, 'm', total, 20);
    await new Promise((resolve) => setTimeout(resolve, 1500));
    await redis.kill();
    const killedAt = performance.now();
    const appBefore = app.got.length;
    // Down for 1.5 s, and until the library on node A delivered 20 messages meanwhile (bounded).
    await until(
      () => performance.now() - killedAt >= 1500 && app.got.length - appBefore >= 20,
      '20 messages while Redis is down',
    );
    const appDuring = app.got.slice(appBefore);
    await redis.start();
    await sending;
    const deadline = performance.now() + 30_000;
    let result = payloadsAcrossEpochs(watcher.frames);
    while (result.payloads.length < total && performance.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      result = payloadsAcrossEpochs(watcher.frames);
    }
    assert.deepEqual(result.payloads, series('m', 1, total));
    assert.equal(result.epochs.length, 2, `epochs seen: ${result.epochs.join(', ')}`);
    assert.equal(result.epochs[0], epoch);
    const reset = watcher.frames.find((frame) => frame.type === 'reset');
    assert.deepEqual(reset, { type: 'reset', room: 'restart', epoch: result.epochs[1], offset: 0 });
    // Node A's v1 clients: the messages published while Redis was down came at once, as pending;
    // the positioned stream is node B's; the application saw every message once, in order.
    assert.ok(appDuring.every((m) => m.pending === true && m.position === undefined));
    await until(() => payloadsAcrossEpochs(localV1.frames).payloads.length >= total, 'node A positioned all');
    assert.deepEqual(payloadsAcrossEpochs(localV1.frames), result);
    assert.deepEqual(
      localV1.frames.filter((f) => f.type === 'message'),
      watcher.frames.filter((f) => f.type === 'message'),
    );
    const last = watcher.frames.at(-1);
    await until(
      () => app.client.position?.epoch === last?.epoch && app.client.position?.offset === last?.offset,
      'the library at the last position',
    );
    assert.deepEqual(
      app.got.map((m) => m.data),
      series('m', 1, total),
    );
    assert.equal(app.resets.length, 1);
    assert.deepEqual(app.resets[0]?.position, { epoch: result.epochs[1], offset: 0 });
    assert.equal(await metricValue(a.metricsUrl, 'wshub_outbox_dropped_total'), 0);
    assert.equal(
      await metricValue(b.metricsUrl, 'wshub_history_resets_total', { reason: 'history_lost' }),
      1,
    );
  });
});
