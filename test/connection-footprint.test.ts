import assert from 'node:assert/strict';
import { EventEmitter, once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { after, before, describe, it } from 'node:test';
import { WebSocketServer } from 'ws';
import { EchoHub } from '../src/hub/echo.js';
import { type Logger, RateLimitedLog } from '../src/log.js';
import { Stats } from '../src/stats.js';
import type { Connection } from '../src/transport/connection.js';
import { UpgradeGate } from '../src/transport/upgrade-gate.js';
import { WebSocketTransport } from '../src/transport/websocket-server.js';
import { rawHandshake, TestClient } from './helpers/clients.js';
import { waitUntil } from './helpers/wait.js';

/**
 * Issue 5, idle memory: what an open connection costs is what it keeps. wshub adds no
 * listener, closure or symbol property per connection to what ws itself sets up
 * (each would be kept by every idle connection); its events still arrive.
 */
const RECEIVER_EVENTS = ['message', 'conclude', 'error', 'pong', 'ping', 'drain'] as const;

const socketOf = (connection: Connection): Socket => connection.socket as Socket;

describe('what an idle connection keeps', () => {
  const stats = new Stats();
  const lines: string[] = [];
  const record = (message: string): void => {
    lines.push(message);
  };
  const logger: Logger = { info: record, warn: record, error: record };
  let transport: WebSocketTransport;
  let server: Server;
  let plain: WebSocketServer;
  let plainSocket: Promise<Socket>;

  before(async () => {
    transport = new WebSocketTransport({
      maxMessageSize: 1024 * 1024,
      maxBufferedBytes: 1024 * 1024,
      maxFragments: 100,
      maxBufferedChunks: 100,
      perMessageDeflate: false,
      keepalive: { pingIntervalMs: 0, pingTimeoutMs: 1000, idleTimeoutMs: 0, maxLifetimeMs: 0 },
      hub: new EchoHub(),
      gate: new UpgradeGate(),
      stats,
      logger,
      limitedLog: new RateLimitedLog(logger),
    });
    server = createServer();
    server.on('upgrade', transport.handleUpgrade);
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    // The same ws version with nothing added: what a connection's socket carries anyway.
    plain = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    await once(plain, 'listening');
    plainSocket = new Promise((resolve) => {
      plain.once('connection', (ws) => resolve((ws as unknown as { _socket: Socket })._socket));
    });
  });

  // Also after a failed assertion: every socket of both sides is cut, so the test process can exit.
  const cleanups: Array<() => void> = [];
  after(() => {
    for (const cleanup of cleanups) cleanup();
    for (const connection of transport.connections) connection.terminate();
    for (const client of plain.clients) client.terminate();
    server.closeAllConnections();
    server.close();
    plain.close();
  });

  it('adds no listener to the connection or its socket, and still gets messages, pongs and the close', async () => {
    const { port } = server.address() as AddressInfo;
    const client = await TestClient.open(`ws://127.0.0.1:${port}/ws`);
    const reference = await TestClient.open(`ws://127.0.0.1:${(plain.address() as AddressInfo).port}`);
    cleanups.push(
      () => client.ws.terminate(),
      () => reference.ws.terminate(),
    );
    await waitUntil(() => transport.connections.size === 1, 'the transport has the connection');
    const [connection] = transport.connections as Set<Connection>;
    assert.ok(connection);
    assert.ok(
      !(connection instanceof EventEmitter),
      'the connection is no event emitter: nothing to listen to',
    );
    // ws's WebSocket puts six listeners on its receiver; wshub's receiver hands its events over in emit().
    const receiver = connection.receiver as unknown as EventEmitter;
    for (const event of [...RECEIVER_EVENTS, 'finish']) {
      assert.equal(receiver.listenerCount(event), 0, `a '${event}' listener on the receiver`);
    }
    const socket = socketOf(connection);
    const wsOnly = await plainSocket;
    for (const event of ['error', 'close', 'data', 'end', 'drain']) {
      assert.equal(
        socket.listenerCount(event),
        wsOnly.listenerCount(event),
        `'${event}' listeners on the socket beyond ws's own`,
      );
    }
    // ws marks the socket with its WebSocket, wshub with its Connection: one symbol either way.
    const symbols = (target: object): number => Object.getOwnPropertySymbols(target).length;
    assert.equal(symbols(socket), symbols(wsOnly), 'symbol properties on the socket beyond ws’s own');

    await client.send('still echoed');
    assert.equal((await client.next()).data.toString(), 'still echoed');
    assert.equal(stats.messagesReceived, 1);
    // As the keepalive sweep does: the pong must reach it, which resets pingSentAt.
    connection.pingSentAt = performance.now();
    connection.ping();
    await waitUntil(() => connection.pingSentAt === -1, 'the pong reaches the keepalive');

    client.ws.close(1000);
    await waitUntil(() => transport.connections.size === 0, 'the transport forgets the connection');
    assert.equal(stats.disconnectionsTotal, 1);
    assert.ok(
      lines.some((line) => /^WebSocket disconnected: 127\.0\.0\.1:\d+$/.test(line)),
      'the disconnect log line still names the peer after the socket closed',
    );
    reference.ws.terminate();
  });

  it('still reports a protocol error: logged, and the connection is closed and forgotten', async () => {
    const { port } = server.address() as AddressInfo;
    const { socket } = await rawHandshake(port);
    socket.on('error', () => {});
    cleanups.push(() => socket.destroy());
    await waitUntil(() => transport.connections.size === 1, 'the transport has the connection');
    // RFC 6455 §5.1: a client frame must be masked; this one is not.
    socket.write(Buffer.from([0x81, 0x02, 0x68, 0x69]));
    await waitUntil(() => transport.connections.size === 0, 'the transport forgets the connection');
    assert.ok(lines.some((line) => /^WebSocket error from 127\.0\.0\.1:\d+: /.test(line)));
    assert.equal(stats.serverDisconnects.protocol_error, 1);
    socket.destroy();
  });
});
