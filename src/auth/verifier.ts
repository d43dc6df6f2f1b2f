import type { KeyObject } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { type CryptoKey, errors, type FlattenedJWSInput, type JWSHeaderParameters, jwtVerify } from 'jose';
import type { AuthFailureReason } from '../stats.js';
import { type Identity, identityOf } from './claims.js';
import { JWKS_ALGORITHMS, type KeyLookup, KeysUnavailable, type SecretKey } from './keys.js';

export interface VerifierOptions {
  /** The HMAC secret (--auth-jwt-secret-file), read again on reload. */
  readonly secret?: () => SecretKey;
  /** Public keys by kid: the JWKS file and/or URL, tried in this order. */
  readonly keySets: readonly KeyLookup[];
  readonly issuer?: string;
  readonly audience?: string;
}

export type Credential =
  | { readonly kind: 'token'; readonly token: string }
  | { readonly kind: 'missing' }
  | { readonly kind: 'malformed'; readonly detail: string };

export type Verification =
  | { readonly ok: true; readonly identity: Identity }
  | { readonly ok: false; readonly reason: AuthFailureReason; readonly detail: string };

/** RFC 6750 §2.1: b64token; a JWS compact serialization is three base64url parts. */
const BEARER = /^Bearer +([A-Za-z0-9\-._~+/]+=*) *$/i;
const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;

/**
 * The token of a request (issue 15): `Authorization: Bearer …` (RFC 6750 §2.1)
 * or `?access_token=…` (§2.3; browsers cannot set headers on a WebSocket).
 * Both at once is malformed (§2: a client uses one method).
 */
export function credentialOf(request: IncomingMessage): Credential {
  const header = request.headers.authorization;
  const url = request.url ?? '';
  const query = url.indexOf('?');
  const fromQuery = query === -1 ? null : new URLSearchParams(url.slice(query + 1)).getAll('access_token');
  if (header !== undefined && fromQuery !== null && fromQuery.length > 0) {
    return { kind: 'malformed', detail: 'token in both the Authorization header and access_token' };
  }
  let token: string;
  if (header !== undefined) {
    const match = BEARER.exec(header);
    if (match === null) return { kind: 'malformed', detail: 'Authorization is not "Bearer <token>"' };
    token = match[1] as string;
  } else if (fromQuery !== null && fromQuery.length > 0) {
    if (fromQuery.length > 1) return { kind: 'malformed', detail: 'more than one access_token' };
    token = fromQuery[0] as string;
  } else {
    return { kind: 'missing' };
  }
  if (token === '') return { kind: 'missing' };
  if (!COMPACT_JWS.test(token))
    return { kind: 'malformed', detail: 'the token is not a JWT (header.payload.signature)' };
  return { kind: 'token', token };
}

/**
 * Verifies tokens with jose: signature by a configured key, an algorithm that
 * key type allows, `exp`/`nbf`, the configured `iss` and `aud`; then reads the
 * claims wshub acts on. Never throws: every outcome is an Identity or a
 * bounded reason with a sentence for the log (neither ever carries the token).
 */
export class TokenVerifier {
  constructor(private readonly options: VerifierOptions) {}

  async verify(token: string): Promise<Verification> {
    const secret = this.options.secret?.();
    const hasKeySets = this.options.keySets.length > 0;
    const algorithms = [...(secret?.algorithms ?? []), ...(hasKeySets ? JWKS_ALGORITHMS : [])];
    const keySets = this.options.keySets;
    const lookup = async (
      header: JWSHeaderParameters,
      input: FlattenedJWSInput,
    ): Promise<CryptoKey | KeyObject> => {
      // `algorithms` has already refused an alg no configured key allows; HS* needs the secret.
      if (header.alg?.startsWith('HS')) return (secret as SecretKey).key;
      let lastError: unknown;
      for (const keySet of keySets) {
        try {
          return await keySet(header, input);
        } catch (error) {
          lastError = error;
          if (!(error instanceof errors.JWKSNoMatchingKey)) break;
        }
      }
      throw lastError;
    };
    let payload: Record<string, unknown>;
    try {
      ({ payload } = await jwtVerify(token, lookup, {
        algorithms,
        issuer: this.options.issuer,
        audience: this.options.audience,
      }));
    } catch (error) {
      return failureOf(error);
    }
    const identity = identityOf(payload);
    if (typeof identity === 'string') return { ok: false, reason: 'claims', detail: identity };
    return { ok: true, identity };
  }
}

function failureOf(error: unknown): Verification {
  if (error instanceof KeysUnavailable)
    return { ok: false, reason: 'keys_unavailable', detail: error.message };
  const code = (error as { code?: string }).code;
  const message = (error as Error).message;
  switch (code) {
    case 'ERR_JWT_EXPIRED':
      return { ok: false, reason: 'expired', detail: 'the token has expired' };
    case 'ERR_JWT_CLAIM_VALIDATION_FAILED': {
      const claim = (error as errors.JWTClaimValidationFailed).claim;
      if (claim === 'iss') return { ok: false, reason: 'issuer', detail: 'unexpected "iss" (issuer)' };
      if (claim === 'aud') return { ok: false, reason: 'audience', detail: 'unexpected "aud" (audience)' };
      if (claim === 'nbf')
        return { ok: false, reason: 'not_yet_valid', detail: 'the token is not valid yet ("nbf")' };
      return { ok: false, reason: 'claims', detail: message };
    }
    case 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED':
    case 'ERR_JWKS_MULTIPLE_MATCHING_KEYS':
      return { ok: false, reason: 'signature', detail: 'signature verification failed' };
    case 'ERR_JOSE_ALG_NOT_ALLOWED':
    case 'ERR_JOSE_NOT_SUPPORTED':
      return {
        ok: false,
        reason: 'algorithm',
        detail: 'the token\'s "alg" is not allowed for the configured keys',
      };
    case 'ERR_JWKS_NO_MATCHING_KEY':
      return {
        ok: false,
        reason: 'unknown_key',
        detail: 'no configured key matches the token\'s "kid" and "alg"',
      };
    default:
      // JWSInvalid, JWTInvalid (e.g. a payload that is not a JSON object), a key that fails to import.
      return { ok: false, reason: 'malformed', detail: `invalid token (${code ?? 'unparsable'})` };
  }
}
