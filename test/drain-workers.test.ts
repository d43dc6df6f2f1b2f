import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { TestClient } from './helpers/clients.js';
import { readyzLeaving200 } from './helpers/metrics.js';
import { spawnServer } from './helpers/server.js';

/**
 * Issue 17's drain with --workers (issue 5): the primary's /readyz turns 503 at once, every worker
 * keeps serving new clients for --drain-delay, then closes its connections with 1001 over
 * --drain-window, and the primary waits for all of that before it exits.
 */
describe('drains with --workers=2', () => {
  it('on SIGTERM: /readyz 503 at once, new clients served during --drain-delay on the workers, then 1001 for all, exit 0', async () => {
    const delayMs = 2000;
    const server = await spawnServer([
      '--workers=2',
      '--stats-interval=0',
      `--drain-delay=${delayMs}ms`,
      '--drain-window=1s',
      '--shutdown-timeout=5s',
    ]);
    try {
      await server.stdout.waitFor(/Starting WebSocket server on /);
      const clients = await Promise.all(Array.from({ length: 6 }, () => TestClient.open(server.url)));
      assert.equal((await fetch(`${server.metricsUrl}/readyz`)).status, 200);
      const signalledAt = performance.now();
      server.kill('SIGTERM');
      assert.equal(
        await readyzLeaving200(server.metricsUrl, 1000),
        503,
        "the primary's /readyz answers 503 right after SIGTERM",
      );
      // Clients still on their way are served by the workers during the delay.
      const late = await Promise.all(Array.from({ length: 4 }, () => TestClient.open(server.url)));
      for (const [i, client] of late.entries()) {
        await client.send(`late ${i}`);
        assert.equal(String((await client.next()).data), `late ${i}`);
      }
      assert.ok(performance.now() - signalledAt < delayMs, 'the late clients got in within the drain delay');
      const closes = await Promise.all([...clients, ...late].map((client) => client.closed));
      for (const close of closes) assert.equal(close.code, 1001);
      assert.ok(performance.now() - signalledAt >= delayMs, 'nobody was closed before the drain delay ended');
      assert.deepEqual(await server.exited, { code: 0, signal: null });
      assert.equal(server.stdout.count(/Drain delay over: \d+ connections? accepted during it$/), 2);
    } finally {
      server.kill('SIGKILL');
    }
  });
});
