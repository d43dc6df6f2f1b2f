import assert from 'node:assert/strict';
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
