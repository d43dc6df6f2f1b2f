import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { rawHandshake, TestClient } from './helpers/clients.js';
import { assertZeroMetrics, metricValue, QUIET_HISTORY_METRICS, waitForMetric } from './helpers/metrics.js';
import { type InProcessServer, startServer } from './helpers/server.js';
import { payloadsFrom, V1Client } from './helpers/v1.js';

const clients: Array<{ ws: { terminate(): void } }> = [];
let server: InProcessServer | undefined;

async function historyServer(flags: string[] = []): Promise<InProcessServer> {
  server = await startServer(['--mode=broadcast', '--stats-interval=0', '--history-size=100', ...flags]);
  return server;
}

function url(path = '/ws'): string {
  assert.ok(server);
  return `ws://127.0.0.1:${server.app.port}${path}`;
}

async function v1(path = '/ws', options = {}): Promise<V1Client> {
  const client = await V1Client.open(url(path), options);
  clients.push(client);
  return client;
}

async function raw(path = '/ws'): Promise<TestClient> {
  const client = await TestClient.open(url(path));
  clients.push(client);
  return client;
}

const series = (prefix: string, from: number, to: number): string[] =>
  Array.from({ length: to - from + 1 }, (_, i) => `${prefix}${from + i}`);

afterEach(async () => {
  for (const client of clients.splice(0)) client.ws.terminate();
  await server?.app.stop();
  server = undefined;
});

describe('room history on one node (--history-size, wshub.v1)', () => {
  it('a wshub.v1 client is welcomed at the room position and gets positioned frames; raw clients are unchanged', async () => {
    await historyServer();
    const sender = await raw('/ws/lobby');
    const positioned = await v1('/ws/lobby');
    const [welcome] = await positioned.waitFor(1);
    assert.equal(welcome?.type, 'welcome');
    assert.equal(welcome?.room, 'lobby');
    assert.match(welcome?.epoch ?? '', /^[0-9a-f]{12}$/);
    assert.equal(welcome?.offset, 0);
    for (const text of series('m', 1, 5)) await sender.send(text);
    await sender.send(Buffer.from([0, 1, 2, 255]), { binary: true });
    assert.deepEqual(
      (await sender.take(6)).map((m) => m.data.toString('hex')),
      [...series('m', 1, 5).map((t) => Buffer.from(t).toString('hex')), '000102ff'],
    );
    const frames = (await positioned.waitFor(7)).slice(1);
    assert.deepEqual(payloadsFrom(frames.slice(0, 5), 0), series('m', 1, 5));
    assert.deepEqual(frames[5], {
      type: 'message',
      room: 'lobby',
      epoch: welcome?.epoch,
      offset: 6,
      data_b64: Buffer.from([0, 1, 2, 255]).toString('base64'),
    });
    // The default room is named '' on the wire.
    const lobbyless = await v1('/ws');
    assert.deepEqual((await lobbyless.waitFor(1))[0]?.room, '');
  });

  it('resume: ?since= replays exactly what was missed, then continues live; a v1 sender gets its own messages', async () => {
    const s = await historyServer();
    const first = await v1('/ws/r');
    const [welcome] = await first.waitFor(1);
    const epoch = welcome?.epoch ?? '';
    for (const text of series('a', 1, 3)) await first.send(text);
    assert.deepEqual(payloadsFrom((await first.waitFor(4)).slice(1), 0), series('a', 1, 3));
    await first.close();
    const other = await raw('/ws/r');
    for (const text of series('b', 4, 10)) await other.send(text);
    await other.take(7);
    const resumed = await v1(`/ws/r?since=${epoch}:3`);
    const frames = await resumed.waitFor(8);
    assert.deepEqual(frames[0], { type: 'welcome', room: 'r', epoch, offset: 3 });
    assert.deepEqual(payloadsFrom(frames.slice(1), 3), series('b', 4, 10));
    await other.send('live');
    const [live] = (await resumed.waitFor(9)).slice(8);
    assert.deepEqual(live, { type: 'message', room: 'r', epoch, offset: 11, data: 'live' });
    assert.equal(await metricValue(s.metricsUrl, 'wshub_history_replays_total'), 1);
    assert.equal(await metricValue(s.metricsUrl, 'wshub_history_replayed_messages_total'), 7);
    assert.equal(await metricValue(s.metricsUrl, 'wshub_history_entries'), 11);
    assert.equal(await metricValue(s.metricsUrl, 'wshub_history_bytes'), 3 * 2 + 6 * 2 + 3 + 4);
    // Every history metric exists on one node too; there is no outbox without Redis.
    await assertZeroMetrics(s.metricsUrl, QUIET_HISTORY_METRICS);
    // Up to date: welcome at the same position, nothing replayed.
    const current = await v1(`/ws/r?since=${epoch}:11`);
    assert.deepEqual(await current.waitFor(1), [{ type: 'welcome', room: 'r', epoch, offset: 11 }]);
  });

  it('a position too old or from another epoch gets welcome + reset with the current position', async () => {
    const s = await historyServer(['--history-size=5']);
    const sender = await raw();
    const watcher = await v1();
    const epoch = (await watcher.waitFor(1))[0]?.epoch ?? '';
    for (const text of series('m', 1, 20)) await sender.send(text);
    await watcher.waitFor(21);
    const old = await v1(`/ws?since=${epoch}:10`);
    assert.deepEqual(await old.waitFor(2), [
      { type: 'welcome', room: '', epoch, offset: 20 },
      { type: 'reset', room: '', epoch, offset: 20 },
    ]);
    // Within the 5 kept: 16..20 are there, so since=15 replays them.
    const recent = await v1(`/ws?since=${epoch}:15`);
    assert.deepEqual(payloadsFrom((await recent.waitFor(6)).slice(1), 15), series('m', 16, 20));
    const stranger = await v1('/ws?since=0123456789ab:3');
    assert.deepEqual(await stranger.waitFor(2), [
      { type: 'welcome', room: '', epoch, offset: 20 },
      { type: 'reset', room: '', epoch, offset: 20 },
    ]);
    await sender.send('after');
    assert.equal((await old.waitFor(3))[2]?.offset, 21);
    assert.equal((await stranger.waitFor(3))[2]?.data, 'after');
    assert.equal(await metricValue(s.metricsUrl, 'wshub_history_resets_total', { reason: 'too_old' }), 1);
    assert.equal(await metricValue(s.metricsUrl, 'wshub_history_resets_total', { reason: 'other_epoch' }), 1);
    assert.equal(await metricValue(s.metricsUrl, 'wshub_history_entries'), 5);
  });

  it('a malformed ?since= is refused with 400 and counted; without --history-size wshub.v1 is not negotiated', async () => {
    const s = await historyServer();
    const answer = await rawHandshake(s.app.port, '/ws?since=nope');
    assert.match(answer.response, /^HTTP\/1\.1 400 /);
    assert.match(answer.response, /since must be EPOCH:OFFSET/);
    answer.socket.destroy();
    assert.equal(
      await metricValue(s.metricsUrl, 'websocket_upgrades_rejected_total', { reason: 'invalid_position' }),
      1,
    );
    await s.app.stop();
    server = await startServer(['--mode=broadcast', '--stats-interval=0']);
    await assert.rejects(V1Client.open(url()), /server chose protocol ""|Server sent no subprotocol/);
  });

  it('the TTL forgets a quiet room: the next message starts a new epoch and v1 clients get a reset to it', async () => {
    await historyServer(['--history-ttl=1s']);
    const watcher = await v1();
    const sender = await raw();
    const epoch = (await watcher.waitFor(1))[0]?.epoch ?? '';
    await sender.send('one');
    await watcher.waitFor(2);
    await new Promise((resolve) => setTimeout(resolve, 1100));
    await sender.send('two');
    const frames = (await watcher.waitFor(4)).slice(2);
    assert.equal(frames[0]?.type, 'reset');
    assert.notEqual(frames[0]?.epoch, epoch);
    assert.equal(frames[0]?.offset, 0);
    assert.deepEqual(frames[1], {
      type: 'message',
      room: '',
      epoch: frames[0]?.epoch,
      offset: 1,
      data: 'two',
    });
  });

  it('a 10,000-message replay through a small outbound buffer, with live messages during it: no gap, no duplicate', async () => {
    // The sender does not get its own messages (raw clients only), so only the resuming client reads.
    const s = await historyServer([
      '--history-size=20000',
      '--max-buffered-bytes=16KiB',
      '--compression',
      '--broadcast-exclude-sender',
    ]);
    const sender = await raw();
    for (let i = 1; i <= 10_000; i++) sender.ws.send(`m${i}`);
    assert.equal(await waitForMetric(s.metricsUrl, 'wshub_history_entries', 10_000, {}, 30_000), 10_000);
    const probe = await v1();
    const epoch = (await probe.waitFor(1))[0]?.epoch ?? '';
    probe.ws.terminate();
    const resumed = await v1(`/ws?since=${epoch}:0`, { perMessageDeflate: true });
    assert.match(resumed.ws.extensions, /permessage-deflate/);
    for (let i = 10_001; i <= 10_500; i++) {
      sender.ws.send(`m${i}`);
      if (i % 50 === 0) await new Promise((resolve) => setImmediate(resolve));
    }
    const frames = await resumed.waitFor(10_501, 30_000);
    assert.deepEqual(frames[0], { type: 'welcome', room: '', epoch, offset: 0 });
    assert.deepEqual(payloadsFrom(frames.slice(1), 0), series('m', 1, 10_500));
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(resumed.frames.length, 10_501, 'nothing after the last message');
    assert.equal(
      await metricValue(s.metricsUrl, 'websocket_server_disconnects_total', { reason: 'slow_consumer' }),
      0,
    );
    assert.equal(await metricValue(s.metricsUrl, 'wshub_history_replays_total'), 1);
  });
});
