import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  type CryptoKey,
  exportJWK,
  exportSPKI,
  generateKeyPair,
  type JWK,
  type JWTPayload,
  SignJWT,
  UnsecuredJWT,
} from 'jose';
import { hs256, inAnHour, startWithSecret } from './helpers/auth.js';
import { TestClient } from './helpers/clients.js';
import { metricValue, waitForMetric } from './helpers/metrics.js';
import { type InProcessServer, startServer } from './helpers/server.js';
import { sendUpgrade, type UpgradeResponse } from './helpers/upgrade.js';
import { waitUntil } from './helpers/wait.js';

async function signed(claims: JWTPayload, key: CryptoKey, alg: string, kid: string): Promise<string> {
  return new SignJWT({ exp: inAnHour(), ...claims }).setProtectedHeader({ alg, kid }).sign(key);
}

const failures = (server: InProcessServer, reason: string) =>
  metricValue(server.metricsUrl, 'wshub_auth_failures_total', { reason });

/** An upgrade by hand, so the test sees the exact status line and headers. */
function upgrade(server: InProcessServer, path: string, token?: string, extra: string[] = []) {
  const headers = token === undefined ? extra : [`Authorization: Bearer ${token}`, ...extra];
  return sendUpgrade(server.app.port, { path, headers }).then((response) => {
    response.socket.destroy();
    return response;
  });
}

const roomUrl = (server: InProcessServer, room: string, token?: string) =>
  `${server.url}${room === '' ? '' : `/${room}`}${token === undefined ? '' : `?access_token=${token}`}`;

function assertInvalidToken(response: UpgradeResponse): void {
  assert.equal(response.statusLine, 'HTTP/1.1 401 Unauthorized');
  assert.match(response.headers['www-authenticate'] ?? '', /^Bearer realm="wshub", error="invalid_token"/);
}

/** Every token a test minted: none may appear in any log line. */
const minted: string[] = [];
const remember = async (token: Promise<string>) => {
  const value = await token;
  minted.push(value);
  return value;
};

function assertNoTokenLogged(server: InProcessServer): void {
  const text = server.log.lines.join('\n');
  for (const token of minted) {
    assert.ok(!text.includes(token), 'a token appears in the log');
    // Not even its signature part.
    assert.ok(
      !text.includes(token.split('.')[2] as string) || token.endsWith('.'),
      'a signature appears in the log',
    );
  }
}

describe('--auth=jwt with an HMAC secret (HS256)', () => {
  let running: Awaited<ReturnType<typeof startWithSecret>>;
  let server: InProcessServer;
  before(async () => {
    running = await startWithSecret([
      '--mode=broadcast',
      '--max-connections-per-user=2',
      '--allow-fault-injection',
      '--ping-interval=0',
    ]);
    server = running.server;
  });
  after(async () => {
    await running.stop();
    assertNoTokenLogged(server);
  });

  it('refuses an upgrade without a token: 401 with the bare Bearer challenge (RFC 6750 §3.1), counted and logged', async () => {
    const response = await upgrade(server, '/ws');
    assert.equal(response.statusLine, 'HTTP/1.1 401 Unauthorized');
    assert.equal(response.headers['www-authenticate'], 'Bearer realm="wshub"');
    assert.equal(await failures(server, 'missing'), 1);
    assert.equal(
      await metricValue(server.metricsUrl, 'websocket_upgrades_rejected_total', { reason: 'unauthorized' }),
      1,
    );
    await server.log.waitFor(/WebSocket upgrade refused: 127\.0\.0\.1:\d+ 401 unauthorized\/missing/);
  });

  it('refuses a malformed Authorization or two tokens with 401 invalid_request', async () => {
    const basic = await upgrade(server, '/ws', undefined, ['Authorization: Basic dXNlcjpwYXNz']);
    assert.equal(basic.status, 401);
    assert.match(basic.headers['www-authenticate'] ?? '', /^Bearer realm="wshub", error="invalid_request"/);
    const token = await remember(hs256({ sub: 'alice', rooms: ['*'] }));
    const twice = await upgrade(server, `/ws?access_token=${token}`, token);
    assert.equal(twice.status, 401);
    const notJwt = await upgrade(server, '/ws', 'not-a-jwt');
    assert.equal(notJwt.status, 401);
    assert.equal(await failures(server, 'malformed'), 3);
  });

  it('refuses a bad signature, an expired token, alg none and a payload without sub with 401 invalid_token', async () => {
    const forged = await remember(
      hs256({ sub: 'mallory', rooms: ['*'] }, new TextEncoder().encode('x'.repeat(40))),
    );
    assertInvalidToken(await upgrade(server, '/ws', forged));
    assert.equal(await failures(server, 'signature'), 1);

    const expired = await remember(
      hs256({ sub: 'alice', rooms: ['*'], exp: Math.floor(Date.now() / 1000) - 10 }),
    );
    const response = await upgrade(server, '/ws', expired);
    assertInvalidToken(response);
    assert.match(response.headers['www-authenticate'] ?? '', /error_description="the token has expired"/);
    assert.equal(await failures(server, 'expired'), 1);

    const none = await remember(Promise.resolve(new UnsecuredJWT({ sub: 'mallory', rooms: ['*'] }).encode()));
    assertInvalidToken(await upgrade(server, '/ws', none));
    assertInvalidToken(await upgrade(server, `/ws?access_token=${none}`));
    assert.equal(await failures(server, 'algorithm'), 2);

    const anonymous = await remember(hs256({ rooms: ['*'] }));
    assertInvalidToken(await upgrade(server, '/ws', anonymous));
    assert.equal(await failures(server, 'claims'), 1);
  });

  it('admits a token from the header or ?access_token to the rooms its "rooms" cover, 403 insufficient_scope elsewhere', async () => {
    const token = await remember(hs256({ sub: 'bob', rooms: ['chat.*'], publish: ['chat.*'] }));
    const viaQuery = await TestClient.open(roomUrl(server, 'chat.en', token));
    const viaHeader = await TestClient.open(roomUrl(server, 'chat.en'), {
      headers: { Authorization: `Bearer ${token}` },
    });
    await viaQuery.send('hi');
    assert.equal((await viaHeader.next()).data.toString(), 'hi');

    const other = await upgrade(server, '/ws/news', token);
    assert.equal(other.statusLine, 'HTTP/1.1 403 Forbidden');
    assert.match(
      other.headers['www-authenticate'] ?? '',
      /^Bearer realm="wshub", error="insufficient_scope"/,
    );
    // chat.* does not name the default room.
    assert.equal((await upgrade(server, '/ws', token)).status, 403);
    assert.equal(await failures(server, 'room'), 2);
    assert.equal(
      await metricValue(server.metricsUrl, 'websocket_upgrades_rejected_total', { reason: 'forbidden' }),
      2,
    );
    await Promise.all([viaQuery.close(), viaHeader.close()]);
  });

  it('names the default room /ws with the empty pattern "" or with *', async () => {
    const empty = await remember(hs256({ sub: 'carol', rooms: [''] }));
    const every = await remember(hs256({ sub: 'dave', rooms: '*' }));
    const a = await TestClient.open(roomUrl(server, '', empty));
    const b = await TestClient.open(roomUrl(server, '', every));
    assert.equal((await upgrade(server, '/ws/chat.en', empty)).status, 403);
    await Promise.all([a.close(), b.close()]);
  });

  it('gives the connection over --max-connections-per-user 429 with Retry-After; a closed one frees the slot', async () => {
    const token = await remember(hs256({ sub: 'erin', rooms: ['*'] }));
    const first = await TestClient.open(roomUrl(server, 'a', token));
    const second = await TestClient.open(roomUrl(server, 'b', token));
    const third = await upgrade(server, '/ws/c', token);
    assert.equal(third.statusLine, 'HTTP/1.1 429 Too Many Requests');
    assert.equal(third.headers['retry-after'], '5');
    assert.equal(await failures(server, 'user_limit'), 1);
    // Another user is not affected.
    const other = await TestClient.open(
      roomUrl(server, 'c', await remember(hs256({ sub: 'frank', rooms: ['*'] }))),
    );
    await first.close();
    await waitForMetric(server.metricsUrl, 'websocket_connections', 2);
    const again = await TestClient.open(roomUrl(server, 'd', token));
    await Promise.all([second.close(), other.close(), again.close()]);
  });

  it('closes a client that sends to a room its "publish" does not cover with 1008 and does not deliver the message', async () => {
    const listener = await TestClient.open(
      roomUrl(server, 'news', await remember(hs256({ sub: 'g', rooms: ['news'] }))),
    );
    const readOnly = await TestClient.open(
      roomUrl(server, 'news', await remember(hs256({ sub: 'h', rooms: ['*'], publish: ['chat.*'] }))),
    );
    const writer = await TestClient.open(
      roomUrl(server, 'news', await remember(hs256({ sub: 'i', rooms: ['*'], publish: ['news'] }))),
    );
    await readOnly.send('not allowed');
    const closed = await readOnly.closed;
    assert.equal(closed.code, 1008);
    assert.equal(closed.reason, 'not allowed to publish to this room');
    await writer.send('allowed');
    assert.equal((await listener.next()).data.toString(), 'allowed', 'the refused message never arrives');
    assert.equal(await failures(server, 'publish'), 1);
    assert.equal(
      await metricValue(server.metricsUrl, 'websocket_server_disconnects_total', {
        reason: 'publish_denied',
      }),
      1,
    );
    await server.log.waitFor(
      /Closing 127\.0\.0\.1:\d+ with 1008: the token's "publish" does not cover room news/,
    );
    // No "publish" claim at all: receive-only too.
    await listener.send('no publish claim');
    assert.equal((await listener.closed).code, 1008);
    assert.equal(await failures(server, 'publish'), 2);
    // Not delivered: the writer (which gets its own messages) sees its two, nothing in between.
    await writer.send('after');
    assert.equal((await writer.next()).data.toString(), 'allowed');
    assert.equal((await writer.next()).data.toString(), 'after');
    await writer.close();
  });

  it("guards the console's live figures (GET /stats) with a token; the page itself stays open", async () => {
    const base = `http://127.0.0.1:${server.app.port}`;
    assert.equal((await fetch(`${base}/`)).status, 200);
    const missingBefore = await failures(server, 'missing');
    const refused = await fetch(`${base}/stats`);
    assert.equal(refused.status, 401);
    assert.equal(refused.headers.get('www-authenticate'), 'Bearer realm="wshub"');
    // Counted and logged like a refused upgrade (issue 15: every refusal).
    assert.equal(await failures(server, 'missing'), (missingBefore ?? 0) + 1);
    await server.log.waitFor(/Request refused: GET \/stats from 127\.0\.0\.1:\d+ 401 missing/);
    const forged = await fetch(`${base}/stats`, {
      headers: {
        Authorization: `Bearer ${await remember(hs256({ sub: 'ops' }, new TextEncoder().encode('x'.repeat(40))))}`,
      },
    });
    assert.equal(forged.status, 401);
    await server.log.waitFor(
      /Request refused: GET \/stats from 127\.0\.0\.1:\d+ 401 signature \(signature verification failed\)/,
    );
    const token = await remember(hs256({ sub: 'ops', rooms: [] }));
    const allowed = await fetch(`${base}/stats`, { headers: { Authorization: `Bearer ${token}` } });
    assert.equal(allowed.status, 200);
    assert.equal(((await allowed.json()) as { mode: string }).mode, 'broadcast');
  });

  it('never writes the token into a log line, ?hello included', async () => {
    const token = await remember(hs256({ sub: 'judy', rooms: ['*'] }));
    const client = await TestClient.open(`${server.url}?hello&access_token=${token}`);
    const hello = JSON.parse((await client.next()).data.toString()) as Record<string, unknown>;
    assert.equal(hello.type, 'hello');
    assert.ok(!JSON.stringify(hello).includes(token));
    await client.close();
    await server.log.waitFor(/Fault injection for/);
    assertNoTokenLogged(server);
  });
});

describe('a token expiring on a live connection', () => {
  let running: Awaited<ReturnType<typeof startWithSecret>>;
  let server: InProcessServer;
  before(async () => {
    running = await startWithSecret(['--ping-interval=0']);
    server = running.server;
  });
  after(async () => {
    await running.stop();
  });

  it('is closed with 1008 within about a second of its exp (one sweep, no timer per connection)', async () => {
    const exp = Math.floor(Date.now() / 1000) + 2;
    const client = await TestClient.open(
      roomUrl(server, '', await hs256({ sub: 'kim', rooms: ['*'], publish: ['*'], exp })),
    );
    await client.send('still valid');
    assert.equal((await client.next()).data.toString(), 'still valid');
    const closed = await client.closed;
    const lateMs = Date.now() - exp * 1000;
    assert.equal(closed.code, 1008);
    assert.equal(closed.reason, 'token expired');
    assert.ok(lateMs >= 0 && lateMs < 2500, `closed ${lateMs} ms after exp`);
    assert.equal(
      await metricValue(server.metricsUrl, 'websocket_server_disconnects_total', { reason: 'token_expired' }),
      1,
    );
  });
});

interface KeyPairs {
  rsa: { privateKey: CryptoKey; publicJwk: JWK; spki: string };
  ec: { privateKey: CryptoKey; publicJwk: JWK };
  rotated: { privateKey: CryptoKey; publicJwk: JWK };
}

async function keyPairs(): Promise<KeyPairs> {
  const rsa = await generateKeyPair('RS256', { extractable: true });
  const ec = await generateKeyPair('ES256', { extractable: true });
  const rotated = await generateKeyPair('RS256', { extractable: true });
  return {
    rsa: {
      privateKey: rsa.privateKey,
      publicJwk: { ...(await exportJWK(rsa.publicKey)), kid: 'rsa-1', use: 'sig' },
      spki: await exportSPKI(rsa.publicKey),
    },
    ec: { privateKey: ec.privateKey, publicJwk: { ...(await exportJWK(ec.publicKey)), kid: 'ec-1' } },
    rotated: {
      privateKey: rotated.privateKey,
      publicJwk: { ...(await exportJWK(rotated.publicKey)), kid: 'rsa-2' },
    },
  };
}

describe('--auth-jwks-file (RS256, ES256, rotation)', () => {
  let dir: string;
  let jwksFile: string;
  let keys: KeyPairs;
  let server: InProcessServer;
  before(async () => {
    keys = await keyPairs();
    dir = mkdtempSync(join(tmpdir(), 'wshub-auth-'));
    jwksFile = join(dir, 'jwks.json');
    writeFileSync(jwksFile, JSON.stringify({ keys: [keys.rsa.publicJwk, keys.ec.publicJwk] }));
    server = await startServer([
      '--stats-interval=0',
      '--auth=jwt',
      `--auth-jwks-file=${jwksFile}`,
      '--auth-jwt-issuer=https://idp.test',
      '--auth-jwt-audience=wshub',
    ]);
  });
  after(async () => {
    await server.app.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const claims = { sub: 'lee', rooms: ['*'], publish: ['*'], iss: 'https://idp.test', aud: 'wshub' };

  it('accepts RS256 and ES256 tokens by kid', async () => {
    for (const token of [
      await signed(claims, keys.rsa.privateKey, 'RS256', 'rsa-1'),
      await signed(claims, keys.ec.privateKey, 'ES256', 'ec-1'),
    ]) {
      const client = await TestClient.open(roomUrl(server, '', token));
      await client.send('ok');
      assert.equal((await client.next()).data.toString(), 'ok');
      await client.close();
    }
  });

  it('refuses the wrong issuer or audience, an unknown kid, and an HS256 token signed with the RSA public key', async () => {
    assertInvalidToken(
      await upgrade(
        server,
        '/ws',
        await signed({ ...claims, iss: 'https://evil.test' }, keys.rsa.privateKey, 'RS256', 'rsa-1'),
      ),
    );
    assert.equal(await failures(server, 'issuer'), 1);
    assertInvalidToken(
      await upgrade(
        server,
        '/ws',
        await signed({ ...claims, aud: 'other' }, keys.rsa.privateKey, 'RS256', 'rsa-1'),
      ),
    );
    assert.equal(await failures(server, 'audience'), 1);
    assertInvalidToken(
      await upgrade(server, '/ws', await signed(claims, keys.rotated.privateKey, 'RS256', 'rsa-2')),
    );
    assert.equal(await failures(server, 'unknown_key'), 1);
    // The classic confusion attack: the public key (known to everyone) used as an HMAC secret.
    const confused = await new SignJWT({ ...claims, exp: inAnHour() })
      .setProtectedHeader({ alg: 'HS256', kid: 'rsa-1' })
      .sign(new TextEncoder().encode(keys.rsa.spki));
    assertInvalidToken(await upgrade(server, '/ws', confused));
    assertInvalidToken(await upgrade(server, '/ws', new UnsecuredJWT(claims).encode()));
    assert.equal(await failures(server, 'algorithm'), 2);
  });

  it('reloads a replaced file: the new key is accepted, the removed one refused; a broken file keeps the keys', async () => {
    const oldToken = await signed(claims, keys.rsa.privateKey, 'RS256', 'rsa-1');
    const newToken = await signed(claims, keys.rotated.privateKey, 'RS256', 'rsa-2');
    writeFileSync(jwksFile, JSON.stringify({ keys: [keys.rotated.publicJwk] }));
    // The directory watch picks it up (debounced); SIGHUP does the same at once.
    await waitForMetric(server.metricsUrl, 'wshub_auth_key_reloads_total', 1, { result: 'success' }, 10_000);
    (await TestClient.open(roomUrl(server, '', newToken))).ws.terminate();
    assertInvalidToken(await upgrade(server, '/ws', oldToken));

    writeFileSync(jwksFile, '{"keys": [');
    server.app.reload();
    assert.equal(
      await metricValue(server.metricsUrl, 'wshub_auth_key_reloads_total', { result: 'failure' }),
      1,
    );
    await server.log.waitFor(
      /Auth key reload \(SIGHUP\) failed, keeping the current keys: --auth-jwks-file=.* is not JSON/,
    );
    (await TestClient.open(roomUrl(server, '', newToken))).ws.terminate();
  });
});

describe('--auth-jwks-url (an identity provider served by the test)', () => {
  const COOLDOWN_MS = 1000;
  let keys: KeyPairs;
  let provider: Server;
  let providerUrl: string;
  let served: { status: number; keys: JWK[] };
  let fetches = 0;
  let server: InProcessServer;
  before(async () => {
    keys = await keyPairs();
    served = { status: 200, keys: [keys.rsa.publicJwk, keys.ec.publicJwk] };
    provider = createServer((_request, response) => {
      fetches++;
      response.writeHead(served.status, { 'Content-Type': 'application/json' });
      response.end(JSON.stringify({ keys: served.keys }));
    });
    await new Promise<void>((resolve) => provider.listen(0, '127.0.0.1', resolve));
    providerUrl = `http://127.0.0.1:${(provider.address() as AddressInfo).port}/.well-known/jwks.json`;
    server = await startServer(['--stats-interval=0', '--auth=jwt', `--auth-jwks-url=${providerUrl}`], {
      jwksUrlTimings: { maxAgeMs: 60_000, cooldownMs: COOLDOWN_MS, timeoutMs: 1000 },
    });
    await waitForMetric(server.metricsUrl, 'wshub_auth_jwks_fetches_total', 1, { result: 'success' });
  });
  after(async () => {
    await server.app.stop();
    provider.close();
  });

  const claims = { sub: 'max', rooms: ['*'] };

  it('accepts RS256 and ES256 tokens with keys from the URL', async () => {
    (
      await TestClient.open(roomUrl(server, '', await signed(claims, keys.rsa.privateKey, 'RS256', 'rsa-1')))
    ).ws.terminate();
    (
      await TestClient.open(roomUrl(server, '', await signed(claims, keys.ec.privateKey, 'ES256', 'ec-1')))
    ).ws.terminate();
  });

  it('refetches on an unknown kid (a rotation), at a bounded rate for forged kids', async () => {
    await new Promise((resolve) => setTimeout(resolve, COOLDOWN_MS + 50));
    served.keys = [keys.rotated.publicJwk];
    const rotated = await signed(claims, keys.rotated.privateKey, 'RS256', 'rsa-2');
    (await TestClient.open(roomUrl(server, '', rotated))).ws.terminate();
    const before = fetches;
    const forged = await Promise.all(
      Array.from({ length: 20 }, (_, i) => signed(claims, keys.rotated.privateKey, 'RS256', `forged-${i}`)),
    );
    const startedAt = performance.now();
    const answers = await Promise.all(forged.map((token) => upgrade(server, '/ws', token)));
    const elapsed = performance.now() - startedAt;
    assert.ok(answers.every((answer) => answer.status === 401));
    // At most one fetch per cooldown, however many forged kids arrive (the machine may be slow).
    const allowed = 1 + Math.ceil(elapsed / COOLDOWN_MS);
    assert.ok(fetches - before <= allowed, `${fetches - before} fetches for 20 forged kids in ${elapsed} ms`);
    assert.ok(allowed < 20, `the burst took ${elapsed} ms: too slow to show the bound`);
  });

  it('keeps the last good keys while the URL fails, and says so', async () => {
    served.status = 500;
    const token = await signed(claims, keys.rotated.privateKey, 'RS256', 'rsa-2');
    // SIGHUP refetches the URL (as the key files are reloaded).
    server.app.reload();
    await waitUntil(
      async () =>
        ((await metricValue(server.metricsUrl, 'wshub_auth_jwks_fetches_total', { result: 'failure' })) ??
          0) >= 1,
      'a failed fetch',
    );
    (await TestClient.open(roomUrl(server, '', token))).ws.terminate();
    await server.log.waitFor(
      /Auth: fetching http:\/\/127\.0\.0\.1:\d+\/\.well-known\/jwks\.json failed, keeping the last good keys: HTTP 500/,
    );
    served.status = 200;
  });
});

describe('--auth-jwks-url that never answers', () => {
  it('answers 503 with Retry-After (the token may be good) and is not ready', async () => {
    const silent = createServer((_request, response) => {
      response.writeHead(503);
      response.end();
    });
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(silent.address() as AddressInfo).port}/jwks`;
    const server = await startServer(['--stats-interval=0', '--auth=jwt', `--auth-jwks-url=${url}`], {
      jwksUrlTimings: { maxAgeMs: 60_000, cooldownMs: 60_000, timeoutMs: 1000 },
    });
    try {
      await waitForMetric(server.metricsUrl, 'wshub_auth_jwks_fetches_total', 1, { result: 'failure' });
      const { privateKey } = await generateKeyPair('RS256');
      const response = await upgrade(
        server,
        '/ws',
        await signed({ sub: 'n', rooms: ['*'] }, privateKey, 'RS256', 'k'),
      );
      assert.equal(response.status, 503);
      assert.equal(response.headers['retry-after'], '5');
      assert.equal(await failures(server, 'keys_unavailable'), 1);
      // The same answer to the console's GET /stats and to a plain GET of the WebSocket path:
      // the token may be good, so not "enter a token" (401) but "come back" (503).
      const token = await signed({ sub: 'n', rooms: ['*'] }, privateKey, 'RS256', 'k');
      const base = `http://127.0.0.1:${server.app.port}`;
      for (const path of ['/stats', '/ws']) {
        const answer = await fetch(`${base}${path}`, { headers: { Authorization: `Bearer ${token}` } });
        assert.equal(answer.status, 503, path);
        assert.equal(answer.headers.get('retry-after'), '5', path);
        assert.match(await answer.text(), /cannot verify tokens now: no keys/);
      }
      assert.equal(await failures(server, 'keys_unavailable'), 3);
      await server.log.waitFor(/Request refused: GET \/stats from 127\.0\.0\.1:\d+ 503 keys_unavailable/);
      const readyz = await fetch(`${server.metricsUrl}/readyz`);
      assert.equal(readyz.status, 503);
      assert.match(await readyz.text(), /auth_keys/);
    } finally {
      await server.app.stop();
      silent.close();
    }
  });
});

describe('without auth: --client-publish=false and --max-messages-per-second', () => {
  it("--client-publish=false (the issue's spelling): a client message closes it with 1008, undelivered; POST /publish still delivers", async () => {
    const token = 'static-publish-token-0123456789';
    const server = await startServer([
      '--stats-interval=0',
      '--mode=broadcast',
      '--client-publish=false',
      `--publish-token=${token}`,
    ]);
    try {
      const listener = await TestClient.open(server.url);
      const talker = await TestClient.open(server.url);
      await talker.send('hello?');
      const closed = await talker.closed;
      assert.equal(closed.code, 1008);
      const response = await fetch(`http://127.0.0.1:${server.app.port}/publish`, {
        method: 'POST',
        headers: { Authorization: `Bearer ${token}` },
        body: 'from the server',
      });
      assert.equal(response.status, 200);
      assert.equal(
        (await listener.next()).data.toString(),
        'from the server',
        'the client message never arrived',
      );
      assert.equal(await failures(server, 'publish'), 1);
      await server.log.waitFor(
        /Closing 127\.0\.0\.1:\d+ with 1008: clients may not send messages \(--client-publish=false\)/,
      );
      await listener.close();
    } finally {
      await server.app.stop();
    }
  });

  it('--max-messages-per-second: a burst up to the rate passes, more closes with 1008, counted', async () => {
    const server = await startServer(['--stats-interval=0', '--max-messages-per-second=5']);
    try {
      const client = await TestClient.open(server.url);
      for (let i = 0; i < 5; i++) await client.send(`m${i}`);
      assert.deepEqual(
        (await client.take(5)).map((m) => m.data.toString()),
        ['m0', 'm1', 'm2', 'm3', 'm4'],
      );
      await client.send('one too many');
      const closed = await client.closed;
      assert.equal(closed.code, 1008);
      assert.equal(closed.reason, 'message rate limit exceeded');
      assert.equal(client.received.length, 0, 'the refused message is not echoed');
      assert.equal(await failures(server, 'rate'), 1);
      assert.equal(
        await metricValue(server.metricsUrl, 'websocket_server_disconnects_total', {
          reason: 'rate_limited',
        }),
        1,
      );
      // A client within the rate is never closed.
      const steady = await TestClient.open(server.url);
      for (let i = 0; i < 8; i++) {
        await steady.send(`s${i}`);
        await steady.next();
        await new Promise((resolve) => setTimeout(resolve, 250));
      }
      await steady.close();
    } finally {
      await server.app.stop();
    }
  });
});

describe('POST /publish with a JWT', () => {
  let running: Awaited<ReturnType<typeof startWithSecret>>;
  let server: InProcessServer;
  before(async () => {
    running = await startWithSecret(['--mode=broadcast']);
    server = running.server;
  });
  after(async () => {
    await running.stop();
  });

  const publish = (room: string, token: string) =>
    fetch(`http://127.0.0.1:${server.app.port}/publish?room=${room}`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${token}` },
      body: 'news',
    });

  it('delivers for a token whose "publish" covers the room, 403 outside it, 401 for a bad token', async () => {
    const listener = await TestClient.open(
      roomUrl(server, 'news.eu', await hs256({ sub: 'reader', rooms: ['*'] })),
    );
    const backend = await hs256({ sub: 'backend', publish: ['news.*'] });
    const ok = await publish('news.eu', backend);
    assert.equal(ok.status, 200);
    assert.equal(((await ok.json()) as { delivered: number }).delivered, 1);
    assert.equal((await listener.next()).data.toString(), 'news');
    const outside = await publish('chat', backend);
    assert.equal(outside.status, 403);
    assert.match(outside.headers.get('www-authenticate') ?? '', /error="insufficient_scope"/);
    const forged = await publish(
      'news.eu',
      await hs256({ sub: 'x', publish: ['*'] }, new TextEncoder().encode('y'.repeat(40))),
    );
    assert.equal(forged.status, 401);
    assert.equal(await metricValue(server.metricsUrl, 'wshub_publish_requests_total', { status: '403' }), 1);
    assert.equal(await failures(server, 'signature'), 1);
    await listener.close();
  });
});
