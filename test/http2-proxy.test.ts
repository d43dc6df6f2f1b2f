import assert from 'node:assert/strict';
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { makeTempDir } from './helpers/certs.js';
import { rawHandshake, TestClient } from './helpers/clients.js';
import { metricValue, waitForMetric } from './helpers/metrics.js';
import { type InProcessServer, startServer } from './helpers/server.js';

async function freePort(): Promise<number> {
  const probe = createServer();
  probe.listen(0, '127.0.0.1');
  await once(probe, 'listening');
  const { port } = probe.address() as { port: number };
  probe.close();
  await once(probe, 'close');
  return port;
}

async function waitForPort(port: number, timeoutMs = 10_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const socket = connect(port, '127.0.0.1', () => {
        socket.destroy();
        resolve(true);
      });
      socket.on('error', () => resolve(false));
    });
    if (ok) return;
    if (performance.now() > deadline) throw new Error(`nothing listens on ${port} after ${timeoutMs}ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/**
 * A real proxy that speaks HTTP/2 to its backend (Debian's HAProxy 2.6: `proto h2` on the server
 * line turns an HTTP/1.1 WebSocket upgrade into an RFC 8441 extended CONNECT): plain HTTP/1.1
 * WebSocket clients in front, wshub behind over h2c.
 */
describe('through HAProxy speaking HTTP/2 to wshub', () => {
  let server: InProcessServer;
  let haproxy: ChildProcess;
  let front: number;
  const temp = makeTempDir('wshub-haproxy-');

  before(async () => {
    assert.match(execFileSync('haproxy', ['-v']).toString(), /HAProxy version (2\.[4-9]|[3-9])/);
    server = await startServer([
      '--http2',
      '--mode=broadcast',
      '--allow-fault-injection',
      '--stats-interval=0',
    ]);
    front = await freePort();
    const config = join(temp.dir, 'haproxy.cfg');
    writeFileSync(
      config,
      [
        'defaults',
        '  mode http',
        '  timeout connect 5s',
        '  timeout client 30s',
        '  timeout server 30s',
        '  timeout tunnel 60s',
        'frontend websockets',
        `  bind 127.0.0.1:${front}`,
        '  option forwardfor',
        '  default_backend wshub',
        'backend wshub',
        `  server wshub 127.0.0.1:${server.app.port} proto h2`,
        '',
      ].join('\n'),
    );
    haproxy = spawn('haproxy', ['-f', config, '-db'], { stdio: 'ignore' });
    await waitForPort(front);
  });

  after(async () => {
    haproxy.kill();
    await server.app.stop();
    temp.cleanup();
  });

  it('carries HTTP/1.1 clients as HTTP/2 streams: echo, rooms and ?hello through the proxy', async () => {
    const a = await TestClient.open(`ws://127.0.0.1:${front}/ws/room?hello`);
    const b = await TestClient.open(`ws://127.0.0.1:${front}/ws/room`);
    const hello = JSON.parse(String((await a.next()).data));
    assert.equal(hello.type, 'hello');
    assert.equal(hello.room, 'room');
    // What reached wshub (issue 17): HAProxy's extended CONNECT over HTTP/2, with the X-Forwarded-For it added.
    assert.equal(hello.http_version, '2');
    assert.equal(hello.method, 'CONNECT');
    assert.equal(hello.headers[':protocol'], 'websocket');
    assert.equal(hello.headers.upgrade, undefined);
    assert.deepEqual(hello.forwarded, { 'x-forwarded-for': '127.0.0.1' });
    await waitForMetric(server.metricsUrl, 'websocket_connected_clients', 2);
    // Both arrived at wshub as extended CONNECTs on HTTP/2.
    assert.equal(
      await metricValue(server.metricsUrl, 'wshub_connections_by_http_version_total', { http_version: '2' }),
      2,
    );
    assert.equal(
      await metricValue(server.metricsUrl, 'wshub_connections_by_http_version_total', {
        http_version: '1.1',
      }),
      0,
    );
    await a.send('through the proxy');
    assert.equal(String((await b.next()).data), 'through the proxy');
    assert.equal(String((await a.next()).data), 'through the proxy');
    a.ws.close(1000);
    assert.equal((await a.closed).code, 1000);
    b.ws.close(1000);
    assert.equal((await b.closed).code, 1000);
    await waitForMetric(server.metricsUrl, 'websocket_connected_clients', 0);
  });

  it('?status=503&retry-after=3: the HTTP/1.1 client in front gets what wshub answered the extended CONNECT with', async () => {
    const { response, socket } = await rawHandshake(front, '/ws?status=503&retry-after=3');
    socket.destroy();
    assert.match(response, /^HTTP\/1\.1 503 /);
    assert.match(response, /\r\nretry-after: 3\r\n/i);
    assert.equal(
      await metricValue(server.metricsUrl, 'websocket_upgrades_rejected_total', {
        reason: 'injected_status',
      }),
      1,
    );
  });

  it('a refusal keeps its status through the proxy (404 for an unknown path)', async () => {
    const refused = await TestClient.open(`ws://127.0.0.1:${front}/nope`).then(
      () => 'opened',
      (error: Error) => error.message,
    );
    assert.match(refused, /404/);
    assert.equal(
      await metricValue(server.metricsUrl, 'websocket_upgrades_rejected_total', { reason: 'not_found' }),
      1,
    );
  });
});
