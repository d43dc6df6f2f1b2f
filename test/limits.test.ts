import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { clientFrame } from './helpers/clients.js';
import { closeCodeOf } from './helpers/frames.js';
import { metricValue, waitForMetric } from './helpers/metrics.js';
import { clientClose, openRaw } from './helpers/raw.js';
import { type InProcessServer, type SpawnedServer, spawnServer, startServer } from './helpers/server.js';

const TEXT = 0x1;
const BINARY = 0x2;
const CONTINUATION = 0x0;

/** A message as `count` fragments of `size` bytes each (RFC 6455 §5.4). */
function fragmented(payload: Buffer, size: number): Buffer[] {
  const frames: Buffer[] = [];
  for (let offset = 0; offset < payload.length; offset += size) {
    const piece = payload.subarray(offset, offset + size);
    const last = offset + size >= payload.length;
    frames.push(clientFrame(offset === 0 ? BINARY : CONTINUATION, piece, { fin: last }));
  }
  return frames;
}

function patterned(length: number): Buffer {
  const payload = Buffer.alloc(length);
  for (let i = 0; i < length; i++) payload[i] = (i * 7 + (i >> 9)) & 0xff;
  return payload;
}

describe('fragment and chunk limits (default --max-message-size=1MiB: auto = 2048 of each)', () => {
  let server: InProcessServer;
  before(async () => {
    server = await startServer(['--stats-interval=0']);
  });
  after(() => server.app.stop());

  for (const size of [16 * 1024, 512]) {
    it(`a 1 MiB message in ${size}-byte fragments passes and is echoed intact`, async () => {
      const client = await openRaw(server.app.port);
      const payload = patterned(1024 * 1024);
      client.send(...fragmented(payload, size));
      const echoed = await client.reader.next(10_000);
      assert.equal(echoed.opcode, BINARY);
      assert.ok(echoed.payload.equals(payload), 'the echo is byte for byte the message');
      client.send(clientClose(1000));
      await client.reader.waitForEnd();
    });
  }

  it('a flood of empty fragments is closed with 1008 after the limit, counted and logged', async () => {
    const client = await openRaw(server.app.port);
    const empty = clientFrame(CONTINUATION, Buffer.alloc(0), { fin: false });
    // 10,000 fragments in one write: the server must stop at 2048 and close.
    client.send(
      clientFrame(TEXT, Buffer.alloc(0), { fin: false }),
      ...Array.from({ length: 10_000 }, () => empty),
    );
    const close = await client.reader.nextClose();
    assert.equal(closeCodeOf(close), 1008);
    await client.reader.waitForEnd();
    assert.equal(
      await waitForMetric(server.metricsUrl, 'websocket_server_disconnects_total', 1, {
        reason: 'too_many_fragments',
      }),
      1,
    );
    await server.log.waitFor(/WebSocket error from 127\.0\.0\.1:\d+: Too many message fragments/);
  });

  it('exactly at the fragment limit passes; one more is refused', async () => {
    const ok = await openRaw(server.app.port);
    ok.send(...fragmented(patterned(2048), 1)); // 2048 fragments of one byte
    assert.equal((await ok.reader.next()).payload.length, 2048);
    ok.send(clientClose(1000));
    await ok.reader.waitForEnd();

    const tooMany = await openRaw(server.app.port);
    tooMany.send(...fragmented(patterned(2049), 1));
    assert.equal(closeCodeOf(await tooMany.reader.nextClose()), 1008);
    await tooMany.reader.waitForEnd();
  });
});

describe('--max-buffered-chunks', () => {
  let server: InProcessServer;
  before(async () => {
    server = await startServer(['--stats-interval=0', '--max-buffered-chunks=8']);
  });
  after(() => server.app.stop());

  it('a frame trickled one byte per TCP segment is closed with 1008 once 8 reads are pending', async () => {
    const client = await openRaw(server.app.port);
    client.reader.socket.setNoDelay(true);
    const frame = clientFrame(BINARY, Buffer.alloc(1000, 0x61));
    let sent = 0;
    // Bounded: at most 1000 one-byte writes, 2 ms apart, until the server closes.
    const closed = client.reader.nextClose(10_000);
    let done = false;
    void closed.finally(() => {
      done = true;
    });
    while (!done && sent < frame.length) {
      client.send(frame.subarray(sent, sent + 1));
      sent++;
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
    assert.equal(closeCodeOf(await closed), 1008);
    assert.ok(sent < frame.length, 'the server refused before the frame was complete');
    assert.equal(
      await waitForMetric(server.metricsUrl, 'websocket_server_disconnects_total', 1, {
        reason: 'too_many_buffered_chunks',
      }),
      1,
    );
  });

  it('a frame arriving in one piece is not affected', async () => {
    const client = await openRaw(server.app.port);
    client.send(clientFrame(BINARY, Buffer.alloc(100_000, 0x62)));
    assert.equal((await client.reader.next()).payload.length, 100_000);
    client.send(clientClose(1000));
    await client.reader.waitForEnd();
  });
});

describe('memory under a tiny-fragment flood (spawned server)', () => {
  let server: SpawnedServer;
  before(async () => {
    server = await spawnServer(['--stats-interval=0']);
  });
  after(async () => {
    server.kill();
    await server.exited;
  });

  function rssBytes(): number {
    const status = readFileSync(`/proc/${server.child.pid}/status`, 'utf8');
    return Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1]) * 1024;
  }

  it('40 connections each sending 50,000 one-byte fragments: all closed with 1008, RSS stays bounded', async () => {
    const before = rssBytes();
    const oneByte = clientFrame(CONTINUATION, Buffer.from([0x61]), { fin: false });
    const flood = Buffer.concat([
      clientFrame(BINARY, Buffer.from([0x61]), { fin: false }),
      ...Array(50_000).fill(oneByte),
    ]);
    const clients = await Promise.all(Array.from({ length: 40 }, () => openRaw(server.port)));
    for (const client of clients) client.send(flood);
    const codes = await Promise.all(
      clients.map(async (client) => closeCodeOf(await client.reader.nextClose(20_000))),
    );
    assert.deepEqual(new Set(codes), new Set([1008]));
    await Promise.all(clients.map((client) => client.reader.waitForEnd(10_000)));
    const grown = rssBytes() - before;
    // Unbounded, 2M one-byte fragments would hold hundreds of MiB; bounded, each connection holds at most 2048.
    assert.ok(grown < 64 * 1024 * 1024, `server RSS grew by ${(grown / 1048576).toFixed(1)} MiB`);
    assert.equal(await waitForMetric(server.metricsUrl, 'websocket_connections', 0), 0);
    assert.equal(
      await metricValue(server.metricsUrl, 'websocket_server_disconnects_total', {
        reason: 'too_many_fragments',
      }),
      40,
    );
  });
});
