import assert from 'node:assert/strict';
import { Socket } from 'node:net';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { TestClient } from './helpers/clients.js';
import { type InProcessServer, startServer } from './helpers/server.js';
import { waitUntil } from './helpers/wait.js';

type End = (...args: unknown[]) => unknown;

/**
 * Counts, per server-side socket and ws receiver, the end() calls that reach Node's own end().
 * ws repeats end() on both after every close handshake; each repeat makes Node build an
 * ERR_STREAM_ALREADY_FINISHED error nobody sees (issue 5: the largest cost of a connect and
 * close). wshub's socket listeners and writer end each stream once (issue 14); this fails if
 * a change makes them end one twice.
 */
class EndCounter {
  readonly sockets = new Map<object, number>();
  readonly receivers = new Map<object, number>();
  private readonly socketEnd = Socket.prototype.end as End;
  private readonly writableEnd = Writable.prototype.end as End;

  /** Counts the sockets whose local port is `serverPort` (not the clients' in this process). */
  install(serverPort: number): void {
    const { sockets, receivers, socketEnd, writableEnd } = this;
    (Socket.prototype as unknown as { end: End }).end = function countedSocketEnd(this: Socket, ...args) {
      if (this.localPort === serverPort) {
        sockets.set(this, (sockets.get(this) ?? 0) + 1);
      }
      return socketEnd.apply(this, args);
    };
    (Writable.prototype as unknown as { end: End }).end = function countedEnd(this: Writable, ...args) {
      if ((this as Writable & { _isServer?: boolean })._isServer === true) {
        receivers.set(this, (receivers.get(this) ?? 0) + 1);
      }
      return writableEnd.apply(this, args);
    };
  }

  uninstall(): void {
    (Socket.prototype as unknown as { end: End }).end = this.socketEnd;
    (Writable.prototype as unknown as { end: End }).end = this.writableEnd;
  }

  assertEachEndedOnce(expected: number): void {
    assert.equal(this.sockets.size, expected, 'server-side sockets ended');
    assert.equal(this.receivers.size, expected, 'server-side receivers ended');
    assert.deepEqual([...this.sockets.values()], Array(expected).fill(1), 'end() per socket');
    assert.deepEqual([...this.receivers.values()], Array(expected).fill(1), 'end() per receiver');
  }
}

describe('close handshake: each stream is ended once', () => {
  let server: InProcessServer;
  const counter = new EndCounter();
  before(async () => {
    server = await startServer(['--stats-interval=0']);
  });
  after(async () => {
    counter.uninstall();
    await server.app.stop();
  });

  it('when the client closes, and when the server closes (shutdown, 1001)', async () => {
    counter.install(server.app.port);
    const clients = await Promise.all(Array.from({ length: 3 }, () => TestClient.open(server.url)));
    await clients[0]?.close();
    await server.log.waitFor(/^WebSocket disconnected: /);
    // socketOnClose, the last to end the receiver, runs before ws reports the close.
    counter.assertEachEndedOnce(1);

    await server.app.stop();
    for (const client of clients.slice(1)) assert.equal((await client.closed).code, 1001);
    await waitUntil(() => server.app.connectionCount() === 0, 'every connection closed');
    counter.assertEachEndedOnce(3);
    counter.uninstall();
  });
});
