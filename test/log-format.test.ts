import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { hs256, SECRET } from './helpers/auth.js';
import { TestClient } from './helpers/clients.js';
import { H2Client } from './helpers/h2.js';
import { runWshub } from './helpers/server.js';
import { sendUpgrade } from './helpers/upgrade.js';

const BASE = ['--host=127.0.0.1', '--port=0', '--metrics-port=0', '--stats-interval=0'];

describe('--log-format=json (spawned process)', () => {
  it('writes every line as JSON with time, level, msg and connection fields', async () => {
    const run = runWshub([...BASE, '--log-format=json']);
    const started = await run.stdout.waitFor(/"msg":"Starting WebSocket server on [^"]*:\d+"/);
    const port = Number(/:(\d+)$/.exec(JSON.parse(started).msg)?.[1]);
    const client = await TestClient.open(`ws://127.0.0.1:${port}/ws`);
    const localPort = (client.ws as unknown as { _socket: { localPort: number } })._socket.localPort;
    await client.close(4001);
    await run.stdout.waitFor(/"msg":"WebSocket disconnected/);
    run.child.kill('SIGTERM');
    assert.equal((await run.exited).code, 0);

    const lines = run.stdout.lines.map((line) => JSON.parse(line));
    for (const line of lines) {
      assert.match(line.time, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/);
      assert.ok(['info', 'warn', 'error'].includes(line.level), line.level);
      assert.equal(typeof line.msg, 'string');
    }
    const connected = lines.find((line) => line.msg.startsWith('WebSocket connected: '));
    const disconnected = lines.find((line) => line.msg.startsWith('WebSocket disconnected: '));
    assert.deepEqual(
      { ...connected, time: undefined },
      {
        time: undefined,
        level: 'info',
        msg: `WebSocket connected: 127.0.0.1:${localPort}`,
        remote_addr: `127.0.0.1:${localPort}`,
        conn_id: 1,
        room: '',
        http_version: '1.1',
      },
    );
    assert.equal(disconnected.remote_addr, `127.0.0.1:${localPort}`);
    assert.equal(disconnected.conn_id, 1);
    assert.equal(disconnected.http_version, '1.1');
    assert.equal(disconnected.close_code, 4001);
    assert.ok(
      lines.some((line) => line.msg === 'Received SIGTERM, shutting down' && line.signal === 'SIGTERM'),
    );
  });

  it('a WebSocket over HTTP/2 (--http2) says so in its connect and disconnect lines: http_version "2"', async () => {
    const run = runWshub([...BASE, '--log-format=json', '--http2']);
    const started = await run.stdout.waitFor(/"msg":"Starting WebSocket server on [^"]*:\d+"/);
    const port = Number(/:(\d+)$/.exec(JSON.parse(started).msg)?.[1]);
    const client = await H2Client.connect(`http://127.0.0.1:${port}`);
    try {
      const ws = await client.openOk('/ws/h2room');
      ws.close(1000);
      await ws.frames.nextClose();
      ws.stream.end();
      await run.stdout.waitFor(/"msg":"WebSocket disconnected/);
    } finally {
      client.close();
    }
    run.child.kill('SIGTERM');
    assert.equal((await run.exited).code, 0);
    const lines = run.stdout.lines.map((line) => JSON.parse(line));
    const connected = lines.find((line) => line.msg.startsWith('WebSocket connected: '));
    const disconnected = lines.find((line) => line.msg.startsWith('WebSocket disconnected: '));
    assert.equal(connected?.http_version, '2');
    assert.equal(connected?.room, 'h2room');
    assert.equal(disconnected?.http_version, '2');
    assert.equal(disconnected?.close_code, 1000);
  });

  it('a refusal of --auth=jwt (upgrade, GET /stats, GET of a WebSocket path) carries status and auth_failure, never the token', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'wshub-log-auth-'));
    writeFileSync(join(dir, 'secret'), `${SECRET}\n`);
    const run = runWshub([
      ...BASE,
      '--log-format=json',
      '--auth=jwt',
      `--auth-jwt-secret-file=${join(dir, 'secret')}`,
    ]);
    try {
      const started = await run.stdout.waitFor(/"msg":"Starting WebSocket server on [^"]*:\d+"/);
      const port = Number(/:(\d+)$/.exec(JSON.parse(started).msg)?.[1]);
      const upgrade = await sendUpgrade(port, { path: '/ws' });
      upgrade.socket.destroy();
      assert.equal(upgrade.status, 401);
      const forged = await hs256({ sub: 'x', rooms: ['*'] }, new TextEncoder().encode('f'.repeat(40)));
      const stats = await fetch(`http://127.0.0.1:${port}/stats`, {
        headers: { Authorization: `Bearer ${forged}` },
      });
      assert.equal(stats.status, 401);
      const expired = await hs256({ sub: 'x', rooms: ['*'], exp: Math.floor(Date.now() / 1000) - 10 });
      assert.equal((await fetch(`http://127.0.0.1:${port}/ws/chat?access_token=${expired}`)).status, 401);
      await run.stdout.waitFor(/"msg":"Request refused: GET \/ws\/chat /);
      run.child.kill('SIGTERM');
      assert.equal((await run.exited).code, 0);

      const refusals = run.stdout.lines
        .map((line) => JSON.parse(line))
        .filter((line) => /refused/.test(line.msg))
        .map(({ time, msg, remote_addr, ...fields }) => {
          assert.match(remote_addr, /^127\.0\.0\.1:\d+$/);
          assert.ok(msg.includes(remote_addr), msg);
          return fields;
        });
      assert.deepEqual(refusals, [
        { level: 'warn', status: 401, reason: 'unauthorized', auth_failure: 'missing' },
        { level: 'warn', status: 401, auth_failure: 'signature' },
        { level: 'warn', status: 401, auth_failure: 'expired' },
      ]);
      const text = run.stdout.lines.join('\n');
      for (const token of [forged, expired]) {
        assert.ok(!text.includes(token.split('.')[2] as string), 'no token in the log');
      }
    } finally {
      run.child.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('--log-level=warn leaves out connect and disconnect lines', async () => {
    // Nothing at info is written, so the port is chosen here and polled until it answers.
    const port = await freePort();
    const run = runWshub([
      ...BASE.filter((flag) => flag !== '--port=0'),
      `--port=${port}`,
      '--log-level=warn',
    ]);
    const client = await openWithRetry(`ws://127.0.0.1:${port}/ws`, 5000);
    await client.close();
    run.child.kill('SIGTERM');
    assert.equal((await run.exited).code, 0);
    assert.deepEqual(run.stdout.lines, []);
  });

  it('rejects an unknown format with exit 2 naming the flag', async () => {
    const run = runWshub([...BASE, '--log-format=xml']);
    const { code } = await run.exited;
    assert.equal(code, 2);
    assert.match(run.stderr.lines.join('\n'), /--log-format.*one of text, json.*\[WSHUB_INVALID_VALUE\]/);
  });
});

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Waits until the port accepts TCP connections, then opens a WebSocket client. */
async function openWithRetry(url: string, timeoutMs: number): Promise<TestClient> {
  const { hostname, port } = new URL(url);
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const accepted = await new Promise<boolean>((resolve) => {
      const socket = connect(Number(port), hostname);
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (accepted) return TestClient.open(url);
    if (performance.now() > deadline)
      throw new Error(`${url} not accepting connections after ${timeoutMs}ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
