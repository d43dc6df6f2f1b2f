import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { parseJwks } from './keys.js';
import { TokenVerifier } from './verifier.js';

/**
 * Issue 15: a JWKS gives RSA, EC and OKP public keys by `kid`; the README promises the
 * algorithms each key type allows. Every one is verified here with a key of that type, and a
 * token whose `alg` does not fit its key's type is refused as `algorithm`, not tried.
 */
describe('TokenVerifier with a JWKS: the algorithms the README lists', () => {
  const cases = [
    ['RS256', 'RS256'],
    ['RS512', 'RS512'],
    ['PS256', 'PS256'],
    ['ES256', 'ES256'],
    ['ES384', 'ES384'],
    ['EdDSA', 'Ed25519'],
  ] as const;

  it('verifies a token of each algorithm by kid, and refuses one whose alg does not fit its key', async () => {
    const keys = [];
    const tokens: Array<[string, string]> = [];
    for (const [alg, keyAlg] of cases) {
      const { publicKey, privateKey } = await generateKeyPair(keyAlg, { extractable: true });
      keys.push({ ...(await exportJWK(publicKey)), kid: `k-${alg}` });
      const token = await new SignJWT({ sub: `user-${alg}`, rooms: ['*'] })
        .setProtectedHeader({ alg, kid: `k-${alg}` })
        .setExpirationTime('1h')
        .sign(privateKey);
      tokens.push([alg, token]);
    }
    const { lookup } = parseJwks(JSON.stringify({ keys }), 'test JWKS');
    const verifier = new TokenVerifier({ keySets: [lookup] });
    for (const [alg, token] of tokens) {
      const verification = await verifier.verify(token);
      assert.ok(verification.ok, `${alg}: ${JSON.stringify(verification)}`);
      assert.equal(verification.identity.user, `user-${alg}`);
    }
    // An RS256 signature presented as PS256 with the same kid: refused (signature), never accepted.
    const [, rs256] = tokens[0] as [string, string];
    const [, payload, signature] = rs256.split('.');
    const header = Buffer.from(JSON.stringify({ alg: 'PS256', kid: 'k-RS256' })).toString('base64url');
    const relabelled = await verifier.verify(`${header}.${payload}.${signature}`);
    assert.deepEqual(relabelled.ok ? 'accepted' : relabelled.reason, 'signature');
    // An HS256 token with no secret configured: the algorithm is refused before any key is looked at.
    const hs = await new SignJWT({ sub: 'x', rooms: ['*'] })
      .setProtectedHeader({ alg: 'HS256', kid: 'k-RS256' })
      .setExpirationTime('1h')
      .sign(new TextEncoder().encode('k'.repeat(32)));
    const refused = await verifier.verify(hs);
    assert.deepEqual(refused.ok ? 'accepted' : refused.reason, 'algorithm');
  });
});
