import assert from 'node:assert/strict';
import { once } from 'node:events';
import { describe, it } from 'node:test';
import { rawHandshake, rawHttp, TestClient } from './helpers/clients.js';
import { spawnServer } from './helpers/server.js';

const STAMP = String.raw`^\d{4}/\d{2}/\d{2} \d{2}:\d{2}:\d{2} `;

describe('graceful shutdown (spawned process)', () => {
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    it(`on ${signal}: every client gets 1001, the steps are logged, and the process exits 0`, async () => {
      const server = await spawnServer(['--stats-interval=0']);
      const clients = await Promise.all(Array.from({ length: 3 }, () => TestClient.open(server.url)));
      await server.stdout.waitFor(/Active connections|WebSocket connected/);
      const started = performance.now();
      server.kill(signal);
      const closes = await Promise.all(clients.map((client) => client.closed));
      for (const close of closes) assert.equal(close.code, 1001);
      const { code } = await server.exited;
      assert.equal(code, 0);
      assert.ok(performance.now() - started < 5000, 'exits well within the deadline when clients cooperate');
      const steps = [
        `Received ${signal}, shutting down`,
        'Stopped accepting new connections',
        'Closing 3 connections with 1001 (going away)',
        'All connections closed',
        'WebSocket server stopped',
        'Metrics server stopped',
        'Shutdown complete',
      ];
      const logged = server.stdout.lines.map((entry) => entry.replace(new RegExp(STAMP), ''));
      const positions = steps.map((step) => logged.indexOf(step));
      assert.ok(
        positions.every(
          (position, i) => position !== -1 && (i === 0 || position > (positions[i - 1] as number)),
        ),
        `steps in order; log was:\n${server.stdout.lines.join('\n')}`,
      );
    });
  }

  it('turns /readyz to 503 and refuses new upgrades with 503 while draining, then terminates a client that ignores the close frame at the deadline', async () => {
    const server = await spawnServer(['--stats-interval=0', '--shutdown-timeout=1500ms']);
    // A raw client that never answers the close frame keeps the server draining until the deadline.
    const { socket } = await rawHandshake(server.port);
    const received: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => received.push(chunk));
    const socketClosed = once(socket, 'close');
    await server.stdout.waitFor(/WebSocket connected/);
    assert.equal((await fetch(`${server.metricsUrl}/readyz`)).status, 200);

    const started = performance.now();
    server.kill('SIGTERM');
    await server.stdout.waitFor(/Stopped accepting new connections/);
    const ready = await fetch(`${server.metricsUrl}/readyz`);
    assert.equal(ready.status, 503);
    await ready.text();
    const upgrade = await rawHttp(
      server.port,
      'GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
        'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
    );
    assert.match(upgrade, /^HTTP\/1\.1 503 /);

    await socketClosed;
    const { code } = await server.exited;
    const elapsed = performance.now() - started;
    assert.equal(code, 0);
    assert.ok(elapsed >= 1400, `waited for the deadline (${elapsed}ms)`);
    assert.ok(elapsed < 4000, `exited soon after the deadline (${elapsed}ms)`);
    // The close frame the server sent: opcode 0x8, status 1001.
    const bytes = Buffer.concat(received);
    assert.equal(bytes[0], 0x88);
    assert.equal(bytes.readUInt16BE(2), 1001);
    await server.stdout.waitFor(/Shutdown deadline reached: terminating 1 connection still open/);
  });

  it('exits at once with a non-zero code on a second signal', async () => {
    const server = await spawnServer(['--stats-interval=0', '--shutdown-timeout=30s']);
    const { socket } = await rawHandshake(server.port);
    socket.on('data', () => {});
    await server.stdout.waitFor(/WebSocket connected/);
    server.kill('SIGTERM');
    await server.stdout.waitFor(/Closing 1 connection with 1001/);
    const started = performance.now();
    server.kill('SIGINT');
    const { code } = await server.exited;
    assert.equal(code, 130);
    assert.ok(performance.now() - started < 2000);
    await server.stdout.waitFor(/Received SIGINT again during shutdown, exiting immediately/);
    socket.destroy();
  });
});
