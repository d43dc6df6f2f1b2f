import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { exportJWK, generateKeyPair, type JWK } from 'jose';
import { JwksUrl, KeysUnavailable } from './keys.js';

/**
 * Issue 15: an identity provider's JWKS is cached; an unknown `kid` refetches it at most once per
 * cooldown, and the last good keys stay in use while the provider is unreachable, also once they
 * are older than the refresh age. A real HTTP server serves the keys (and is stopped to make it
 * unreachable); the clock is the test's, so no assertion depends on how fast the machine is.
 */
describe('JwksUrl (--auth-jwks-url)', () => {
  const MAX_AGE_MS = 600_000;
  const COOLDOWN_MS = 30_000;
  let provider: Server;
  let url: string;
  let served: JWK[];
  let fetches = 0;
  let first: JWK;
  let second: JWK;

  before(async () => {
    const publicJwk = async (kid: string) => ({
      ...(await exportJWK((await generateKeyPair('ES256', { extractable: true })).publicKey)),
      kid,
      alg: 'ES256',
    });
    first = await publicJwk('key-1');
    second = await publicJwk('key-2');
    served = [first];
    provider = createServer((_request, response) => {
      fetches++;
      response.writeHead(200, { 'Content-Type': 'application/json' });
      response.end(JSON.stringify({ keys: served }));
    });
    await new Promise<void>((resolve) => provider.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(provider.address() as AddressInfo).port}/jwks`;
  });
  after(() => provider.close());

  function jwksUrl(target = url) {
    const clock = { now: 0 };
    const results: string[] = [];
    const jwks = new JwksUrl({
      url: target,
      maxAgeMs: MAX_AGE_MS,
      cooldownMs: COOLDOWN_MS,
      timeoutMs: 2000,
      now: () => clock.now,
      onFetch: (result) => results.push(result.ok ? `ok ${result.kids.join(',')}` : `failed ${result.error}`),
    });
    return { jwks, clock, results };
  }
  const lookup = (jwks: JwksUrl, kid: string) =>
    jwks.lookup({ alg: 'ES256', kid }, { payload: '', signature: '' });

  it('refetches on an unknown kid at most once per cooldown, however many forged kids arrive', async () => {
    served = [first];
    const { jwks, clock, results } = jwksUrl();
    await jwks.refresh();
    const before = fetches;
    assert.ok(await lookup(jwks, 'key-1'));
    // The provider rotates: the first token with the new kid refetches, and is verified.
    served = [first, second];
    clock.now += COOLDOWN_MS;
    assert.ok(await lookup(jwks, 'key-2'));
    assert.equal(fetches - before, 1);
    // Forged kids within the cooldown: refused without asking the provider again.
    for (let i = 0; i < 50; i++) {
      clock.now += COOLDOWN_MS / 100;
      await assert.rejects(lookup(jwks, `forged-${i}`), { code: 'ERR_JWKS_NO_MATCHING_KEY' });
    }
    assert.equal(fetches - before, 1, 'no fetch for forged kids within the cooldown');
    // Once the cooldown has passed, one more fetch, then quiet again.
    clock.now += COOLDOWN_MS;
    for (let i = 0; i < 20; i++) {
      await assert.rejects(lookup(jwks, `forged-late-${i}`), { code: 'ERR_JWKS_NO_MATCHING_KEY' });
    }
    assert.equal(fetches - before, 2);
    assert.deepEqual(results, ['ok key-1', 'ok key-1,key-2', 'ok key-1,key-2']);
  });

  it('keeps the last good keys while the provider is unreachable, past their refresh age too', async () => {
    // A provider that answers once, then is gone (nothing listening at its address).
    const gone = createServer((_request, response) => {
      response.writeHead(200, { 'Content-Type': 'application/json' });
      response.end(JSON.stringify({ keys: [first] }));
    });
    await new Promise<void>((resolve) => gone.listen(0, '127.0.0.1', resolve));
    const { jwks, clock, results } = jwksUrl(`http://127.0.0.1:${(gone.address() as AddressInfo).port}/jwks`);
    await jwks.refresh();
    await new Promise<void>((resolve) => gone.close(() => resolve()));

    // Past the refresh age: the lookup answers with the cached key and refetches in the background.
    clock.now += MAX_AGE_MS + 1;
    assert.ok(await lookup(jwks, 'key-1'));
    await jwks.refresh();
    assert.deepEqual(results, ['ok key-1', 'failed fetch failed (ECONNREFUSED)']);
    // Still answering, however long the outage lasts, and saying so.
    for (let hour = 1; hour <= 3; hour++) {
      clock.now += 3_600_000;
      assert.ok(await lookup(jwks, 'key-1'));
      await jwks.refresh();
    }
    assert.equal(jwks.loaded, true);
    assert.match(
      jwks.describe(),
      /^1 keys from .* fetched \d+s ago; last refetch failed: fetch failed \(ECONNREFUSED\)$/,
    );
    // An unknown kid during the outage is refused (no key); the known one still verifies.
    clock.now += COOLDOWN_MS;
    await assert.rejects(lookup(jwks, 'key-2'), { code: 'ERR_JWKS_NO_MATCHING_KEY' });
    assert.ok(await lookup(jwks, 'key-1'));
  });

  it('before any key was fetched: KeysUnavailable, and a retry at most once per cooldown', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const closedUrl = `http://127.0.0.1:${(closed.address() as AddressInfo).port}/jwks`;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const { jwks, clock, results } = jwksUrl(closedUrl);
    await jwks.refresh();
    assert.equal(jwks.loaded, false);
    for (let i = 0; i < 10; i++) {
      clock.now += COOLDOWN_MS / 20;
      await assert.rejects(lookup(jwks, 'key-1'), KeysUnavailable);
    }
    assert.equal(results.length, 1, 'no retry within the cooldown');
    clock.now += COOLDOWN_MS;
    await assert.rejects(lookup(jwks, 'key-1'), KeysUnavailable);
    assert.equal(results.length, 2);
    assert.match(jwks.describe(), /^no keys yet from .* \(fetch failed \(ECONNREFUSED\)\)$/);
  });
});
