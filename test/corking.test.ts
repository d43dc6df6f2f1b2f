import assert from 'node:assert/strict';
import type { Socket } from 'node:net';
import { afterEach, describe, it } from 'node:test';
import { clientFrame, rawHandshake } from './helpers/clients.js';
import { FrameReader } from './helpers/frames.js';
import { metricValue, waitForMetric } from './helpers/metrics.js';
import { type InProcessServer, startServer } from './helpers/server.js';

// Issue 5: frames bound for one socket in one event-loop turn are written together.
// What a client sees: every frame, byte for byte, in order, and control frames ws
// writes itself (pong, close) never overtake data frames delivered before them.

let server: InProcessServer | undefined;
const sockets: Socket[] = [];

async function raw(): Promise<{ socket: Socket; reader: FrameReader }> {
  assert.ok(server);
  const { socket, response } = await rawHandshake(server.app.port);
  assert.match(response, /^HTTP\/1\.1 101/);
  sockets.push(socket);
  return { socket, reader: new FrameReader(socket) };
}

afterEach(async () => {
  for (const socket of sockets.splice(0)) socket.destroy();
  await server?.app.stop();
  server = undefined;
});

describe('corked writes', () => {
  it('echoes a message before the pong for a ping sent right after it', async () => {
    server = await startServer(['--stats-interval=0']);
    const { socket, reader } = await raw();
    socket.write(Buffer.concat([clientFrame(0x1, Buffer.from('first')), clientFrame(0x9, Buffer.from('p'))]));
    const echo = await reader.next();
    const pong = await reader.next();
    assert.deepEqual([echo.opcode, echo.payload.toString()], [0x1, 'first']);
    assert.deepEqual([pong.opcode, pong.payload.toString()], [0xa, 'p']);
  });

  it('echoes a message before answering a close frame sent right after it', async () => {
    server = await startServer(['--stats-interval=0']);
    const { socket, reader } = await raw();
    const close = Buffer.from([0x03, 0xe8]);
    socket.write(Buffer.concat([clientFrame(0x2, Buffer.from([1, 2, 3])), clientFrame(0x8, close)]));
    const echo = await reader.next();
    assert.deepEqual([echo.opcode, [...echo.payload]], [0x2, [1, 2, 3]]);
    const { code, dataFrames } = await reader.untilClose();
    assert.deepEqual([code, dataFrames], [1000, 0]);
  });

  it('writes a burst of broadcasts to each subscriber in one write, in order, intact', async () => {
    server = await startServer(['--mode=broadcast', '--broadcast-exclude-sender', '--stats-interval=0']);
    const subscribers = await Promise.all([raw(), raw(), raw()]);
    const publisher = await raw();
    const payloads = Array.from({ length: 16 }, (_, i) => Buffer.from(`message ${i} ${'x'.repeat(i * 7)}`));
    publisher.socket.write(Buffer.concat(payloads.map((payload) => clientFrame(0x2, payload))));
    for (const { reader } of subscribers) {
      for (const payload of payloads) {
        const frame = await reader.next();
        assert.equal(frame.opcode, 0x2);
        assert.deepEqual(frame.payload, payload);
      }
    }
    assert.equal(await metricValue(server.metricsUrl, 'websocket_messages_delivered_total'), 16 * 3);
    assert.equal(
      await metricValue(server.metricsUrl, 'wshub_socket_writes_total'),
      3,
      'one write per subscriber for the 16 messages of one turn',
    );
  });

  it('a subscriber that stops reading, then resumes, gets every frame intact and in order', async () => {
    // Enough to fill the kernel's socket buffers: writes straight to the descriptor then come
    // back short or with EAGAIN, and the rest must queue in the stream behind them, in order.
    server = await startServer([
      '--mode=broadcast',
      '--broadcast-exclude-sender',
      '--max-buffered-bytes=64MiB',
      '--stats-interval=0',
    ]);
    assert.ok(server);
    const { socket, response } = await rawHandshake(server.app.port);
    assert.match(response, /^HTTP\/1\.1 101/);
    sockets.push(socket);
    socket.pause();
    const publisher = await raw();
    const count = 6000;
    const payloadOf = (i: number): Buffer => {
      const payload = Buffer.alloc(3000 + (i % 7) * 150, i % 251);
      payload.writeUInt32BE(i, 0);
      return payload;
    };
    for (let first = 0; first < count; first += 100) {
      const frames = [];
      for (let i = first; i < first + 100; i++) frames.push(clientFrame(0x2, payloadOf(i)));
      publisher.socket.write(Buffer.concat(frames));
    }
    await waitForMetric(server.metricsUrl, 'websocket_messages_delivered_total', count, {}, 20_000);
    const reader = new FrameReader(
      socket,
      Buffer.from(response.slice(response.indexOf('\r\n\r\n') + 4), 'latin1'),
    );
    socket.resume();
    for (let i = 0; i < count; i++) {
      const frame = await reader.next();
      assert.equal(frame.payload.readUInt32BE(0), i, `frame ${i} in order`);
      assert.ok(frame.payload.equals(payloadOf(i)), `frame ${i} intact`);
    }
  });
});
