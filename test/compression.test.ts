import assert from 'node:assert/strict';
import { once } from 'node:events';
import { after, before, describe, it } from 'node:test';
import { deflateRawSync, inflateRawSync } from 'node:zlib';
import { WebSocket } from 'ws';
import { clientFrame, TestClient } from './helpers/clients.js';
import { closeCodeOf, type ServerFrame } from './helpers/frames.js';
import { waitForMetric } from './helpers/metrics.js';
import { clientClose, openRaw } from './helpers/raw.js';
import { type InProcessServer, startServer } from './helpers/server.js';

const TEXT = 0x1;
const BINARY = 0x2;
const RSV1 = 0x40;
const OFFER = 'Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits';
const TAIL = Buffer.from([0x00, 0x00, 0xff, 0xff]);

/** A message compressed as RFC 7692 §7.2.1 says: raw DEFLATE, the final empty block's 00 00 ff ff removed. */
function deflateMessage(payload: Buffer): Buffer {
  const compressed = deflateRawSync(payload, { finishFlush: 2 /* Z_SYNC_FLUSH */ });
  assert.ok(compressed.subarray(-4).equals(TAIL));
  return compressed.subarray(0, -4);
}

/** The payload of a server frame, inflated when RSV1 says it is compressed (§7.2.2). */
function payloadOf(frame: ServerFrame): Buffer {
  return frame.rsv & RSV1
    ? inflateRawSync(Buffer.concat([frame.payload, TAIL]), { finishFlush: 2 /* Z_SYNC_FLUSH */ })
    : frame.payload;
}

function json(bytes: number): string {
  const items: string[] = [];
  for (let i = 0; items.join(',').length < bytes; i++) items.push(`{"id":${i},"name":"user${i}","ok":true}`);
  return `[${items.join(',')}]`.slice(0, bytes);
}

describe('permessage-deflate (RFC 7692) with --compression', () => {
  let server: InProcessServer;
  before(async () => {
    server = await startServer(['--stats-interval=0', '--compression', '--max-message-size=256KiB']);
  });
  after(() => server.app.stop());

  it('answers an offer with server_no_context_takeover and a 4 KiB server window', async () => {
    const client = await openRaw(server.app.port, '/ws', [OFFER]);
    const accepted = /^Sec-WebSocket-Extensions: ([^\r]*)\r$/im.exec(client.response)?.[1] ?? '';
    assert.match(accepted, /^permessage-deflate\b/);
    assert.match(accepted, /server_no_context_takeover/);
    assert.match(accepted, /server_max_window_bits=12/);
    client.send(clientClose(1000));
    await client.reader.waitForEnd();
  });

  it('echoes large and small messages intact to a ws client that negotiated it, in order', async () => {
    const client = await TestClient.open(server.url, { perMessageDeflate: true });
    const large = json(200 * 1024);
    const binary = Buffer.alloc(100_000);
    for (let i = 0; i < binary.length; i++) binary[i] = (i * 13) & 0xff;
    const messages: Array<string | Buffer> = [large, 'small', binary, '', 'é€😀', large.slice(0, 2000)];
    for (const message of messages) void client.send(message);
    for (const message of messages) {
      const reply = await client.next();
      if (typeof message === 'string') {
        assert.equal(reply.isBinary, false);
        assert.equal(reply.data.toString('utf8'), message);
      } else {
        assert.equal(reply.isBinary, true);
        assert.ok(reply.data.equals(message));
      }
    }
    await client.close();
  });

  it('on the wire: messages from the threshold (1 KiB) up are compressed, smaller ones are not', async () => {
    const client = await openRaw(server.app.port, '/ws', [OFFER]);
    assert.match(client.response, /^Sec-WebSocket-Extensions: permessage-deflate[^\r]*\r$/im);
    const large = Buffer.from(json(50_000));
    const small = Buffer.from('a small message');
    // The client compresses one message and sends the other plain: both are allowed (§6).
    client.send(clientFrame(TEXT, deflateMessage(large), { rsv: RSV1 }), clientFrame(TEXT, small));
    const first = await client.reader.next();
    assert.equal(first.rsv, RSV1, 'a 50 KB reply is compressed');
    assert.ok(first.payload.length < large.length / 4, `compressed to ${first.payload.length} bytes`);
    assert.ok(payloadOf(first).equals(large));
    const second = await client.reader.next();
    assert.equal(second.rsv, 0, 'a reply under the threshold is sent uncompressed');
    assert.ok(second.payload.equals(small));
    client.send(clientClose(1000));
    await client.reader.waitForEnd();
  });

  it('a compressed fragmented message is reassembled (RSV1 only on the first fragment)', async () => {
    const client = await openRaw(server.app.port, '/ws', [OFFER]);
    const message = Buffer.from(json(20_000));
    const compressed = deflateMessage(message);
    const cut = Math.floor(compressed.length / 2);
    client.send(
      clientFrame(BINARY, compressed.subarray(0, cut), { fin: false, rsv: RSV1 }),
      clientFrame(0x0, compressed.subarray(cut), { fin: true }),
    );
    assert.ok(payloadOf(await client.reader.next()).equals(message));
    client.send(clientClose(1000));
    await client.reader.waitForEnd();
  });

  it('a raw client that does not offer the extension gets none and plain echoes', async () => {
    const client = await openRaw(server.app.port);
    assert.doesNotMatch(client.response, /Sec-WebSocket-Extensions/i);
    const large = Buffer.from(json(50_000));
    client.send(clientFrame(TEXT, large));
    const reply = await client.reader.next();
    assert.equal(reply.rsv, 0);
    assert.ok(reply.payload.equals(large));
    client.send(clientClose(1000));
    await client.reader.waitForEnd();
  });

  it('corrupt compressed data: 1007, counted as invalid_compressed_data', async () => {
    const client = await openRaw(server.app.port, '/ws', [OFFER]);
    client.send(clientFrame(TEXT, Buffer.from([0xff, 0xff, 0xff, 0xff, 0x00]), { rsv: RSV1 }));
    assert.equal(closeCodeOf(await client.reader.nextClose()), 1007);
    await client.reader.waitForEnd();
    assert.equal(
      await waitForMetric(server.metricsUrl, 'websocket_server_disconnects_total', 1, {
        reason: 'invalid_compressed_data',
      }),
      1,
    );
  });

  it('a compression bomb that inflates past --max-message-size: 1009', async () => {
    const client = await openRaw(server.app.port, '/ws', [OFFER]);
    const bomb = deflateMessage(Buffer.alloc(10 * 1024 * 1024)); // ~10 KB on the wire
    assert.ok(bomb.length < 20_000);
    client.send(clientFrame(BINARY, bomb, { rsv: RSV1 }));
    assert.equal(closeCodeOf(await client.reader.nextClose()), 1009);
    await client.reader.waitForEnd();
    assert.equal(
      await waitForMetric(server.metricsUrl, 'websocket_server_disconnects_total', 1, {
        reason: 'message_too_large',
      }),
      1,
    );
  });

  it('RSV1 on a continuation frame is a protocol error even with the extension: 1002 (§6.1)', async () => {
    const client = await openRaw(server.app.port, '/ws', [OFFER]);
    client.send(
      clientFrame(TEXT, Buffer.from('a'), { fin: false }),
      clientFrame(0x0, Buffer.from('b'), { fin: true, rsv: RSV1 }),
    );
    assert.equal(closeCodeOf(await client.reader.nextClose()), 1002);
    await client.reader.waitForEnd();
  });

  it('an invalid deflate offer is declined (RFC 7692 §7): the connection opens without compression', async () => {
    for (const offer of [
      'permessage-deflate; server_max_window_bits=7',
      'permessage-deflate; client_max_window_bits=16',
      'permessage-deflate; server_no_context_takeover=1',
      'permessage-deflate; unknown_param',
      'permessage-deflate; client_max_window_bits; client_max_window_bits',
      'x-webkit-deflate-frame',
      'permessage-deflate; ;; =',
    ]) {
      const client = await openRaw(server.app.port, '/ws', [`Sec-WebSocket-Extensions: ${offer}`]);
      assert.match(client.response, /^HTTP\/1\.1 101 /, offer);
      assert.doesNotMatch(client.response, /Sec-WebSocket-Extensions/i, offer);
      client.send(clientFrame(TEXT, Buffer.from(json(5000))));
      const reply = await client.reader.next();
      assert.equal(reply.rsv, 0, offer);
      client.send(clientClose(1000));
      await client.reader.waitForEnd();
    }
  });

  it('a client offering two configurations gets the first acceptable one', async () => {
    const client = await openRaw(server.app.port, '/ws', [
      'Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits=16, permessage-deflate; client_max_window_bits',
    ]);
    assert.match(client.response, /^HTTP\/1\.1 101 /);
    assert.match(client.response, /^Sec-WebSocket-Extensions: permessage-deflate/im);
    client.send(clientClose(1000));
    await client.reader.waitForEnd();
  });

  it('every connection is gone afterwards', async () => {
    assert.equal(await waitForMetric(server.metricsUrl, 'websocket_connections', 0), 0);
  });
});

describe('compression settings', () => {
  it('is off by default: a client offering it gets no extension', async () => {
    const server = await startServer(['--stats-interval=0']);
    try {
      const client = await TestClient.open(server.url, { perMessageDeflate: true });
      assert.equal(client.ws.extensions, '');
      await client.send(json(10_000));
      assert.equal((await client.next()).data.length, 10_000);
      await client.close();
    } finally {
      await server.app.stop();
    }
  });

  it('--compression-threshold=0 compresses even tiny messages', async () => {
    const server = await startServer(['--stats-interval=0', '--compression', '--compression-threshold=0']);
    try {
      const client = await openRaw(server.app.port, '/ws', [OFFER]);
      client.send(clientFrame(TEXT, Buffer.from('hi')));
      const reply = await client.reader.next();
      assert.equal(reply.rsv, RSV1);
      assert.equal(payloadOf(reply).toString(), 'hi');
      client.send(clientClose(1000));
      await client.reader.waitForEnd();
    } finally {
      await server.app.stop();
    }
  });

  it("--compression-level picks zlib's level (default 1): the reply is that level's raw DEFLATE", async () => {
    const lines: string[] = [];
    for (let i = 0; i < 40; i++) {
      lines.push(
        JSON.stringify({
          type: 'message',
          user: `user${(i * 7919) % 1000}`,
          text: `hello ${(i * 31337).toString(36)}`,
        }),
      );
    }
    const message = Buffer.from(lines.join('\n'));
    // What each level produces for the 4 KiB window and memLevel 6 wshub uses.
    const expected = (level: number) =>
      deflateRawSync(message, {
        level,
        windowBits: 12,
        memLevel: 6,
        finishFlush: 2 /* Z_SYNC_FLUSH */,
      }).subarray(0, -4);
    assert.ok(!expected(1).equals(expected(9)), 'the message compresses differently at levels 1 and 9');
    for (const [flags, level] of [
      [[], 1],
      [['--compression-level=9'], 9],
    ] as const) {
      const server = await startServer(['--stats-interval=0', '--compression', ...flags]);
      try {
        const client = await openRaw(server.app.port, '/ws', [OFFER]);
        client.send(clientFrame(TEXT, message));
        const reply = await client.reader.next();
        assert.equal(reply.rsv, RSV1);
        assert.ok(reply.payload.equals(expected(level)), `level ${level}`);
        client.send(clientClose(1000));
        await client.reader.waitForEnd();
      } finally {
        await server.app.stop();
      }
    }
  });

  it('a client asking for a smaller server window than ours gets it, and echoes work', async () => {
    const server = await startServer(['--stats-interval=0', '--compression']);
    try {
      const raw = await openRaw(server.app.port, '/ws', [
        'Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=10; client_max_window_bits',
      ]);
      // The server uses at most what the client allowed (§7.1.2.1): 10, not its own 12.
      assert.match(
        raw.response,
        /^Sec-WebSocket-Extensions: permessage-deflate;[^\r]*server_max_window_bits=10/im,
      );
      raw.send(clientClose(1000));
      await raw.reader.waitForEnd();
      const ws = new WebSocket(server.url, { perMessageDeflate: { serverMaxWindowBits: 9 } });
      ws.on('error', () => {});
      await once(ws, 'open');
      const large = json(30_000);
      ws.send(large);
      const [reply] = (await once(ws, 'message')) as [Buffer];
      assert.equal(reply.toString(), large);
      ws.close();
      await once(ws, 'close');
    } finally {
      await server.app.stop();
    }
  });
});

describe('permessage-deflate in broadcast mode', () => {
  let server: InProcessServer;
  before(async () => {
    server = await startServer(['--stats-interval=0', '--compression', '--mode=broadcast']);
  });
  after(() => server.app.stop());

  it('one broadcast reaches a deflate receiver compressed and a plain receiver uncompressed, both intact', async () => {
    const deflating = await openRaw(server.app.port, '/ws', [OFFER]);
    const plain = await openRaw(server.app.port);
    const sender = await TestClient.open(server.url, { perMessageDeflate: true });
    await waitForMetric(server.metricsUrl, 'websocket_connections', 3);
    const large = json(40_000);
    const small = 'tiny';
    await sender.send(large);
    await sender.send(small);
    const compressed = await deflating.reader.next();
    assert.equal(compressed.rsv, RSV1, 'compressed for the receiver that negotiated it');
    assert.equal(payloadOf(compressed).toString(), large);
    assert.equal((await deflating.reader.next()).rsv, 0, 'under the threshold: plain');
    const uncompressed = await plain.reader.next();
    assert.equal(uncompressed.rsv, 0, 'never RSV1 for a receiver without the extension');
    assert.equal(uncompressed.payload.toString(), large);
    assert.equal((await plain.reader.next()).payload.toString(), small);
    assert.equal((await sender.next()).data.toString(), large);
    assert.equal((await sender.next()).data.toString(), small);
    for (const raw of [deflating, plain]) {
      raw.send(clientClose(1000));
      await raw.reader.waitForEnd();
    }
    await sender.close();
  });

  it('keeps order across many mixed-size broadcasts to deflate and plain receivers', async () => {
    const receivers = await Promise.all([
      TestClient.open(server.url, { perMessageDeflate: true }),
      TestClient.open(server.url, { perMessageDeflate: false }),
    ]);
    const sender = await TestClient.open(server.url, { perMessageDeflate: true });
    await waitForMetric(server.metricsUrl, 'websocket_connections', 3);
    const messages = Array.from({ length: 60 }, (_, i) => (i % 3 === 0 ? `${i}:${json(5000)}` : `${i}`));
    for (const message of messages) void sender.send(message);
    for (const receiver of [...receivers, sender]) {
      for (const message of messages) assert.equal((await receiver.next()).data.toString(), message);
    }
    await Promise.all([...receivers, sender].map((client) => client.close()));
  });
});
