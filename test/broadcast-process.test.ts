import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { TestClient } from './helpers/clients.js';
import { waitForMetric } from './helpers/metrics.js';
import { runWshub, spawnServer } from './helpers/server.js';

describe('wshub --mode=broadcast (process)', () => {
  it('broadcasts, then on SIGTERM closes every client with 1001 and exits 0', async () => {
    const server = await spawnServer(['--mode=broadcast', '--stats-interval=0']);
    try {
      await server.stdout.waitFor(/Broadcast mode: every message/, 30_000);
      const clients = await Promise.all([1, 2, 3].map(() => TestClient.open(server.url)));
      await waitForMetric(server.metricsUrl, 'websocket_connected_clients', 3);
      await clients[0]?.send('before shutdown');
      for (const client of clients) assert.equal((await client.next()).data.toString(), 'before shutdown');

      server.kill('SIGTERM');
      const closes = await Promise.all(clients.map((client) => client.closed));
      for (const close of closes) assert.equal(close.code, 1001);
      assert.deepEqual(await server.exited, { code: 0, signal: null });
      await server.stdout.waitFor(/Closing 3 connections with 1001/, 30_000);
      assert.equal(server.stdout.count(/WebSocket disconnected/), 3);
    } finally {
      server.kill('SIGKILL');
    }
  });

  it('rejects an unknown mode with one line naming the flag and exit code 2', async () => {
    const run = runWshub(['--mode=fanout']);
    assert.deepEqual(await run.exited, { code: 2, signal: null });
    assert.equal(run.stderr.lines.length, 1);
    assert.match(run.stderr.lines[0] ?? '', /--mode.*one of echo, broadcast.*\[WSHUB_INVALID_VALUE\]/);
  });
});
