import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type CryptoKey, exportJWK, generateKeyPair, SignJWT } from 'jose';
import { hs256, inAnHour, SECRET } from './helpers/auth.js';
import { launchChromium } from './helpers/browser.js';
import { TestClient } from './helpers/clients.js';
import { metricValue, waitForMetric } from './helpers/metrics.js';
import { type SpawnedServer, spawnServer } from './helpers/server.js';
import { sendUpgrade } from './helpers/upgrade.js';
import { waitUntil } from './helpers/wait.js';

/**
 * Issue 15 with --workers (issue 5): every worker verifies tokens; --max-connections-per-user holds
 * for the whole cluster (the primary counts each user's connections, so a limit of 1 is one
 * connection, not one per worker); SIGHUP to the primary reloads the JWKS file in every worker;
 * the console (issue 19) asks for a token and shows the cluster's figures.
 */
describe('--auth=jwt with --workers=2 (spawned process)', () => {
  let dir: string;
  let jwksFile: string;
  let server: SpawnedServer;
  let rotated: Record<string, unknown>;
  const keys: Record<string, CryptoKey> = {};

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'wshub-auth-workers-'));
    const jwk = async (kid: string) => {
      const pair = await generateKeyPair('RS256', { extractable: true });
      keys[kid] = pair.privateKey;
      return { ...(await exportJWK(pair.publicKey)), kid };
    };
    const first = await jwk('rsa-1');
    rotated = await jwk('rsa-2');
    jwksFile = join(dir, 'jwks.json');
    writeFileSync(jwksFile, JSON.stringify({ keys: [first] }));
    writeFileSync(join(dir, 'secret'), `${SECRET}\n`);
    server = await spawnServer([
      '--workers=2',
      '--mode=broadcast',
      '--auth=jwt',
      `--auth-jwt-secret-file=${join(dir, 'secret')}`,
      `--auth-jwks-file=${jwksFile}`,
      // No directory watch: only SIGHUP can reload the keys.
      '--no-tls-watch',
      '--max-connections-per-user=1',
      '--allow-fault-injection',
      '--stats-interval=0',
    ]);
  });
  after(() => {
    server?.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });

  const rs256 = (kid: string, sub: string) =>
    new SignJWT({ sub, rooms: ['*'], exp: inAnHour() })
      .setProtectedHeader({ alg: 'RS256', kid })
      .sign(keys[kid] as CryptoKey);
  const upgrade = async (token?: string) => {
    const response = await sendUpgrade(server.port, {
      path: '/ws',
      headers: token === undefined ? [] : [`Authorization: Bearer ${token}`],
    });
    response.socket.destroy();
    return response;
  };
  /** Opens a connection with ?hello; returns it with the id of the worker that took it. */
  const open = async (token: string) => {
    const client = await TestClient.open(`${server.url}?hello&access_token=${token}`);
    const hello = JSON.parse((await client.next()).data.toString()) as { instance: string };
    return { client, instance: hello.instance };
  };
  const failures = (reason: string) =>
    metricValue(server.metricsUrl, 'wshub_auth_failures_total', { reason });

  it('both workers refuse a missing or bad token (401) and accept a good one, counted on the one metrics port', async () => {
    for (let i = 0; i < 2; i++) {
      const missing = await upgrade();
      assert.equal(missing.statusLine, 'HTTP/1.1 401 Unauthorized');
      assert.equal(missing.headers['www-authenticate'], 'Bearer realm="wshub"');
      const forged = await upgrade(
        await hs256({ sub: 'mallory', rooms: ['*'] }, new TextEncoder().encode('x'.repeat(48))),
      );
      assert.equal(forged.status, 401);
      assert.match(forged.headers['www-authenticate'] ?? '', /error="invalid_token"/);
    }
    assert.equal(
      await waitForMetric(server.metricsUrl, 'wshub_auth_failures_total', 2, { reason: 'missing' }),
      2,
    );
    assert.equal(await failures('signature'), 2);
    // Accepted on both workers: HS256 (the secret file) and RS256 (the JWKS file).
    const opened = [
      await open(await hs256({ sub: 'h1', rooms: ['*'] })),
      await open(await hs256({ sub: 'h2', rooms: ['*'] })),
      await open(await rs256('rsa-1', 'r1')),
      await open(await rs256('rsa-1', 'r2')),
    ];
    assert.equal(new Set(opened.map((entry) => entry.instance)).size, 2, 'both workers took connections');
    for (const { client } of opened) await client.close();
  });

  it('--max-connections-per-user=1 is one connection for the whole cluster, not one per worker', async () => {
    const token = await hs256({ sub: 'alice', rooms: ['*'] });
    const first = await open(token);
    // Round robin hands these to both workers; each refuses: the primary counts alice's connection.
    const before = (await failures('user_limit')) ?? 0;
    for (let i = 0; i < 4; i++) {
      const refused = await upgrade(token);
      assert.equal(refused.statusLine, 'HTTP/1.1 429 Too Many Requests');
      assert.equal(refused.headers['retry-after'], '5');
    }
    assert.equal(await failures('user_limit'), before + 4);
    await server.stdout.waitFor(
      /WebSocket upgrade refused: 127\.0\.0\.1:\d+ 429 max_connections_per_user\/user_limit \(more than 1 connections for this user\)/,
    );
    // Other users are not limited by alice.
    const bob = await open(await hs256({ sub: 'bob', rooms: ['*'] }));
    assert.notEqual(bob.instance, undefined);
    // Once alice's connection has closed (the cluster's count says so), her next one is accepted,
    // and then she is at the limit again.
    await first.client.close();
    await waitForMetric(server.metricsUrl, 'websocket_connections', 1);
    const again = await open(token);
    assert.equal((await upgrade(token)).status, 429);
    await again.client.close();
    await bob.client.close();
    await waitForMetric(server.metricsUrl, 'websocket_connections', 0);
  });

  it('SIGHUP to the primary reloads the JWKS file in every worker: the new key accepted, the removed one refused', async () => {
    const oldTokens = await Promise.all([1, 2, 3, 4].map((i) => rs256('rsa-1', `old-${i}`)));
    writeFileSync(jwksFile, JSON.stringify({ keys: [rotated] }));
    const reloadsBefore = server.stdout.count(/Auth keys reloaded \(SIGHUP\): JWKS kid rsa-2$/);
    server.kill('SIGHUP');
    await waitUntil(
      () => server.stdout.count(/Auth keys reloaded \(SIGHUP\): JWKS kid rsa-2$/) === reloadsBefore + 2,
      'both workers reloaded',
    );
    assert.equal(
      await waitForMetric(server.metricsUrl, 'wshub_auth_key_reloads_total', 2, { result: 'success' }),
      2,
    );
    for (const token of oldTokens) {
      const refused = await upgrade(token);
      assert.equal(refused.status, 401);
      assert.match(refused.headers['www-authenticate'] ?? '', /error="invalid_token"/);
    }
    const opened = await Promise.all([1, 2, 3, 4].map(async (i) => open(await rs256('rsa-2', `new-${i}`))));
    assert.equal(new Set(opened.map((entry) => entry.instance)).size, 2, 'both workers use the new key');

    // The console (issue 19) with auth and workers: /stats needs a token; with one, the page shows
    // the cluster's connections (spread over both workers).
    const stats = `http://127.0.0.1:${server.port}/stats`;
    assert.equal((await fetch(stats)).status, 401);
    const consoleToken = await hs256({ sub: 'ops', rooms: [] });
    await waitUntil(async () => {
      const answer = await fetch(stats, { headers: { Authorization: `Bearer ${consoleToken}` } });
      const figures = (await answer.json()) as { connections: number; workers: number };
      return answer.status === 200 && figures.connections === 4 && figures.workers === 2;
    }, "GET /stats with a token: the cluster's 4 connections");
    const browser = await launchChromium();
    try {
      const page = browser.page;
      await page.goto(`http://127.0.0.1:${server.port}/`);
      await page
        .locator('#live-state[data-state=error]')
        .filter({ hasText: 'stats unavailable (HTTP 401 — enter an access token above)' })
        .waitFor();
      await page.fill('#token', consoleToken);
      await page.locator('#now-connections[data-value="4"]').waitFor();
      assert.notEqual(await page.getAttribute('#live-state', 'data-state'), 'error');
      assert.deepEqual(browser.errors, []);
    } finally {
      await browser.close();
    }
    for (const { client } of opened) await client.close();
    const logged = server.stdout.lines.join('\n');
    for (const token of [...oldTokens, consoleToken]) {
      assert.ok(!logged.includes(token.split('.')[2] as string), 'no token in the log');
    }
  });
});
