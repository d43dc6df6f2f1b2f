import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MemoryBackplane, MemoryBus } from '../src/backplane/memory.js';
import { TestClient } from './helpers/clients.js';
import { metricValue, waitForMetric } from './helpers/metrics.js';
import { startServer } from './helpers/server.js';

describe('backplane seam in the app (in-process nodes on a memory bus)', () => {
  it('relays between nodes once each, keeps types, fails fast while the bus is down and resumes', async () => {
    const bus = new MemoryBus();
    const backplane = {
      backplane: (stats: ConstructorParameters<typeof MemoryBackplane>[1]) => new MemoryBackplane(bus, stats),
    };
    const a = await startServer(['--mode=broadcast'], backplane);
    const b = await startServer(['--mode=broadcast'], backplane);
    try {
      const [a1, b1] = await Promise.all([TestClient.open(a.url), TestClient.open(b.url)]);
      await a1.send('text');
      await a1.send(Buffer.from([0, 1, 2]), { binary: true });
      for (const client of [a1, b1]) {
        const first = await client.next();
        const second = await client.next();
        assert.deepEqual([first.data.toString(), first.isBinary], ['text', false]);
        assert.deepEqual([second.data, second.isBinary], [Buffer.from([0, 1, 2]), true]);
      }
      await b1.send('marker');
      assert.equal((await a1.next()).data.toString(), 'marker', 'no duplicate before the marker');
      assert.equal((await b1.next()).data.toString(), 'marker');
      assert.equal(await metricValue(b.metricsUrl, 'wshub_backplane_messages_received_total'), 2);

      bus.setAvailable(false);
      await a1.send('local only');
      assert.equal((await a1.next()).data.toString(), 'local only');
      assert.equal(
        await waitForMetric(a.metricsUrl, 'websocket_messages_dropped_total', 1, {
          reason: 'backplane_unavailable',
        }),
        1,
      );
      const ready = await fetch(`${a.metricsUrl}/readyz`);
      assert.equal(ready.status, 200);
      assert.match(await ready.text(), /^ready \(degraded: backplane\)\nbackplane: disconnected/);
      assert.equal(await metricValue(a.metricsUrl, 'wshub_backplane_connected'), 0);

      bus.setAvailable(true);
      await a1.send('again');
      assert.equal((await b1.next()).data.toString(), 'again', 'nothing from the outage was replayed');
      await a1.next();
      assert.equal(await metricValue(a.metricsUrl, 'wshub_backplane_reconnects_total'), 1);
      await Promise.all([a1.close(), b1.close()]);
    } finally {
      await Promise.all([a.app.stop(), b.app.stop()]);
    }
  });

  it('echo mode never builds a backplane, even when one is offered', async () => {
    let built = 0;
    const echo = await startServer([], {
      backplane: () => {
        built++;
        return new MemoryBackplane();
      },
    });
    try {
      const client = await TestClient.open(echo.url);
      await client.send('ping');
      assert.equal((await client.next()).data.toString(), 'ping');
      await client.close();
      assert.equal(built, 0);
      assert.equal(await metricValue(echo.metricsUrl, 'wshub_backplane_connected'), undefined);
    } finally {
      await echo.app.stop();
    }
  });
});
