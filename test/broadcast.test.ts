import assert from 'node:assert/strict';
import { once } from 'node:events';
import { afterEach, describe, it } from 'node:test';
import { rawHttp, TestClient } from './helpers/clients.js';
import { metricValue, waitForMetric } from './helpers/metrics.js';
import { type InProcessServer, startServer } from './helpers/server.js';

const open: TestClient[] = [];
let server: InProcessServer | undefined;

async function broadcastServer(flags: string[] = []): Promise<InProcessServer> {
  server = await startServer(['--mode=broadcast', '--stats-interval=0', ...flags]);
  return server;
}

async function connect(path = '/ws'): Promise<TestClient> {
  assert.ok(server);
  const client = await TestClient.open(`ws://127.0.0.1:${server.app.port}${path}`);
  open.push(client);
  return client;
}

/** Proves an absence after a later marker message arrived: nothing else is queued. */
function assertNothingQueued(client: TestClient): void {
  assert.deepEqual(
    client.received.map((m) => m.data.toString()),
    [],
  );
}

afterEach(async () => {
  for (const client of open.splice(0)) client.ws.terminate();
  await server?.app.stop();
  server = undefined;
});

describe('broadcast mode', () => {
  it('delivers every message to every client of the room, the sender included', async () => {
    const s = await broadcastServer();
    const clients = await Promise.all([connect(), connect(), connect(), connect()]);
    await waitForMetric(s.metricsUrl, 'websocket_connected_clients', 4);
    await clients[1]?.send('hello all');
    for (const client of clients) {
      const message = await client.next();
      assert.equal(message.data.toString(), 'hello all');
      assert.equal(message.isBinary, false);
    }
    assert.equal(await metricValue(s.metricsUrl, 'websocket_messages_total'), 1);
    assert.equal(await metricValue(s.metricsUrl, 'websocket_messages_delivered_total'), 4);
    assert.equal(await metricValue(s.metricsUrl, 'websocket_received_bytes_total'), 9);
    assert.equal(await metricValue(s.metricsUrl, 'websocket_sent_bytes_total'), 36);
    assert.equal(await metricValue(s.metricsUrl, 'websocket_connections_total'), 4);
    assert.equal(await metricValue(s.metricsUrl, 'websocket_connections'), 4);
  });

  it('keeps binary binary, byte for byte, for large and empty messages', async () => {
    await broadcastServer();
    const [a, b] = await Promise.all([connect(), connect()]);
    const large = Buffer.alloc(300 * 1024);
    for (let i = 0; i < large.length; i++) large[i] = (i * 7) & 0xff;
    await a?.send(large, { binary: true });
    await a?.send(Buffer.alloc(0), { binary: true });
    await a?.send('');
    for (const client of [a, b]) {
      const [big, emptyBinary, emptyText] = (await client?.take(3)) ?? [];
      assert.equal(big?.isBinary, true);
      assert.ok(big?.data.equals(large));
      assert.deepEqual([emptyBinary?.isBinary, emptyBinary?.data.length], [true, 0]);
      assert.deepEqual([emptyText?.isBinary, emptyText?.data.length], [false, 0]);
    }
  });

  it('leaves the sender out with --broadcast-exclude-sender', async () => {
    const s = await broadcastServer(['--broadcast-exclude-sender']);
    const [sender, other] = await Promise.all([connect(), connect()]);
    await sender?.send('not for me');
    assert.equal((await other?.next())?.data.toString(), 'not for me');
    // The other client answers; when its message reaches the sender, the sender's own would have arrived first.
    await other?.send('marker');
    assert.equal((await sender?.next())?.data.toString(), 'marker');
    assertNothingQueued(sender as TestClient);
    assert.equal(await metricValue(s.metricsUrl, 'websocket_messages_delivered_total'), 2);
  });

  it('scopes a broadcast to the room in the path, /ws being the default room', async () => {
    await broadcastServer();
    const [red1, red2, blue, lobby] = await Promise.all([
      connect('/ws/red'),
      connect('/ws/red'),
      connect('/ws/blue.room_2-x'),
      connect('/ws'),
    ]);
    await red1?.send('to red');
    await blue?.send('to blue');
    await lobby?.send('to lobby');
    assert.equal((await red1?.next())?.data.toString(), 'to red');
    assert.equal((await red2?.next())?.data.toString(), 'to red');
    assert.equal((await blue?.next())?.data.toString(), 'to blue');
    assert.equal((await lobby?.next())?.data.toString(), 'to lobby');
    // Each room's next message proves the earlier ones of other rooms did not arrive.
    await red2?.send('red again');
    await blue?.send('blue again');
    await lobby?.send('lobby again');
    assert.equal((await red1?.next())?.data.toString(), 'red again');
    assert.equal((await blue?.next())?.data.toString(), 'blue again');
    assert.equal((await lobby?.next())?.data.toString(), 'lobby again');
  });

  it('refuses an invalid room name with 400, counted as invalid_room; no metric label carries a room name', async () => {
    const s = await broadcastServer();
    await connect('/ws/secret-room-name');
    for (const path of ['/ws/bad%20name', `/ws/${'x'.repeat(65)}`, '/ws/a/b', '/ws/..']) {
      const response = await rawHttp(
        s.app.port,
        `GET ${path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
          'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
      );
      assert.match(response, /^HTTP\/1\.1 400 /, path);
    }
    assert.equal(
      await metricValue(s.metricsUrl, 'websocket_upgrades_rejected_total', { reason: 'invalid_room' }),
      4,
    );
    const metrics = await (await fetch(`${s.metricsUrl}/metrics`)).text();
    assert.doesNotMatch(metrics, /secret-room-name/);
  });

  it('counts a disconnect once and keeps the gauge exact', async () => {
    const s = await broadcastServer();
    const [a, b, c] = await Promise.all([connect(), connect(), connect()]);
    await waitForMetric(s.metricsUrl, 'websocket_connected_clients', 3);
    await b?.close();
    assert.equal(await waitForMetric(s.metricsUrl, 'websocket_connected_clients', 2), 2);
    assert.equal(await metricValue(s.metricsUrl, 'websocket_disconnections_total'), 1);
    await a?.send('after b left');
    assert.equal((await c?.next())?.data.toString(), 'after b left');
    assert.equal(await metricValue(s.metricsUrl, 'websocket_messages_delivered_total'), 2);
    assert.equal(s.log.count(/WebSocket disconnected/), 1);
  });

  it('50 clients broadcasting at once: each receives every message exactly once, in each sender order', async () => {
    const s = await broadcastServer();
    const clientCount = 50;
    const perSender = 20;
    const clients = await Promise.all(Array.from({ length: clientCount }, () => connect()));
    await waitForMetric(s.metricsUrl, 'websocket_connected_clients', clientCount);
    const total = clientCount * perSender;
    const receiving = clients.map((client) => client.take(total, 30_000));
    await Promise.all(
      clients.map(async (client, sender) => {
        for (let seq = 0; seq < perSender; seq++) await client.send(`${sender}:${seq}`);
      }),
    );
    const inboxes = await Promise.all(receiving);
    for (const inbox of inboxes) {
      const nextSeq = new Array<number>(clientCount).fill(0);
      for (const message of inbox) {
        const [sender, seq] = message.data.toString().split(':').map(Number) as [number, number];
        assert.equal(seq, nextSeq[sender], `sender ${sender} out of order or duplicated`);
        nextSeq[sender] = seq + 1;
      }
      assert.deepEqual(nextSeq, new Array<number>(clientCount).fill(perSender));
    }
    assert.equal(await metricValue(s.metricsUrl, 'websocket_messages_total'), total);
    assert.equal(await metricValue(s.metricsUrl, 'websocket_messages_delivered_total'), total * clientCount);
    for (const client of clients) assert.deepEqual(client.received, []);
  });

  it('accepts room paths in echo mode and echoes only to the sender', async () => {
    server = await startServer(['--stats-interval=0']);
    const [a, b] = await Promise.all([connect('/ws/room1'), connect('/ws/room1')]);
    await a?.send('mine');
    await b?.send('yours');
    assert.equal((await a?.next())?.data.toString(), 'mine');
    assert.equal((await b?.next())?.data.toString(), 'yours');
    assert.deepEqual(a?.received, []);
  });

  it('ends the message stream of a closed client without delaying the others', async () => {
    const s = await broadcastServer();
    const [a, b] = await Promise.all([connect(), connect()]);
    a?.ws.terminate();
    await once(a?.ws as NonNullable<typeof a>['ws'], 'close');
    await waitForMetric(s.metricsUrl, 'websocket_connected_clients', 1);
    await b?.send('still here');
    assert.equal((await b?.next())?.data.toString(), 'still here');
  });
});
