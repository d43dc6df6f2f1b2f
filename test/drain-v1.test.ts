import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { WebSocket } from 'ws';
import { connect, type Message, type WebSocketConstructor } from 'wshub/client';
import { TestClient } from './helpers/clients.js';
import { readyzLeaving200 } from './helpers/metrics.js';
import { RedisServer, spawnNode } from './helpers/redis.js';
import type { SpawnedServer } from './helpers/server.js';
import { V1Client } from './helpers/v1.js';

/**
 * Issue 17, drains without reconnect storms: a draining node tells each wshub.v1 client to
 * reconnect elsewhere (a `reconnect` frame) before its 1001, and the client library comes back
 * within the server's window, on another node, resuming with no gap. Two real nodes sharing
 * history through a real Redis.
 */

const HISTORY = ['--history-size=5000', '--history-ttl=10m'];

async function until(condition: () => boolean, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!condition()) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

describe('a draining node tells wshub.v1 clients to reconnect elsewhere (issue 17)', () => {
  let redis: RedisServer;
  const nodes: SpawnedServer[] = [];
  const cleanups: Array<() => void> = [];
  before(async () => {
    redis = await RedisServer.start();
  });
  after(async () => {
    for (const cleanup of cleanups) cleanup();
    for (const node of nodes) node.kill('SIGKILL');
    await redis.stop();
  });

  async function node(extra: string[] = []): Promise<SpawnedServer> {
    const spawned = await spawnNode(redis, [...HISTORY, ...extra]);
    nodes.push(spawned);
    return spawned;
  }

  it('a raw wshub.v1 client gets the reconnect frame, then 1001; a raw client only the 1001', async () => {
    const a = await node(['--drain-window=200ms']);
    const v1 = await V1Client.open(`ws://127.0.0.1:${a.port}/ws/room1`);
    cleanups.push(() => v1.ws.terminate());
    const raw = await TestClient.open(`ws://127.0.0.1:${a.port}/ws/room1`);
    cleanups.push(() => raw.ws.terminate());
    await v1.waitFor(1);
    a.kill('SIGTERM');
    assert.equal((await v1.closed).code, 1001);
    const frames = v1.frames as unknown as Array<Record<string, unknown>>;
    assert.equal(frames[0]?.type, 'welcome');
    // The last frame before the close: reconnect, with the window the node chose (2 connections over
    // 200 ms: one close every 100 ms, the smallest window a reconnect frame carries).
    assert.deepEqual(frames.at(-1), { type: 'reconnect', room: 'room1', reason: 'shutdown', within_ms: 100 });
    assert.equal(frames.length, 2);
    assert.equal((await raw.closed).code, 1001);
    assert.equal(raw.received.length, 0, 'a raw client gets no reconnect frame');
    assert.equal((await a.exited).code, 0);
    await a.stdout.waitFor(/Told 1 wshub\.v1 client to reconnect elsewhere within 100ms before their 1001$/);
  });

  it('the client library reconnects to another node within the window and resumes with no gap', async () => {
    const [a, b] = await Promise.all([
      // The drain delay is the load balancer's time to notice /readyz 503 (here: the loop below), even on a loaded machine.
      node(['--drain-delay=1500ms', '--drain-window=500ms', '--shutdown-timeout=5s']),
      node(),
    ]);
    // The load balancer: sends new connections to A until A's readiness fails, then to B.
    let target = a;
    const urls: string[] = [];
    const sockets: Array<{ frames: string[]; close?: number }> = [];
    class ThroughBalancer extends WebSocket {
      constructor(url: string, protocols?: string | string[]) {
        const routed = url.replace(/127\.0\.0\.1:\d+/, `127.0.0.1:${target.port}`);
        super(routed, protocols);
        urls.push(routed);
        const seen: { frames: string[]; close?: number } = { frames: [] };
        sockets.push(seen);
        this.on('message', (data: Buffer) => seen.frames.push(String(data)));
        this.on('close', (code: number) => {
          seen.close = code;
        });
      }
    }
    const got: Message[] = [];
    const opens: Array<{ resumed: boolean }> = [];
    const closes: Array<{ code: number; retryInMs?: number; drained?: boolean }> = [];
    const client = connect(`ws://127.0.0.1:${a.port}/ws/drain`, {
      WebSocket: ThroughBalancer as unknown as WebSocketConstructor,
      // A backoff this long would outlast the test: only the reconnect frame brings the client back in time.
      minDelayMs: 60_000,
      onMessage: (message) => got.push(message),
      onOpen: (info) => opens.push(info),
      onClose: (info) => closes.push(info),
    });
    cleanups.push(() => client.close());
    await until(() => opens.length === 1, 'the first welcome');

    const producer = await TestClient.open(`ws://127.0.0.1:${b.port}/ws/drain`);
    cleanups.push(() => producer.ws.terminate());
    const total = 600;
    const sending = (async () => {
      for (let i = 1; i <= total; i++) {
        producer.ws.send(`m${i}`);
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
    })();
    await until(() => got.length >= 50, '50 messages');
    a.kill('SIGTERM');
    // What a load balancer does on the first failed readiness probe.
    assert.equal(await readyzLeaving200(a.metricsUrl, 5000), 503, "A's /readyz turns 503 on SIGTERM");
    target = b;
    await sending;
    await until(() => got.length >= total, `${total} messages`);

    // Every message once, in order, with consecutive positions: no gap at the move from A to B.
    assert.deepEqual(
      got.map((message) => message.data),
      Array.from({ length: total }, (_, i) => `m${i + 1}`),
    );
    assert.deepEqual(
      got.map((message) => message.position?.offset),
      Array.from({ length: total }, (_, i) => i + 1),
    );
    // On A: the reconnect frame was the last frame, then 1001.
    const onA = sockets[0] as { frames: string[]; close?: number };
    assert.deepEqual(JSON.parse(onA.frames.at(-1) as string), {
      type: 'reconnect',
      room: 'drain',
      reason: 'shutdown',
      within_ms: 500,
    });
    assert.equal(onA.close, 1001);
    // The client came back within the server's window (not after its 60 s backoff), to B, resuming.
    assert.equal(closes[0]?.code, 1001);
    assert.equal(closes[0]?.drained, true);
    const retry = closes[0]?.retryInMs ?? -1;
    assert.ok(retry >= 0 && retry < 500, `reconnected after ${retry} ms, window 500 ms`);
    assert.equal(sockets.length, 2);
    assert.match(
      urls[1] as string,
      new RegExp(`^ws://127\\.0\\.0\\.1:${b.port}/ws/drain\\?since=[0-9a-f]{12}%3A\\d+$`),
    );
    assert.equal(opens.length, 2);
    assert.equal(opens[1]?.resumed, true);
    assert.equal((await a.exited).code, 0);
  });
});
