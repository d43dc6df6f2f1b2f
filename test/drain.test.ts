import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { TestClient } from './helpers/clients.js';
import { metricValue, readyzLeaving200 } from './helpers/metrics.js';
import { spawnServer } from './helpers/server.js';

const STAMP = String.raw`^\d{4}/\d{2}/\d{2} \d{2}:\d{2}:\d{2} `;

describe('drains without reconnect storms (issue 17)', () => {
  it('on SIGTERM: /readyz 503 at once, new clients served during --drain-delay, then 1001 spread over --drain-window, not one burst', async () => {
    const delayMs = 1000;
    const windowMs = 2000;
    const server = await spawnServer([
      '--stats-interval=0',
      `--drain-delay=${delayMs}ms`,
      `--drain-window=${windowMs}ms`,
      '--shutdown-timeout=5s',
    ]);
    const count = 40;
    const clients = await Promise.all(Array.from({ length: count }, () => TestClient.open(server.url)));
    const closedAt: number[] = [];
    for (const client of clients)
      void client.closed.then(({ code }) => code === 1001 && closedAt.push(performance.now()));
    assert.equal((await fetch(`${server.metricsUrl}/readyz`)).status, 200);

    const signalledAt = performance.now();
    server.kill('SIGTERM');
    // Readiness turns at once, so the load balancer stops sending new clients...
    assert.equal(
      await readyzLeaving200(server.metricsUrl, 500),
      503,
      '/readyz answers 503 right after SIGTERM',
    );
    assert.equal(await metricValue(server.metricsUrl, 'wshub_shutdown_phase'), 1);
    // ...but one that was already on its way is still served during the drain delay.
    const late = await TestClient.open(server.url);
    void late.closed.then(({ code }) => code === 1001 && closedAt.push(performance.now()));
    await late.send('still served');
    assert.equal(String((await late.next()).data), 'still served');
    assert.ok(performance.now() - signalledAt < delayMs, 'the late client got in within the drain delay');
    // Counted as well as logged (the metrics port serves until the last connection has closed).
    await server.stdout.waitFor(/Drain delay over: 1 connection accepted during it$/);
    assert.equal(await metricValue(server.metricsUrl, 'wshub_drain_accepted_connections_total'), 1);
    assert.ok(((await metricValue(server.metricsUrl, 'wshub_shutdown_phase')) ?? 0) >= 2);

    const closes = await Promise.all([...clients, late].map((client) => client.closed));
    for (const close of closes) assert.equal(close.code, 1001);
    const { code } = await server.exited;
    assert.equal(code, 0);

    // Spread: nobody before the delay, the closes cover most of the window, and no burst.
    const offsets = closedAt.map((at) => at - signalledAt).sort((a, b) => a - b);
    assert.equal(offsets.length, count + 1);
    assert.ok(
      (offsets[0] as number) >= delayMs - 50,
      `first close at ${offsets[0]}ms, before the ${delayMs}ms delay`,
    );
    const span = (offsets.at(-1) as number) - (offsets[0] as number);
    assert.ok(span >= windowMs * 0.7, `closes spanned ${span}ms of a ${windowMs}ms window`);
    // Quartiles of the closes follow the window (a burst would put them all at one point); this
    // holds even when a loaded machine delays some closes and they go out together.
    const quartile = (q: number): number =>
      ((offsets[Math.floor(q * (offsets.length - 1))] as number) - delayMs) / windowMs;
    assert.ok(
      quartile(0.25) >= 0.05 && quartile(0.25) <= 0.5,
      `first quartile at ${quartile(0.25)} of the window`,
    );
    assert.ok(quartile(0.5) >= 0.3 && quartile(0.5) <= 0.75, `median at ${quartile(0.5)} of the window`);
    assert.ok(
      quartile(0.75) >= 0.55,
      `third quartile at ${quartile(0.75)} of the window: ${offsets.join(', ')}`,
    );

    const logged = server.stdout.lines.map((line) => line.replace(new RegExp(STAMP), ''));
    for (const step of [
      'Received SIGTERM, shutting down',
      `Draining: /readyz answers 503; new connections are still accepted for 1s (--drain-delay)`,
      'Drain delay over: 1 connection accepted during it',
      'Stopped accepting new connections',
      `Closing ${count + 1} connections with 1001 (going away) spread over 2s (--drain-window)`,
      'All connections closed',
      'Shutdown complete',
    ]) {
      assert.ok(logged.includes(step), `logged "${step}"; log was:\n${logged.join('\n')}`);
    }
  });
});
