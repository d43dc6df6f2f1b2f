import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { clientFrame } from './helpers/clients.js';
import { closeCodeOf } from './helpers/frames.js';
import { waitForMetric } from './helpers/metrics.js';
import { clientClose, openRaw } from './helpers/raw.js';
import { type InProcessServer, startServer } from './helpers/server.js';

const TEXT = 0x1;
const BINARY = 0x2;
const CONTINUATION = 0x0;
const CLOSE = 0x8;
const PING = 0x9;
const PONG = 0xa;

/** The modes every conformance case runs in (RFC 6455 is the same in each). */
const MODES: ReadonlyArray<{ readonly name: string; readonly flags: readonly string[] }> = [
  { name: 'echo', flags: [] },
  // Alone in its room, a broadcast client receives its own messages (the sender is included by default).
  { name: 'broadcast', flags: ['--mode=broadcast'] },
];

for (const mode of MODES) {
  describe(`RFC 6455 conformance over a raw socket (${mode.name} mode)`, () => {
    let server: InProcessServer;
    const expected = new Map<string, number>();
    before(async () => {
      server = await startServer(['--stats-interval=0', '--max-message-size=64KiB', ...mode.flags]);
    });
    after(() => server.app.stop());

    /**
     * Sends `frames` on a fresh connection and asserts what a user would see: the
     * server's close frame with `code` on the wire, then the server ending the TCP
     * connection, and the disconnect counted under `reason`.
     */
    async function expectServerClose(frames: Buffer[], code: number, reason: string): Promise<void> {
      const client = await openRaw(server.app.port);
      client.send(...frames);
      const close = await client.reader.nextClose();
      assert.equal(closeCodeOf(close), code, `close code for ${reason}`);
      assert.equal(close.masked, false, 'server frames are never masked (§5.1)');
      await client.reader.waitForEnd();
      expected.set(reason, (expected.get(reason) ?? 0) + 1);
      const counted = await waitForMetric(
        server.metricsUrl,
        'websocket_server_disconnects_total',
        expected.get(reason) ?? 0,
        {
          reason,
        },
      );
      assert.equal(counted, expected.get(reason), `websocket_server_disconnects_total{reason="${reason}"}`);
    }

    it('echoes a valid text message split across fragments, a ping in between (§5.4, §5.5)', async () => {
      const client = await openRaw(server.app.port);
      const euro = Buffer.from('€ cost', 'utf8'); // a multi-byte character split across fragments is valid
      client.send(
        clientFrame(TEXT, euro.subarray(0, 1), { fin: false }),
        clientFrame(PING, Buffer.from('mid')),
        clientFrame(CONTINUATION, euro.subarray(1, 3), { fin: false }),
        clientFrame(CONTINUATION, euro.subarray(3), { fin: true }),
      );
      const pong = await client.reader.next();
      assert.deepEqual([pong.opcode, pong.payload.toString()], [PONG, 'mid']);
      const message = await client.reader.next();
      assert.deepEqual(
        [message.opcode, message.fin, message.payload.toString('utf8')],
        [TEXT, true, '€ cost'],
      );
      client.send(clientClose(1000));
      assert.equal(closeCodeOf(await client.reader.nextClose()), 1000);
      await client.reader.waitForEnd();
    });

    it('invalid UTF-8 in a text frame: 1007', async () => {
      await expectServerClose([clientFrame(TEXT, Buffer.from([0x68, 0xff, 0xfe]))], 1007, 'invalid_utf8');
    });

    it('invalid UTF-8 across fragments of a text message: 1007', async () => {
      await expectServerClose(
        [
          clientFrame(TEXT, Buffer.from([0xe2, 0x82]), { fin: false }),
          clientFrame(CONTINUATION, Buffer.from([0x28]), { fin: true }),
        ],
        1007,
        'invalid_utf8',
      );
    });

    it('an overlong encoding and a surrogate are invalid UTF-8: 1007', async () => {
      await expectServerClose([clientFrame(TEXT, Buffer.from([0xc0, 0xaf]))], 1007, 'invalid_utf8');
      await expectServerClose([clientFrame(TEXT, Buffer.from([0xed, 0xa0, 0x80]))], 1007, 'invalid_utf8');
    });

    it('invalid UTF-8 in a close reason: 1007', async () => {
      await expectServerClose([clientClose(1000, Buffer.from([0xff]))], 1007, 'invalid_utf8');
    });

    it('binary frames are not checked for UTF-8', async () => {
      const client = await openRaw(server.app.port);
      client.send(clientFrame(BINARY, Buffer.from([0xff, 0xfe])));
      const echoed = await client.reader.next();
      assert.deepEqual([echoed.opcode, [...echoed.payload]], [BINARY, [0xff, 0xfe]]);
      client.send(clientClose(1000));
      await client.reader.waitForEnd();
    });

    for (const [bit, rsv] of [
      ['RSV1', 0x40],
      ['RSV2', 0x20],
      ['RSV3', 0x10],
    ] as const) {
      it(`${bit} set without a negotiated extension: 1002 (§5.2)`, async () => {
        await expectServerClose([clientFrame(TEXT, Buffer.from('x'), { rsv })], 1002, 'protocol_error');
      });
    }

    it('reserved opcodes 0x3-0x7 and 0xB-0xF: 1002 (§5.2)', async () => {
      for (const opcode of [0x3, 0x4, 0x5, 0x6, 0x7, 0xb, 0xc, 0xd, 0xe, 0xf]) {
        await expectServerClose([clientFrame(opcode, Buffer.from('x'))], 1002, 'protocol_error');
      }
    });

    it('a fragmented control frame: 1002 (§5.5)', async () => {
      await expectServerClose([clientFrame(PING, Buffer.from('x'), { fin: false })], 1002, 'protocol_error');
    });

    it('a control frame longer than 125 bytes: 1002 (§5.5)', async () => {
      await expectServerClose([clientFrame(PING, Buffer.alloc(126, 0x61))], 1002, 'protocol_error');
    });

    it('a close frame with a 1-byte body: 1002 (§5.5.1)', async () => {
      await expectServerClose([clientFrame(CLOSE, Buffer.from([0x03]))], 1002, 'protocol_error');
    });

    it('close codes that must not be sent (0, 999, 1004-1006, 1015, 1016, 2999, 5000): 1002 (§7.4)', async () => {
      for (const code of [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535]) {
        await expectServerClose([clientClose(code)], 1002, 'protocol_error');
      }
    });

    it('a continuation frame without a message to continue: 1002 (§5.4)', async () => {
      await expectServerClose([clientFrame(CONTINUATION, Buffer.from('x'))], 1002, 'protocol_error');
    });

    it('a new data frame in the middle of a fragmented message: 1002 (§5.4)', async () => {
      await expectServerClose(
        [clientFrame(TEXT, Buffer.from('a'), { fin: false }), clientFrame(BINARY, Buffer.from('b'))],
        1002,
        'protocol_error',
      );
    });

    it('an unmasked client frame: 1002 (§5.1)', async () => {
      const unmasked = Buffer.from([0x81, 0x02, 0x68, 0x69]);
      await expectServerClose([unmasked], 1002, 'protocol_error');
    });

    it('a message over --max-message-size in one frame: 1009, before its payload arrives', async () => {
      // Only the header is sent: the server must refuse on the declared length alone.
      const header = Buffer.from([0x82, 0x80 | 127, 0, 0, 0, 0, 0, 1, 0, 1, 1, 2, 3, 4]);
      await expectServerClose([header], 1009, 'message_too_large');
    });

    it('a fragmented message whose fragments add up to over --max-message-size: 1009', async () => {
      const half = Buffer.alloc(40 * 1024, 0x61);
      await expectServerClose(
        [clientFrame(BINARY, half, { fin: false }), clientFrame(CONTINUATION, half, { fin: true })],
        1009,
        'message_too_large',
      );
    });

    it('a 64-bit length over 2^53-1: 1009', async () => {
      const header = Buffer.from([0x82, 0x80 | 127, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
      await expectServerClose([header, Buffer.from([1, 2, 3, 4])], 1009, 'message_too_large');
    });

    it('a message exactly at --max-message-size is accepted', async () => {
      const client = await openRaw(server.app.port);
      const payload = Buffer.alloc(64 * 1024, 0x62);
      client.send(clientFrame(BINARY, payload));
      const echoed = await client.reader.next();
      assert.equal(echoed.payload.length, payload.length);
      client.send(clientClose(1000));
      await client.reader.waitForEnd();
    });

    for (const code of [1000, 1001, 1003, 1011, 3000, 4999]) {
      it(`a client close with ${code} is answered with ${code} and the server ends the TCP connection`, async () => {
        const client = await openRaw(server.app.port);
        client.send(clientClose(code, 'bye'));
        const close = await client.reader.nextClose();
        assert.equal(closeCodeOf(close), code);
        assert.equal(close.payload.subarray(2).toString(), 'bye');
        // The server closes TCP first (§7.1.1): we never end our side here.
        assert.equal(await client.reader.waitForEnd(), 'end');
      });
    }

    it('a close frame without a body is answered with an empty close frame', async () => {
      const client = await openRaw(server.app.port);
      client.send(clientClose());
      const close = await client.reader.nextClose();
      assert.equal(close.payload.length, 0);
      await client.reader.waitForEnd();
    });

    it('data after the close frame is ignored (§5.5.1)', async () => {
      const client = await openRaw(server.app.port);
      client.send(clientClose(1000), clientFrame(TEXT, Buffer.from('too late')));
      const reply = await client.reader.next();
      assert.equal(reply.opcode, CLOSE);
      await client.reader.waitForEnd();
    });

    it('logs each server-side close with its reason, and every connection is gone afterwards', async () => {
      await server.log.waitFor(/WebSocket error from 127\.0\.0\.1:\d+: .*WS_ERR_INVALID_UTF8/);
      assert.equal(await waitForMetric(server.metricsUrl, 'websocket_connections', 0), 0);
      const clientCloses = await waitForMetric(
        server.metricsUrl,
        'websocket_server_disconnects_total',
        expected.get('protocol_error') ?? 0,
        { reason: 'protocol_error' },
      );
      assert.equal(
        clientCloses,
        expected.get('protocol_error'),
        'client-initiated closes are not counted as server closes',
      );
    });
  });
}
