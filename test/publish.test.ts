import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type RunningApp, start } from '../src/app.js';
import { MemoryBackplane, MemoryBus } from '../src/backplane/memory.js';
import { loadConfig } from '../src/config/load.js';
import { silentLogger } from '../src/log.js';
import { TestClient } from './helpers/clients.js';
import { metricValue } from './helpers/metrics.js';
import { type InProcessServer, runWshub, startServer } from './helpers/server.js';

const TOKEN = 'test-publish-token-0123456789abcdef';

function publish(
  port: number,
  options: { room?: string; body?: string | Buffer; token?: string; method?: string; type?: string } = {},
): Promise<Response> {
  const query = options.room === undefined ? '' : `?room=${encodeURIComponent(options.room)}`;
  const headers: Record<string, string> = { 'Content-Type': options.type ?? 'text/plain' };
  if (options.token !== '') headers.Authorization = `Bearer ${options.token ?? TOKEN}`;
  return fetch(`http://127.0.0.1:${port}/publish${query}`, {
    method: options.method ?? 'POST',
    headers,
    body: options.method === 'GET' ? undefined : (options.body ?? 'hello'),
  });
}

describe('POST /publish (broadcast mode, --publish-token)', () => {
  let server: InProcessServer;
  let room: string;
  before(async () => {
    server = await startServer([
      '--stats-interval=0',
      '--mode=broadcast',
      `--publish-token=${TOKEN}`,
      '--max-message-size=1KiB',
    ]);
    room = server.url.replace(/\/ws$/, '/ws/lobby');
  });
  after(() => server.app.stop());

  it('delivers the body to every client of the room, and only that room', async () => {
    const first = await TestClient.open(room);
    const second = await TestClient.open(room);
    const elsewhere = await TestClient.open(server.url);
    const response = await publish(server.app.port, { room: 'lobby', body: 'breaking news' });
    assert.equal(response.status, 200);
    assert.deepEqual(await response.json(), { room: 'lobby', delivered: 2, bytes: 13, binary: false });
    for (const client of [first, second]) {
      const message = await client.next();
      assert.equal(message.data.toString(), 'breaking news');
      assert.equal(message.isBinary, false);
    }
    // The default room gets what is published without ?room, and nothing else.
    const toDefault = await publish(server.app.port, { body: 'to the default room' });
    assert.equal(((await toDefault.json()) as { delivered: number }).delivered, 1);
    assert.equal((await elsewhere.next()).data.toString(), 'to the default room');
    assert.equal(first.received.length + second.received.length, 0);
    await Promise.all([first.close(), second.close(), elsewhere.close()]);
  });

  it('sends application/octet-stream as a binary message', async () => {
    const client = await TestClient.open(room);
    const payload = Buffer.from([0, 1, 2, 255]);
    const response = await publish(server.app.port, {
      room: 'lobby',
      body: payload,
      type: 'application/octet-stream',
    });
    assert.equal(response.status, 200);
    const message = await client.next();
    assert.equal(message.isBinary, true);
    assert.deepEqual(message.data, payload);
    await client.close();
  });

  it('answers 401 for a missing or wrong token, 405, 413, 400, and counts every status', async () => {
    const count = (status: string) =>
      metricValue(server.metricsUrl, 'wshub_publish_requests_total', { status }).then((v) => v ?? 0);
    const before = {
      401: await count('401'),
      405: await count('405'),
      413: await count('413'),
      400: await count('400'),
    };
    const missing = await publish(server.app.port, { token: '' });
    assert.equal(missing.status, 401);
    assert.match(missing.headers.get('www-authenticate') ?? '', /^Bearer /);
    assert.equal((await publish(server.app.port, { token: `${TOKEN}x` })).status, 401);
    assert.equal((await publish(server.app.port, { token: TOKEN.slice(0, -1) })).status, 401);

    const get = await publish(server.app.port, { method: 'GET' });
    assert.equal(get.status, 405);
    assert.equal(get.headers.get('allow'), 'POST');

    const large = await publish(server.app.port, { body: 'x'.repeat(1025) });
    assert.equal(large.status, 413);
    assert.equal((await publish(server.app.port, { body: 'x'.repeat(1024) })).status, 200);

    assert.equal((await publish(server.app.port, { room: '../etc' })).status, 400);
    const invalidUtf8 = await publish(server.app.port, { body: Buffer.from([0xc3, 0x28]) });
    assert.equal(invalidUtf8.status, 400);

    assert.equal(await count('401'), before[401] + 3);
    assert.equal(await count('405'), before[405] + 1);
    assert.equal(await count('413'), before[413] + 1);
    assert.equal(await count('400'), before[400] + 2);
  });

  it('rate-limits with a token bucket: 429 with Retry-After', async () => {
    const limited = await startServer([
      '--stats-interval=0',
      '--mode=broadcast',
      `--publish-token=${TOKEN}`,
      '--publish-rate=2',
    ]);
    try {
      const statuses: number[] = [];
      let retryAfter: string | null = null;
      for (let i = 0; i < 5; i++) {
        const response = await publish(limited.app.port);
        statuses.push(response.status);
        if (response.status === 429) retryAfter = response.headers.get('retry-after');
        await response.text();
      }
      // A burst of 2 passes; the rest within the same second is refused (at most one refilled on a slow machine).
      assert.equal(statuses.slice(0, 2).join(), '200,200');
      assert.ok(statuses.filter((status) => status === 429).length >= 2, statuses.join());
      assert.equal(retryAfter, '1');
      assert.equal(limited.app.stats.publishRequests['429'], statuses.filter((s) => s === 429).length);
    } finally {
      await limited.app.stop();
    }
  });
});

describe('publish API through the backplane', () => {
  const apps: RunningApp[] = [];
  after(async () => {
    for (const app of apps) await app.stop();
  });

  it('a publish on one node reaches the room on another node', async () => {
    const bus = new MemoryBus();
    const flags = ['--host=127.0.0.1', '--port=0', '--no-metrics', '--stats-interval=0', '--mode=broadcast'];
    for (let i = 0; i < 2; i++) {
      const { config } = loadConfig([...flags, `--publish-token=${TOKEN}`], {});
      apps.push(
        await start(config, {
          logger: silentLogger,
          backplane: (counters) => new MemoryBackplane(bus, counters),
        }),
      );
    }
    const [nodeA, nodeB] = apps as [RunningApp, RunningApp];
    const onB = await TestClient.open(`ws://127.0.0.1:${nodeB.port}/ws/news`);
    // The subscription starts in the background: publish until it arrives (bounded).
    let message: string | undefined;
    for (let attempt = 0; attempt < 50 && message === undefined; attempt++) {
      const response = await publish(nodeA.port, { room: 'news', body: `edition ${attempt}` });
      assert.equal(response.status, 200);
      assert.equal(((await response.json()) as { delivered: number }).delivered, 0, 'no local client on A');
      message = await onB
        .next(100)
        .then((m) => m.data.toString())
        .catch(() => undefined);
    }
    assert.match(message ?? '', /^edition \d+$/);
    await onB.close();
  });
});

describe('publish API configuration', () => {
  it('is off without a token: /publish is 404', async () => {
    const server = await startServer(['--stats-interval=0', '--mode=broadcast']);
    try {
      assert.equal((await publish(server.app.port)).status, 404);
    } finally {
      await server.app.stop();
    }
  });

  it('refuses a token in echo mode, a short token, and redacts it in --print-config', async () => {
    const echo = runWshub([`--publish-token=${TOKEN}`]);
    assert.equal((await echo.exited).code, 2);
    assert.match(echo.stderr.lines.join('\n'), /--publish-token.*broadcast.*\[WSHUB_CONFLICTING_SETTINGS\]/);
    const short = runWshub(['--mode=broadcast', '--publish-token=short']);
    assert.equal((await short.exited).code, 2);
    assert.match(short.stderr.lines.join('\n'), /--publish-token.*16 to 512.*\[WSHUB_INVALID_VALUE\]/);
    const printed = runWshub(['--mode=broadcast', `--publish-token=${TOKEN}`, '--print-config']);
    assert.equal((await printed.exited).code, 0);
    const text = printed.stdout.lines.join('\n');
    assert.doesNotMatch(text, new RegExp(TOKEN));
    assert.match(text, /token:/);
  });
});
