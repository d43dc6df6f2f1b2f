import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { after, describe, it } from 'node:test';
import { TestClient } from './helpers/clients.js';
import { type SpawnedServer, spawnServer } from './helpers/server.js';

// Go's log package: "2026/01/12 10:00:00 message".
const STAMP = String.raw`\d{4}/\d{2}/\d{2} \d{2}:\d{2}:\d{2}`;
const line = (message: string): RegExp => new RegExp(`^${STAMP} ${message}$`);

describe('log lines in the seed format (spawned process)', () => {
  const servers: SpawnedServer[] = [];
  after(async () => {
    for (const server of servers) {
      server.kill('SIGKILL');
      await server.exited;
    }
  });

  it('logs startup, connect and disconnect with the peer address, and the periodic count', async () => {
    const server = await spawnServer(['--stats-interval=200ms']);
    servers.push(server);
    assert.match(
      server.stdout.lines[0] ?? '',
      line(`Starting WebSocket server on 127\\.0\\.0\\.1:${server.port}`),
    );
    assert.match(server.stdout.lines[1] ?? '', line(`Starting metrics server on :${server.metricsPort}`));

    const client = await TestClient.open(server.url);
    const localPort = (client.ws as unknown as { _socket: { localPort: number } })._socket.localPort;
    await server.stdout.waitFor(line(`WebSocket connected: 127\\.0\\.0\\.1:${localPort}`));
    await server.stdout.waitFor(line('Active connections: 1'));
    await client.close();
    await server.stdout.waitFor(line(`WebSocket disconnected: 127\\.0\\.0\\.1:${localPort}`));
    // A count logged after the disconnect (an earlier "0" from before the connect does not count).
    const countAfter = server.stdout.lines.length;
    await server.stdout.waitFor(/Active connections: 0$/, 10_000, countAfter);
    // Every stdout line is in the seed's format.
    for (const logged of server.stdout.lines) assert.match(logged, new RegExp(`^${STAMP} \\S`));
  });

  it('prints IPv6 peers as [::1]:port', async (t) => {
    const server = await spawnServer(['--host=::1', '--stats-interval=0']);
    servers.push(server);
    assert.match(server.stdout.lines[0] ?? '', line(`Starting WebSocket server on \\[::1\\]:${server.port}`));
    const client = await TestClient.open(`ws://[::1]:${server.port}/ws`).catch((error: Error) => error);
    if (client instanceof Error) {
      t.diagnostic(`IPv6 loopback unavailable: ${client.message}`);
      assert.fail(`cannot connect to [::1]: ${client.message}`);
    }
    const localPort = (client.ws as unknown as { _socket: { localPort: number } })._socket.localPort;
    await server.stdout.waitFor(line(`WebSocket connected: \\[::1\\]:${localPort}`));
    await client.close();
    await server.stdout.waitFor(line(`WebSocket disconnected: \\[::1\\]:${localPort}`));
  });
});

describe('a log reader that goes away', () => {
  it('does not take the server down: it keeps echoing after its stdout pipe closes', async () => {
    const server = await spawnServer(['--stats-interval=50ms']);
    try {
      server.child.stdout?.destroy();
      // Give the periodic count a few chances to hit the closed pipe.
      await new Promise((resolve) => setTimeout(resolve, 300));
      assert.equal(server.child.exitCode, null, `still running; stderr: ${server.stderr.lines.join('\n')}`);
      const client = await TestClient.open(server.url);
      await client.send('still here');
      assert.equal((await client.next()).data.toString(), 'still here');
      await client.close();
      server.kill('SIGTERM');
      assert.equal((await server.exited).code, 0);
      assert.deepEqual(server.stderr.lines, []);
    } finally {
      server.kill('SIGKILL');
    }
  });
});

// Log lines are written in batches (src/log.ts: one write per event-loop turn, at most one per
// 5 ms): none may be lost, reordered or merged, including the ones pending when the process ends.
describe('batched log lines (spawned process)', () => {
  const localPortOf = (client: TestClient): number =>
    (client.ws as unknown as { _socket: { localPort: number } })._socket.localPort;

  it('logs every connect and disconnect of a burst exactly once, in order, the last ones at shutdown', async () => {
    const server = await spawnServer(['--stats-interval=0']);
    try {
      const ports: number[] = [];
      const open: TestClient[] = [];
      for (let batch = 0; batch < 4; batch++) {
        const clients = await Promise.all(Array.from({ length: 50 }, () => TestClient.open(server.url)));
        for (const client of clients) ports.push(localPortOf(client));
        // 45 of each 50 close at once; the rest stay open until the server shuts down.
        await Promise.all(clients.slice(5).map((client) => client.close()));
        open.push(...clients.slice(0, 5));
      }
      server.kill('SIGTERM');
      for (const client of open) assert.equal((await client.closed).code, 1001);
      assert.equal((await server.exited).code, 0);

      const lines = server.stdout.lines;
      for (const logged of lines) assert.match(logged, new RegExp(`^${STAMP} \\S`), 'seed format');
      assert.match(lines.at(-1) ?? '', line('Shutdown complete'));
      const index = (message: string): number[] =>
        lines.flatMap((logged, i) => (logged.slice(20) === message ? [i] : []));
      for (const port of ports) {
        const connected = index(`WebSocket connected: 127.0.0.1:${port}`);
        const disconnected = index(`WebSocket disconnected: 127.0.0.1:${port}`);
        assert.equal(connected.length, 1, `one connect line for port ${port}`);
        assert.equal(disconnected.length, 1, `one disconnect line for port ${port}`);
        assert.ok(
          (connected[0] as number) < (disconnected[0] as number),
          `connect before disconnect (${port})`,
        );
      }
      assert.equal(lines.filter((logged) => / WebSocket (dis)?connected: /.test(logged)).length, 400);
      assert.deepEqual(server.stderr.lines, []);
    } finally {
      server.kill('SIGKILL');
    }
  });

  it('writes the lines pending in the turn of an uncaught exception before the process dies', async () => {
    const logModule = new URL('../src/log.js', import.meta.url).href;
    const script = `
      import { createLogger } from ${JSON.stringify(logModule)};
      const logger = createLogger();
      logger.info('first line');
      setImmediate(function crash() {
        logger.info('logged in the turn that crashes');
        throw new Error('boom');
      });`;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
    });
    const [code] = await once(child, 'exit');
    assert.equal(code, 1);
    assert.match(stderr, /Error: boom/);
    const lines = stdout.split('\n');
    assert.equal(lines.length, 3, stdout);
    assert.match(lines[0] ?? '', line('first line'));
    assert.match(lines[1] ?? '', line('logged in the turn that crashes'));
    assert.equal(lines[2], '');
  });
});
