import assert from 'node:assert/strict';
import { hostname } from 'node:os';
import { performance } from 'node:perf_hooks';
import { after, before, describe, it } from 'node:test';
import type { BenchReport } from '../src/bench/report.js';
import { rawHandshake, TestClient } from './helpers/clients.js';
import { waitForMetric } from './helpers/metrics.js';
import { type InProcessServer, runWshub, startServer } from './helpers/server.js';

describe('fault injection with --allow-fault-injection', () => {
  let server: InProcessServer;
  before(async () => {
    server = await startServer(['--stats-interval=0', '--allow-fault-injection']);
  });
  after(() => server.app.stop());

  it('?delay=200ms echoes each message that much later, in order', async () => {
    const client = await TestClient.open(`${server.url}?delay=200ms`);
    const sentAt = performance.now();
    await client.send('one');
    await client.send('two');
    await client.send('three');
    const echoes = await client.take(3);
    const elapsed = performance.now() - sentAt;
    assert.deepEqual(
      echoes.map((echo) => echo.data.toString()),
      ['one', 'two', 'three'],
    );
    // A lower bound only: the echo cannot come sooner than asked (timers may fire a little early).
    assert.ok(elapsed >= 195, `echoed after ${elapsed.toFixed(1)} ms`);
    await client.close();
  });

  it('?close=4000&reason=bye echoes the next message, then closes with 4000 "bye", counted', async () => {
    const before = server.app.stats.serverDisconnects.fault_injection;
    const client = await TestClient.open(`${server.url}?close=4000&reason=bye`);
    await client.send('last words');
    assert.equal((await client.next()).data.toString(), 'last words');
    assert.deepEqual(await client.closed, { code: 4000, reason: 'bye' });
    await waitForMetric(server.metricsUrl, 'websocket_server_disconnects_total', before + 1, {
      reason: 'fault_injection',
    });
    assert.equal(server.app.stats.serverDisconnects.fault_injection, before + 1);
    await server.log.waitFor(/^WebSocket disconnected: 127\.0\.0\.1:\d+$/);
  });

  it('?close=4001&immediately closes right after the handshake', async () => {
    const client = await TestClient.open(`${server.url}?close=4001&immediately`);
    assert.deepEqual(await client.closed, { code: 4001, reason: '' });
    assert.equal(client.received.length, 0);
  });

  it('?delay with ?close: the delayed echo comes first, then the close', async () => {
    const client = await TestClient.open(`${server.url}?delay=50ms&close=3000&reason=later`);
    await client.send('x');
    assert.equal((await client.next()).data.toString(), 'x');
    assert.deepEqual(await client.closed, { code: 3000, reason: 'later' });
  });

  it('?drop cuts the TCP connection on the next message, without a close frame (1006) or an echo', async () => {
    const client = await TestClient.open(`${server.url}?drop`);
    await client.send('are you there?');
    assert.equal((await client.closed).code, 1006);
    assert.equal(client.received.length, 0);
  });

  it('?drop&immediately cuts it right after the handshake', async () => {
    const client = await TestClient.open(`${server.url}?drop&immediately`);
    assert.equal((await client.closed).code, 1006);
  });

  it('?hello: the first message names the replica; echo works as usual after it', async () => {
    const client = await TestClient.open(`${server.url.replace(/\/ws$/, '/ws/lobby')}?hello`);
    const hello = JSON.parse((await client.next()).data.toString());
    assert.equal(hello.type, 'hello');
    assert.equal(hello.hostname, hostname());
    assert.match(hello.instance, /^[0-9a-f]{8}$/);
    assert.match(hello.version, /^\d+\.\d+\.\d+/);
    assert.equal(typeof hello.connection_id, 'number');
    assert.equal(hello.room, 'lobby');
    assert.match(hello.remote_addr, /^127\.0\.0\.1:\d+$/);
    const again = await TestClient.open(`${server.url}?hello`);
    assert.equal(JSON.parse((await again.next()).data.toString()).instance, hello.instance);
    await client.send('after hello');
    assert.equal((await client.next()).data.toString(), 'after hello');
    await client.close();
    await again.close();
  });

  it('refuses an out-of-bounds value with 400 naming the problem, counted', async () => {
    const before = server.app.stats.upgradesRejected.invalid_fault_injection;
    for (const query of ['close=1005', 'delay=1m', 'reason=bye']) {
      const { response, socket } = await rawHandshake(server.app.port, `/ws?${query}`);
      socket.destroy();
      assert.match(response, /^HTTP\/1\.1 400 /, query);
    }
    const { response, socket } = await rawHandshake(server.app.port, '/ws?close=1005');
    socket.destroy();
    assert.match(response, /close must be a code a server may send: 1000-1003, 1007-1014 or 3000-4999/);
    await waitForMetric(server.metricsUrl, 'websocket_upgrades_rejected_total', before + 4, {
      reason: 'invalid_fault_injection',
    });
  });

  it('leaves other query parameters alone', async () => {
    const client = await TestClient.open(`${server.url}?token=abc`);
    await client.send('plain');
    assert.equal((await client.next()).data.toString(), 'plain');
    await client.close();
  });

  it('makes wshub bench fail its error budget when the server closes every connection', async () => {
    const run = runWshub([
      'bench',
      `${server.url}?close=4000&immediately`,
      '--connections=3',
      '--duration=500ms',
      '--max-errors=0',
      '--json',
    ]);
    const { code } = await run.exited;
    const report = JSON.parse(run.stdout.lines.join('\n')) as BenchReport;
    assert.equal(code, 1);
    assert.deepEqual(report.closeCodes, { 4000: 3 });
    assert.equal(report.connections.unexpectedCloses, 3);
    assert.equal(report.errors, 3);
  });
});

describe('fault injection ?delay memory bound', () => {
  it('closes with 1008 when more than --max-buffered-bytes would wait on ?delay, counted', async () => {
    const server = await startServer([
      '--stats-interval=0',
      '--allow-fault-injection',
      '--max-buffered-bytes=1MiB',
    ]);
    try {
      const client = await TestClient.open(`${server.url}?delay=5s`);
      const large = Buffer.alloc(600 * 1024, 1);
      await client.send(large, { binary: true });
      await client.send(large, { binary: true });
      assert.deepEqual(await client.closed, { code: 1008, reason: 'too much waiting on ?delay' });
      assert.equal(client.received.length, 0);
      // Counted when the server's side of the close completes, just after the client's.
      const counted = await waitForMetric(server.metricsUrl, 'websocket_server_disconnects_total', 1, {
        reason: 'fault_injection',
      });
      assert.equal(counted, 1);
    } finally {
      await server.app.stop();
    }
  });
});

describe('fault injection without --allow-fault-injection', () => {
  it('ignores the query: no hello, no close, plain echo', async () => {
    const server = await startServer(['--stats-interval=0']);
    try {
      const client = await TestClient.open(`${server.url}?hello&close=4000&immediately`);
      await client.send('still here');
      assert.equal((await client.next()).data.toString(), 'still here');
      assert.equal(client.ws.readyState, client.ws.OPEN);
      await client.close();
      const { response, socket } = await rawHandshake(server.app.port, '/ws?close=1');
      socket.destroy();
      assert.match(response, /^HTTP\/1\.1 101 /);
      assert.equal(server.app.stats.serverDisconnects.fault_injection, 0);
    } finally {
      await server.app.stop();
    }
  });
});
