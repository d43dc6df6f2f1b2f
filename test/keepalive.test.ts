import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { connect, type Message } from 'wshub/client';
import { TestClient } from './helpers/clients.js';
import { metricValue, sampleValue } from './helpers/metrics.js';
import { type InProcessServer, startServer } from './helpers/server.js';
import { closedByServer, sendUpgrade } from './helpers/upgrade.js';
import { V1Client } from './helpers/v1.js';

const serverDisconnects = (server: InProcessServer, reason: string) =>
  metricValue(server.metricsUrl, 'websocket_server_disconnects_total', { reason });

/** Polls `read` until `done` holds for its value; bounded by `timeoutMs`. */
async function eventually<T>(
  read: () => Promise<T>,
  done: (value: T) => boolean,
  timeoutMs = 5000,
): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  let value = await read();
  while (!done(value) && performance.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 25));
    value = await read();
  }
  return value;
}

describe('keepalive pings (--ping-interval, --ping-timeout)', () => {
  let server: InProcessServer;
  before(async () => {
    // The timeout leaves room for a loaded CI machine: a well-behaved client must never miss it.
    server = await startServer(['--stats-interval=0', '--ping-interval=200ms', '--ping-timeout=1500ms']);
  });
  after(() => server.app.stop());

  it('terminates a peer that never answers a ping, counted and logged as ping_timeout', async () => {
    const raw = await sendUpgrade(server.app.port);
    assert.equal(raw.status, 101);
    const received: Buffer[] = [];
    raw.socket.on('data', (chunk: Buffer) => received.push(chunk));
    await closedByServer(raw.socket);
    const bytes = Buffer.concat(received);
    // A ping (FIN + opcode 0x9) with an empty payload, and no close frame: a dead peer gets no handshake.
    assert.deepEqual([...bytes.subarray(0, 2)], [0x89, 0x00]);
    assert.ok(!bytes.includes(0x88), 'no close frame');
    assert.equal(await serverDisconnects(server, 'ping_timeout'), 1);
    await server.log.waitFor(/^WebSocket ping timeout: 127\.0\.0\.1:\d+ did not answer a ping within 1500ms/);
    await server.log.waitFor(/^WebSocket disconnected: 127\.0\.0\.1:\d+$/);
  });

  it('keeps a peer that answers pings, and records round trips in websocket_ping_rtt_seconds', async () => {
    const before = (await serverDisconnects(server, 'ping_timeout')) ?? 0;
    const client = await TestClient.open(server.url);
    let pings = 0;
    client.ws.on('ping', () => pings++);
    const count = await eventually(
      async () => (await metricValue(server.metricsUrl, 'websocket_ping_rtt_seconds_count')) ?? 0,
      (value) => value >= 3,
    );
    assert.ok(count >= 3, `expected 3 round trips, saw ${count}`);
    assert.ok(pings >= 3);
    // One scrape, so count, sum and buckets describe the same moment.
    const text = await (await fetch(`${server.metricsUrl}/metrics`)).text();
    const scraped = sampleValue(text, 'websocket_ping_rtt_seconds_count') ?? 0;
    const sum = sampleValue(text, 'websocket_ping_rtt_seconds_sum') ?? -1;
    assert.ok(sum >= 0 && sum < scraped * 1.5, `sum ${sum}s of ${scraped} round trips`);
    assert.equal(sampleValue(text, 'websocket_ping_rtt_seconds_bucket', { le: '+Inf' }), scraped);
    await client.send('alive');
    assert.equal((await client.next()).data.toString(), 'alive');
    assert.equal(await serverDisconnects(server, 'ping_timeout'), before);
    await client.close();
  });
});

describe('one timer for all connections', () => {
  let server: InProcessServer;
  before(async () => {
    server = await startServer([
      '--stats-interval=0',
      '--ping-interval=1s',
      '--idle-timeout=1m',
      '--max-connection-lifetime=1h',
    ]);
  });
  after(() => server.app.stop());

  it('opening 50 connections with pings, idle timeout and lifetime on adds no timer', async () => {
    // Count every timer created while the connections open (getActiveResourcesInfo misses unref'd ones).
    let created = 0;
    const { setTimeout: realTimeout, setInterval: realInterval } = globalThis;
    const counting = <F extends (...args: never[]) => unknown>(real: F): F =>
      ((...args: Parameters<F>) => {
        created++;
        return real(...args);
      }) as F;
    globalThis.setTimeout = counting(realTimeout);
    globalThis.setInterval = counting(realInterval);
    const clients = await Promise.all(Array.from({ length: 50 }, () => TestClient.open(server.url))).finally(
      () => {
        globalThis.setTimeout = realTimeout;
        globalThis.setInterval = realInterval;
      },
    );
    assert.equal(server.app.connectionCount(), 50);
    assert.equal(created, 0);
    await Promise.all(clients.map((client) => client.close()));
  });
});

describe('idle timeout (--idle-timeout)', () => {
  let server: InProcessServer;
  before(async () => {
    server = await startServer(['--stats-interval=0', '--idle-timeout=1s', '--ping-interval=100ms']);
  });
  after(() => server.app.stop());

  it('closes with 1000 a client that sends nothing, although it answers pings', async () => {
    const idle = await TestClient.open(server.url);
    let pings = 0;
    idle.ws.on('ping', () => pings++);
    const active = await TestClient.open(server.url);
    let activeClosed = false;
    void active.closed.then(() => {
      activeClosed = true;
    });
    // The active client sends a message every 100 ms, well past the idle client's end.
    const activeSends = (async () => {
      for (let i = 0; i < 25 && !activeClosed; i++) {
        await active.send(`tick ${i}`);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    })();
    const closed = await idle.closed;
    assert.deepEqual(closed, { code: 1000, reason: 'idle timeout' });
    assert.ok(pings >= 1, 'the idle client was pinged and answered');
    await activeSends;
    assert.equal(activeClosed, false, 'a client that sends messages is not idle');
    assert.equal(await serverDisconnects(server, 'idle_timeout'), 1);
    await server.log.waitFor(/^WebSocket idle timeout: closing 127\.0\.0\.1:\d+ \(no message for 1000ms\)$/);
    await active.close();
  });
});

describe('connection lifetime (--max-connection-lifetime)', () => {
  let server: InProcessServer;
  before(async () => {
    server = await startServer(['--stats-interval=0', '--max-connection-lifetime=1s', '--ping-interval=0']);
  });
  after(() => server.app.stop());

  it('closes each connection with 1001 after the lifetime minus at most 10% jitter', async () => {
    const started = performance.now();
    const clients = await Promise.all([1, 2, 3].map(() => TestClient.open(server.url)));
    let pings = 0;
    for (const client of clients) client.ws.on('ping', () => pings++);
    const ends = await Promise.all(
      clients.map(async (client) => ({ ...(await client.closed), at: performance.now() })),
    );
    for (const end of ends) {
      assert.equal(end.code, 1001);
      assert.equal(end.reason, 'connection lifetime reached, please reconnect');
      assert.ok(end.at - started >= 900, `closed after ${end.at - started}ms, before 90% of the lifetime`);
    }
    assert.equal(pings, 0, '--ping-interval=0 sends no pings');
    assert.equal(await serverDisconnects(server, 'max_lifetime'), 3);
    await server.log.waitFor(
      /^WebSocket connection lifetime reached: closing 127\.0\.0\.1:\d+ so it reconnects$/,
    );
  });
});

describe('connection lifetime with wshub.v1 (--max-connection-lifetime, --history-size)', () => {
  let server: InProcessServer;
  before(async () => {
    server = await startServer([
      '--stats-interval=0',
      '--mode=broadcast',
      '--history-size=100',
      '--max-connection-lifetime=1s',
      '--ping-interval=0',
    ]);
  });
  after(() => server.app.stop());

  it('a wshub.v1 client is told to reconnect (reason max_lifetime) right before its 1001, counted by reason', async () => {
    const v1 = await V1Client.open(`${server.url}/life`);
    const closed = await v1.closed;
    assert.equal(closed.code, 1001);
    assert.equal(closed.reason, 'connection lifetime reached, please reconnect');
    // One connection: lifetimes are spread over 2 × 10% of 1 s, so it is asked back within 200 ms.
    assert.deepEqual(
      v1.frames.map((frame) => frame.type),
      ['welcome', 'reconnect'],
    );
    assert.deepEqual(v1.frames[1], {
      type: 'reconnect',
      room: 'life',
      reason: 'max_lifetime',
      within_ms: 200,
    });
    assert.equal(
      await metricValue(server.metricsUrl, 'wshub_reconnect_frames_total', { reason: 'max_lifetime' }),
      1,
    );
    assert.equal(
      await metricValue(server.metricsUrl, 'wshub_reconnect_frames_total', { reason: 'shutdown' }),
      0,
    );
  });

  it('the client library comes back within that window (not after its backoff) and resumes with no gap', async () => {
    const got: Message[] = [];
    const opens: Array<{ resumed: boolean }> = [];
    const closes: Array<{ code: number; retryInMs?: number; drained?: boolean }> = [];
    const client = connect(`${server.url}/life2`, {
      // A backoff this long would outlast the test: only the reconnect frame brings the client back in time.
      minDelayMs: 60_000,
      onMessage: (message) => got.push(message),
      onOpen: (info) => opens.push(info),
      onClose: (info) => closes.push(info),
    });
    try {
      const publish = async (text: string): Promise<void> => {
        const producer = await TestClient.open(`${server.url}/life2`);
        await producer.send(text);
        producer.ws.close();
      };
      await eventually(
        async () => opens.length,
        (count) => count === 1,
      );
      await publish('before');
      await eventually(
        async () => got.length,
        (count) => count === 1,
      );
      await eventually(
        async () => opens.length,
        (count) => count === 2,
        10_000,
      );
      assert.equal(closes[0]?.code, 1001);
      assert.equal(closes[0]?.drained, true);
      const retry = closes[0]?.retryInMs ?? -1;
      assert.ok(retry >= 0 && retry < 200, `reconnected after ${retry} ms, window 200 ms`);
      assert.equal(opens[1]?.resumed, true);
      await publish('after');
      await eventually(
        async () => got.length,
        (count) => count === 2,
      );
      assert.deepEqual(
        got.map((message) => [message.data, message.position?.offset]),
        [
          ['before', 1],
          ['after', 2],
        ],
      );
    } finally {
      client.close();
    }
  });
});
