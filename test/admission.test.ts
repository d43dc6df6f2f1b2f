import assert from 'node:assert/strict';
import type { Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { loadConfig } from '../src/config/load.js';
import { ErrorCode, UsageError } from '../src/errors.js';
import { TestClient } from './helpers/clients.js';
import { metricValue, waitForMetric } from './helpers/metrics.js';
import { type InProcessServer, runWshub, startServer } from './helpers/server.js';
import { sendUpgrade } from './helpers/upgrade.js';

const rejected = (server: InProcessServer, reason: string) =>
  metricValue(server.metricsUrl, 'websocket_upgrades_rejected_total', { reason });

/** Opens a ws client and asserts the handshake succeeded. */
const open = (server: InProcessServer, localAddress = '127.0.0.1', headers: Record<string, string> = {}) =>
  TestClient.open(server.url, { localAddress, headers });

describe('global connection limit (--max-connections)', () => {
  let server: InProcessServer;
  before(async () => {
    server = await startServer(['--stats-interval=0', '--max-connections=2']);
  });
  after(() => server.app.stop());

  it('refuses the connection over the limit with 503 and Retry-After, counts and logs it', async () => {
    const first = await open(server);
    const second = await open(server, '127.0.0.2');
    const refused = await sendUpgrade(server.app.port);
    refused.socket.destroy();
    assert.equal(refused.statusLine, 'HTTP/1.1 503 Service Unavailable');
    assert.equal(refused.headers['retry-after'], '5');
    assert.equal(refused.headers.connection, 'close');
    assert.equal(await rejected(server, 'max_connections'), 1);
    await server.log.waitFor(/^WebSocket upgrade refused: 127\.0\.0\.1:\d+ 503 max_connections /);

    // A slot freed by a close is available again.
    await first.close();
    await waitForMetric(server.metricsUrl, 'websocket_connections', 1);
    const third = await open(server);
    await third.send('still serving');
    assert.equal((await third.next()).data.toString(), 'still serving');
    await Promise.all([second.close(), third.close()]);
  });

  it('logs a flood of refusals rate-limited while counting every one', async () => {
    const held = [await open(server), await open(server)];
    const before = (await rejected(server, 'max_connections')) ?? 0;
    const logged = server.log.count(/upgrade refused: .* max_connections/);
    for (let i = 0; i < 40; i++) {
      const refused = await sendUpgrade(server.app.port);
      refused.socket.destroy();
      assert.equal(refused.status, 503);
    }
    assert.equal(await rejected(server, 'max_connections'), before + 40);
    assert.ok(
      server.log.count(/upgrade refused: .* max_connections/) - logged <= 10,
      'at most 10 lines per 10 s',
    );
    await Promise.all(held.map((client) => client.close()));
  });
});

describe('per-address connection limit (--max-connections-per-ip)', () => {
  let server: InProcessServer;
  before(async () => {
    server = await startServer(['--stats-interval=0', '--max-connections-per-ip=2']);
  });
  after(() => server.app.stop());

  it('refuses a third connection from one address but admits another address', async () => {
    const clients = [await open(server), await open(server)];
    const refused = await sendUpgrade(server.app.port);
    refused.socket.destroy();
    assert.equal(refused.statusLine, 'HTTP/1.1 503 Service Unavailable');
    assert.equal(refused.headers['retry-after'], '5');
    assert.equal(await rejected(server, 'max_connections_per_ip'), 1);
    assert.equal(await rejected(server, 'max_connections'), 0);
    clients.push(await open(server, '127.0.0.2'));
    assert.equal(server.app.connectionCount(), 3);
    await Promise.all(clients.map((client) => client.close()));
  });

  it('ignores X-Forwarded-For unless proxies are trusted', async () => {
    const clients = [
      await open(server, '127.0.0.3', { 'X-Forwarded-For': '203.0.113.1' }),
      await open(server, '127.0.0.3', { 'X-Forwarded-For': '203.0.113.2' }),
    ];
    const refused = await sendUpgrade(server.app.port, {
      localAddress: '127.0.0.3',
      headers: ['X-Forwarded-For: 203.0.113.3'],
    });
    refused.socket.destroy();
    assert.equal(refused.status, 503);
    await Promise.all(clients.map((client) => client.close()));
  });

  it('keeps exact counts however connections end: the limit admits exactly 2 again each time', async () => {
    const endings: Array<[string, (client: TestClient) => Promise<unknown>]> = [
      ['client close handshake', (client) => client.close()],
      ['client drops TCP', async (client) => client.ws.terminate()],
      [
        'server closes on protocol error',
        async (client) =>
          (client.ws as unknown as { _socket: Socket })._socket.write(Buffer.from([0x8f, 0x80, 0, 0, 0, 0])),
      ],
      ['server closes on oversized message', async (client) => client.ws.send(Buffer.alloc(1024 * 1024 + 1))],
    ];
    for (const [how, end] of endings) {
      const pair = [await open(server, '127.0.0.4'), await open(server, '127.0.0.4')];
      await Promise.all(pair.map(end));
      await Promise.all(pair.map((client) => client.closed));
      await waitForMetric(server.metricsUrl, 'websocket_connections', 0);
      const again = [await open(server, '127.0.0.4'), await open(server, '127.0.0.4')];
      const third = await sendUpgrade(server.app.port, { localAddress: '127.0.0.4' });
      third.socket.destroy();
      assert.equal(third.status, 503, `after "${how}" the address must be at exactly 2 again`);
      await Promise.all(again.map((client) => client.close()));
      await waitForMetric(server.metricsUrl, 'websocket_connections', 0);
    }
  });
});

describe('per-address limit behind a trusted proxy (--trust-proxy-hops=1)', () => {
  let server: InProcessServer;
  before(async () => {
    server = await startServer(['--stats-interval=0', '--max-connections-per-ip=1', '--trust-proxy-hops=1']);
  });
  after(() => server.app.stop());

  it('counts by the address the proxy appended to X-Forwarded-For', async () => {
    // Both arrive from the same proxy address; the client wrote the first entry itself.
    const first = await open(server, '127.0.0.1', { 'X-Forwarded-For': '10.9.9.9, 203.0.113.7' });
    const sameClient = await sendUpgrade(server.app.port, {
      headers: ['X-Forwarded-For: 10.1.1.1, 203.0.113.7'],
    });
    sameClient.socket.destroy();
    assert.equal(sameClient.status, 503);
    assert.equal(await rejected(server, 'max_connections_per_ip'), 1);
    const otherClient = await open(server, '127.0.0.1', { 'X-Forwarded-For': '203.0.113.8' });
    await Promise.all([first.close(), otherClient.close()]);
  });

  it('falls back to the TCP peer when the header is missing or malformed', async () => {
    const first = await open(server, '127.0.0.5');
    const spoofed = await sendUpgrade(server.app.port, {
      localAddress: '127.0.0.5',
      headers: ['X-Forwarded-For: not-an-address'],
    });
    spoofed.socket.destroy();
    assert.equal(spoofed.status, 503);
    await first.close();
  });
});

describe('origin allowlist (--allowed-origins)', () => {
  let server: InProcessServer;
  before(async () => {
    server = await startServer([
      '--stats-interval=0',
      '--allowed-origins=https://app.example.com,https://*.example.org,http://localhost:8080',
    ]);
  });
  after(() => server.app.stop());

  const tryOrigin = async (origin: string | undefined): Promise<number> => {
    const response = await sendUpgrade(server.app.port, { headers: origin ? [`Origin: ${origin}`] : [] });
    response.socket.destroy();
    return response.status;
  };

  it('admits listed origins, subdomains of a wildcard, and clients without Origin', async () => {
    assert.equal(await tryOrigin('https://app.example.com'), 101);
    assert.equal(await tryOrigin('HTTPS://App.Example.com:443'), 101);
    assert.equal(await tryOrigin('https://a.example.org'), 101);
    assert.equal(await tryOrigin('https://a.b.example.org'), 101);
    assert.equal(await tryOrigin('http://localhost:8080'), 101);
    assert.equal(await tryOrigin(undefined), 101);
  });

  it('refuses other origins with 403, counted and logged', async () => {
    const before = (await rejected(server, 'origin_not_allowed')) ?? 0;
    const refused = await sendUpgrade(server.app.port, { headers: ['Origin: https://evil.example.com'] });
    refused.socket.destroy();
    assert.equal(refused.statusLine, 'HTTP/1.1 403 Forbidden');
    assert.equal(refused.headers['retry-after'], undefined);
    for (const origin of [
      'http://app.example.com',
      'https://app.example.com:8443',
      'https://example.org',
      'https://evil.com/.example.org',
      'http://localhost:8081',
      'null',
    ]) {
      assert.equal(await tryOrigin(origin), 403, origin);
    }
    assert.equal(await rejected(server, 'origin_not_allowed'), before + 7);
    await server.log.waitFor(/^WebSocket upgrade refused: 127\.0\.0\.1:\d+ 403 origin_not_allowed /);
    assert.equal(server.app.connectionCount(), 0);
  });
});

describe('admission settings', () => {
  it('rejects an origin entry that is not scheme://host[:port]', () => {
    for (const bad of ['example.com', 'https://example.com/', 'https://*example.com', '*']) {
      assert.throws(
        () => loadConfig([`--allowed-origins=${bad}`], {}),
        (error: unknown) => error instanceof UsageError && error.code === ErrorCode.INVALID_VALUE,
        bad,
      );
    }
  });

  it('reads the allowlist from a YAML list, a comma-separated flag or the environment', () => {
    const yaml = 'server:\n  allowedOrigins:\n    - https://a.example.com\n    - https://*.example.org\n';
    const fromFile = loadConfig(['--config-file=hub.yaml'], {}, { readFile: () => yaml }).config;
    assert.deepEqual(fromFile.allowedOrigins, ['https://a.example.com', 'https://*.example.org']);
    const fromFlag = loadConfig(
      ['--allowed-origins=https://a.example.com, http://localhost:8080'],
      {},
    ).config;
    assert.deepEqual(fromFlag.allowedOrigins, ['https://a.example.com', 'http://localhost:8080']);
    const fromEnv = loadConfig([], { WSHUB_ALLOWED_ORIGINS: 'https://a.example.com' }).config;
    assert.deepEqual(fromEnv.allowedOrigins, ['https://a.example.com']);
    const defaults = loadConfig([], {}).config;
    assert.deepEqual(
      [
        defaults.maxConnections,
        defaults.maxConnectionsPerIp,
        defaults.allowedOrigins,
        defaults.trustProxyHops,
      ],
      [0, 0, [], 0],
    );
    assert.deepEqual(
      [defaults.pingInterval, defaults.pingTimeout, defaults.idleTimeout, defaults.maxConnectionLifetime],
      [25_000, 20_000, 0, 0],
    );
    assert.deepEqual([defaults.maxHeaderSize, defaults.handshakeTimeout], [16 * 1024, 10_000]);
  });

  it('a bad limit exits 2 with one line naming the flag', async () => {
    const run = runWshub(['--max-connections-per-ip=-1']);
    const { code } = await run.exited;
    assert.equal(code, 2);
    assert.equal(run.stderr.lines.length, 1);
    assert.match(run.stderr.lines[0] as string, /--max-connections-per-ip.*\[WSHUB_INVALID_VALUE\]$/);
  });
});
