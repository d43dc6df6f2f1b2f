import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { DISCONNECT } from '../src/disconnects.js';
import { BroadcastHub } from '../src/hub/broadcast.js';
import { type Logger, RateLimitedLog } from '../src/log.js';
import { Stats } from '../src/stats.js';
import type { Connection } from '../src/transport/connection.js';
import { UpgradeGate } from '../src/transport/upgrade-gate.js';
import { WebSocketTransport } from '../src/transport/websocket-server.js';
import { installReceiverReentryCheck } from '../src/transport/ws-adapter.js';
import { rawHandshake } from './helpers/clients.js';
import { closeCodeOf, FrameReader, type ServerFrame } from './helpers/frames.js';
import { waitUntil } from './helpers/wait.js';

/**
 * Issue 14: every frame a client receives passes through its connection's writer, in the
 * order the server asked for it. Each test asks, within ONE event-loop turn (while data
 * frames are corked), for data and control frames mixed, and reads the bytes a raw client
 * gets: a frame written past the writer would overtake the corked ones.
 */
describe('every frame passes through the writer, in order (raw client, real transport)', () => {
  const stats = new Stats();
  const logger: Logger = { info: () => {}, warn: () => {}, error: () => {} };
  const hub = new BroadcastHub({ excludeSender: false });
  let transport: WebSocketTransport;
  let server: Server;
  const sockets: Socket[] = [];

  before(async () => {
    installReceiverReentryCheck();
    transport = new WebSocketTransport({
      maxMessageSize: 1024 * 1024,
      maxBufferedBytes: 1024 * 1024,
      maxFragments: 100,
      maxBufferedChunks: 100,
      perMessageDeflate: false,
      keepalive: { pingIntervalMs: 0, pingTimeoutMs: 1000, idleTimeoutMs: 0, maxLifetimeMs: 0 },
      hub,
      gate: new UpgradeGate({
        maxConnections: 0,
        maxConnectionsPerIp: 0,
        allowedOrigins: [],
        trustProxyHops: 0,
        allowFaultInjection: true,
      }),
      stats,
      logger,
      limitedLog: new RateLimitedLog(logger),
      instance: { hostname: 'test-host', id: 'test-instance', version: '0.0.0' },
    });
    server = createServer();
    server.on('upgrade', transport.handleUpgrade);
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
  });

  after(() => {
    for (const socket of sockets) socket.destroy();
    server.closeAllConnections();
    server.close();
  });

  async function open(path = '/ws/order'): Promise<{ reader: FrameReader; connection: Connection }> {
    const before = new Set(transport.connections);
    const { socket, response } = await rawHandshake((server.address() as AddressInfo).port, path);
    assert.match(response, /^HTTP\/1\.1 101/);
    sockets.push(socket);
    const leftover = Buffer.from(response.slice(response.indexOf('\r\n\r\n') + 4), 'latin1');
    const reader = new FrameReader(socket, leftover);
    const isNew = (candidate: Connection): boolean => !before.has(candidate);
    await waitUntil(() => [...transport.connections].some(isNew), 'the transport has the connection');
    const connection = [...transport.connections].find(isNew);
    assert.ok(connection);
    return { reader, connection };
  }

  const describeFrame = (frame: ServerFrame): string =>
    frame.opcode === 0x8
      ? `close ${closeCodeOf(frame)}`
      : frame.opcode === 0x9
        ? 'ping'
        : frame.opcode === 0xa
          ? 'pong'
          : frame.payload.toString();

  it('a ping asked for between two corked broadcasts arrives between them', async () => {
    const { reader, connection } = await open();
    hub.broadcast('order', Buffer.from('one'), false);
    assert.equal(connection.ping(), true);
    hub.broadcast('order', Buffer.from('two'), false);
    const frames = [await reader.next(), await reader.next(), await reader.next()];
    assert.deepEqual(frames.map(describeFrame), ['one', 'ping', 'two']);
    connection.terminate();
  });

  it('a close after queued data: every corked broadcast first, then the close frame, nothing after', async () => {
    const { reader, connection } = await open();
    hub.broadcast('order', Buffer.from('a'), false);
    hub.broadcast('order', Buffer.from('b'), false);
    connection.disconnect(DISCONNECT.max_lifetime);
    hub.broadcast('order', Buffer.from('after the close'), false);
    const frames = [await reader.next(), await reader.next(), await reader.next()];
    assert.deepEqual(frames.map(describeFrame), ['a', 'b', 'close 1001']);
    assert.equal(
      frames[2]?.payload.subarray(2).toString(),
      'connection lifetime reached, please reconnect',
      'the close text from the catalogue',
    );
    await assert.rejects(
      reader.next(300),
      /within 300ms|ended the connection/,
      'nothing after the close frame',
    );
    connection.terminate();
  });

  it('?hello is a message like any other: it never overtakes broadcasts corked before it', async () => {
    const first = await open();
    // The broadcast is corked for `first`; the hello of a new connection is queued on its own writer.
    hub.broadcast('order', Buffer.from('before hello'), false);
    first.connection.send('per-connection message');
    hub.broadcast('order', Buffer.from('after'), false);
    const frames = [await first.reader.next(), await first.reader.next(), await first.reader.next()];
    assert.deepEqual(frames.map(describeFrame), ['before hello', 'per-connection message', 'after']);
    first.connection.terminate();

    const helloClient = await open('/ws/order?hello');
    const hello = await helloClient.reader.next();
    assert.equal(JSON.parse(hello.payload.toString()).type, 'hello');
    hub.broadcast('order', Buffer.from('live'), false);
    assert.equal(describeFrame(await helloClient.reader.next()), 'live');
    helloClient.connection.terminate();
  });
});
