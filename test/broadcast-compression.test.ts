import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import { constants, inflateRawSync } from 'node:zlib';
import { clientFrame, TestClient } from './helpers/clients.js';
import type { ServerFrame } from './helpers/frames.js';
import { metricValue, waitForMetric } from './helpers/metrics.js';
import { clientClose, openRaw, type RawClient } from './helpers/raw.js';
import { type InProcessServer, startServer } from './helpers/server.js';

// Issue 5: with --compression, a broadcast is compressed once per negotiated server
// window and the same RSV1 frame is written to every receiver of that window
// (RFC 7692 §7.1.1.1: wshub requires server_no_context_takeover, so a message's
// compressed bytes do not depend on the connection). What receivers see must be
// exactly what per-connection compression gave them.

const TEXT = 0x1;
const BINARY = 0x2;
const RSV1 = 0x40;
const PING = 0x9;
const PONG = 0xa;
const TAIL = Buffer.from([0x00, 0x00, 0xff, 0xff]);
const COMPRESSIONS = 'wshub_broadcast_compressions_total';

/** A raw client's permessage-deflate offer; `extra` adds parameters (e.g. a smaller server window). */
const offer = (extra = ''): string =>
  `Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits${extra}`;

/** The payload of a server frame, inflated with zlib when RSV1 says it is compressed (§7.2.2). */
function payloadOf(frame: ServerFrame, windowBits = 15): Buffer {
  if ((frame.rsv & RSV1) === 0) return frame.payload;
  return inflateRawSync(Buffer.concat([frame.payload, TAIL]), {
    finishFlush: constants.Z_SYNC_FLUSH,
    windowBits,
  });
}

function json(bytes: number, seed = 0): string {
  const items: string[] = [];
  for (let i = 0; items.join(',').length < bytes; i++)
    items.push(`{"id":${i + seed},"name":"user${i * 7 + seed}","ok":${i % 2 === 0}}`);
  return `[${items.join(',')}]`.slice(0, bytes);
}

describe('broadcast with --compression: one compression per message and window', () => {
  let server: InProcessServer;
  const raws: RawClient[] = [];
  const clients: TestClient[] = [];

  before(async () => {
    server = await startServer([
      '--mode=broadcast',
      '--broadcast-exclude-sender',
      '--compression',
      '--stats-interval=0',
    ]);
  });
  after(() => server.app.stop());
  afterEach(async () => {
    for (const client of clients.splice(0)) await client.close();
    for (const raw of raws.splice(0)) {
      raw.send(clientClose(1000));
      await raw.reader.waitForEnd();
    }
    await waitForMetric(server.metricsUrl, 'websocket_connections', 0);
  });

  async function raw(...headers: string[]): Promise<RawClient> {
    const client = await openRaw(server.app.port, '/ws', headers);
    assert.match(client.response, /^HTTP\/1\.1 101 /);
    raws.push(client);
    return client;
  }

  async function wsClient(options: Parameters<typeof TestClient.open>[1]): Promise<TestClient> {
    const client = await TestClient.open(server.url, options);
    clients.push(client);
    return client;
  }

  async function compressions(): Promise<number> {
    return (await metricValue(server.metricsUrl, COMPRESSIONS)) ?? Number.NaN;
  }

  it('ws clients and raw clients decoding RSV1 with inflateRaw all get the message; compressed once', async () => {
    const wsClients = await Promise.all(
      Array.from({ length: 5 }, () => wsClient({ perMessageDeflate: true })),
    );
    for (const client of wsClients) assert.match(client.ws.extensions, /permessage-deflate/);
    const raws = await Promise.all(Array.from({ length: 20 }, () => raw(offer())));
    for (const client of raws) assert.match(client.response, /server_no_context_takeover/);
    const publisher = await wsClient({ perMessageDeflate: false });
    const before = await compressions();
    const writesBefore = (await metricValue(server.metricsUrl, 'wshub_socket_writes_total')) ?? 0;
    const message = json(20_000);
    await publisher.send(message);
    for (const client of wsClients) {
      const received = await client.next();
      assert.equal(received.isBinary, false);
      assert.equal(received.data.toString(), message);
    }
    let wire: Buffer | undefined;
    for (const client of raws) {
      const frame = await client.reader.next();
      assert.deepEqual([frame.fin, frame.rsv, frame.opcode], [true, RSV1, TEXT]);
      assert.ok(frame.payload.length < message.length / 3, `compressed to ${frame.payload.length} bytes`);
      assert.equal(payloadOf(frame).toString(), message);
      wire ??= frame.payload;
      assert.ok(frame.payload.equals(wire), 'every receiver got the same compressed bytes');
    }
    assert.equal((await compressions()) - before, 1, 'one compression for 25 compressing receivers');
    assert.equal(
      ((await metricValue(server.metricsUrl, 'wshub_socket_writes_total')) ?? 0) - writesBefore,
      25,
      'each receiver got the shared frame by a direct write, not through ws',
    );
    assert.equal(
      await metricValue(server.metricsUrl, 'websocket_messages_delivered_total'),
      25,
      'delivered to every subscriber but the sender',
    );
  });

  it('mixed receivers: plain frames to clients without the extension, below the threshold nothing is compressed', async () => {
    const compressing = await Promise.all([raw(offer()), raw(offer()), raw(offer())]);
    const plain = await Promise.all([raw(), raw()]);
    const viaWs = await wsClient({ perMessageDeflate: false });
    const publisher = await raw();
    const before = await compressions();
    const large = Buffer.from(json(8_000, 3));
    const small = Buffer.from('{"small":true}');
    // One TCP write: both broadcasts are delivered in one event-loop turn (corked together).
    publisher.send(clientFrame(BINARY, large), clientFrame(TEXT, small), clientFrame(BINARY, large));
    for (const client of compressing) {
      const frames = [await client.reader.next(), await client.reader.next(), await client.reader.next()];
      assert.deepEqual(
        frames.map((frame) => [frame.rsv, frame.opcode]),
        [
          [RSV1, BINARY],
          [0, TEXT],
          [RSV1, BINARY],
        ],
      );
      assert.ok(payloadOf(frames[0] as ServerFrame).equals(large));
      assert.ok((frames[1] as ServerFrame).payload.equals(small));
      assert.ok(payloadOf(frames[2] as ServerFrame).equals(large));
    }
    for (const client of plain) {
      for (const expected of [large, small, large]) {
        const frame = await client.reader.next();
        assert.equal(frame.rsv, 0);
        assert.ok(frame.payload.equals(expected));
      }
    }
    const received = await viaWs.take(3);
    assert.deepEqual(
      received.map(({ data }) => data.length),
      [large.length, small.length, large.length],
    );
    assert.equal((await compressions()) - before, 2, 'the two large messages, once each');
  });

  it('clients that did not offer server_no_context_takeover, or asked for a smaller window, decode every message', async () => {
    // ws's client keeps its inflate context across messages (no client_no_context_takeover):
    // the server's messages reference no history, so that inflate decodes them all.
    const keepsContext = await wsClient({ perMessageDeflate: { clientNoContextTakeover: false } });
    const smallWindow = await raw(offer('; server_max_window_bits=10'));
    assert.match(smallWindow.response, /server_max_window_bits=10/);
    const defaultWindow = await raw(offer());
    assert.match(defaultWindow.response, /server_max_window_bits=12/);
    const publisher = await wsClient({ perMessageDeflate: true });
    const before = await compressions();
    const messages = Array.from({ length: 10 }, (_, i) => json(3_000 + i * 500, i));
    for (const message of messages) await publisher.send(message);
    const received = await keepsContext.take(messages.length);
    assert.deepEqual(
      received.map(({ data }) => data.toString()),
      messages,
    );
    for (const [client, bits] of [
      [smallWindow, 10],
      [defaultWindow, 12],
    ] as const) {
      for (const message of messages) {
        const frame = await client.reader.next();
        assert.equal(frame.rsv, RSV1);
        // Inflating with exactly the negotiated window proves the server kept within it.
        assert.equal(payloadOf(frame, bits).toString(), message);
      }
    }
    assert.equal(
      (await compressions()) - before,
      messages.length * 2,
      'one compression per message for each of the two windows (10 and 12)',
    );
  });
});

describe('broadcast with --compression: frames ws sends itself stay in order', () => {
  it('a pong for a ping sent right after a broadcast comes after the compressed broadcast', async () => {
    const server = await startServer(['--mode=broadcast', '--compression', '--stats-interval=0']);
    try {
      const client = await openRaw(server.app.port, '/ws', [offer()]);
      const message = Buffer.from(json(4_000));
      // One TCP write: the broadcast (back to its sender too) is corked when ws answers the ping.
      client.send(clientFrame(BINARY, message), clientFrame(PING, Buffer.from('p')));
      const frame = await client.reader.next();
      assert.equal(frame.rsv, RSV1);
      assert.ok(payloadOf(frame).equals(message));
      const pong = await client.reader.next();
      assert.deepEqual([pong.opcode, pong.payload.toString()], [PONG, 'p']);
      client.send(clientClose(1000));
      await client.reader.waitForEnd();
    } finally {
      await server.app.stop();
    }
  });

  it('a ?hello ws compresses itself arrives before the broadcasts that follow it', async () => {
    const server = await startServer([
      '--mode=broadcast',
      '--compression',
      '--compression-threshold=0',
      '--allow-fault-injection',
      '--stats-interval=0',
    ]);
    try {
      const messages = Array.from({ length: 8 }, (_, i) =>
        Buffer.from(`broadcast ${i} ${'x'.repeat(i * 50)}`),
      );
      // The handshake and the subscriber's own broadcasts (the sender is included) in one TCP
      // write: they are delivered right after the upgrade, while ws is still compressing the
      // hello in its zlib pool, so the corked frames must queue behind it.
      const subscriber = await openRaw(
        server.app.port,
        '/ws?hello',
        [offer()],
        Buffer.concat(messages.map((m) => clientFrame(BINARY, m))),
      );
      assert.match(subscriber.response, /^HTTP\/1\.1 101 /);
      const writesBefore = await metricValue(server.metricsUrl, 'wshub_socket_writes_total');
      const hello = await subscriber.reader.next();
      assert.equal(hello.rsv, RSV1);
      assert.equal(JSON.parse(payloadOf(hello).toString()).type, 'hello');
      for (const message of messages) {
        const frame = await subscriber.reader.next();
        assert.deepEqual([frame.rsv, frame.opcode], [RSV1, BINARY]);
        assert.ok(payloadOf(frame).equals(message));
      }
      assert.equal(
        await metricValue(server.metricsUrl, 'wshub_socket_writes_total'),
        writesBefore,
        'written by ws, behind its hello, not directly',
      );
      subscriber.send(clientClose(1000));
      await subscriber.reader.waitForEnd();
    } finally {
      await server.app.stop();
    }
  });
});
