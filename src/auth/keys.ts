import { createPublicKey, createSecretKey, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import {
  type CryptoKey,
  createLocalJWKSet,
  errors,
  type FlattenedJWSInput,
  type JSONWebKeySet,
  type JWK,
  type JWSHeaderParameters,
} from 'jose';
import { ErrorCode, UsageError } from '../errors.js';

/**
 * Where verification keys come from (issue 15): an HMAC secret file, a JWKS
 * file, a JWKS URL. Each source says which algorithms its keys may be used
 * with; a token's `alg` outside every configured source's list is refused
 * before any key is looked at (jose's `algorithms` option), so `alg: none` and
 * an HS256 token "signed" with an RSA public key can never verify.
 */

/** RFC 7518 §3.2: an HMAC key at least as long as the hash; these need 32, 48 and 64 bytes. */
const HMAC_ALGORITHMS = [
  ['HS256', 32],
  ['HS384', 48],
  ['HS512', 64],
] as const;

/** Asymmetric algorithms by key type; `oct` (symmetric) keys are never taken from a JWKS. */
const ALGORITHMS_BY_KEY_TYPE: Readonly<Record<string, readonly string[]>> = {
  RSA: ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512'],
  EC: ['ES256', 'ES384', 'ES512'],
  OKP: ['EdDSA', 'Ed25519'],
};
export const JWKS_ALGORITHMS: readonly string[] = Object.values(ALGORITHMS_BY_KEY_TYPE).flat();

/** Thrown by a key source that has no keys to offer (a JWKS URL that never answered). */
export class KeysUnavailable extends Error {}

export type KeyLookup = (
  header: JWSHeaderParameters,
  token: FlattenedJWSInput,
) => Promise<CryptoKey | KeyObject>;

/** An HMAC secret read from a file (trailing newlines are not part of it). */
export interface SecretKey {
  readonly key: KeyObject;
  /** The HS algorithms this secret is long enough for. */
  readonly algorithms: readonly string[];
}

function readKeyFile(file: string, flag: string): Buffer {
  try {
    return readFileSync(file);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
    throw new UsageError(ErrorCode.AUTH_KEY_FILE_UNREADABLE, `cannot read ${flag}=${file}: ${code}`);
  }
}

export function loadSecretKey(file: string, flag = '--auth-jwt-secret-file'): SecretKey {
  let bytes = readKeyFile(file, flag);
  let end = bytes.length;
  while (end > 0 && (bytes[end - 1] === 0x0a || bytes[end - 1] === 0x0d)) end--;
  bytes = bytes.subarray(0, end);
  const algorithms = HMAC_ALGORITHMS.filter(([, size]) => bytes.length >= size).map(([alg]) => alg);
  if (algorithms.length === 0) {
    throw new UsageError(
      ErrorCode.AUTH_INVALID_KEY,
      `${flag}=${file} holds ${bytes.length} bytes; an HS256 secret needs at least 32 (RFC 7518 §3.2), e.g. from: openssl rand -base64 48`,
    );
  }
  return { key: createSecretKey(bytes), algorithms };
}

/**
 * Checks a JWKS document and returns jose's lookup over it. Every key must be
 * a public RSA, EC or OKP key that Node can import: a private key, a symmetric
 * key or a broken one is refused here, when the file is loaded, not at the
 * first handshake that names it.
 */
export function parseJwks(text: string, where: string): { lookup: KeyLookup; kids: string[] } {
  let document: unknown;
  try {
    document = JSON.parse(text);
  } catch {
    throw new UsageError(
      ErrorCode.AUTH_INVALID_KEY,
      `${where} is not JSON (expected a JWKS: {"keys": [...]})`,
    );
  }
  const keys = (document as { keys?: unknown } | null)?.keys;
  if (!Array.isArray(keys) || keys.length === 0) {
    throw new UsageError(
      ErrorCode.AUTH_INVALID_KEY,
      `${where} is not a JWKS with keys: expected {"keys": [...]}`,
    );
  }
  keys.forEach((key: JWK, index) => {
    const name = `${where}: key ${index}${typeof key?.kid === 'string' ? ` (kid ${JSON.stringify(key.kid)})` : ''}`;
    if (typeof key !== 'object' || key === null || typeof key.kty !== 'string') {
      throw new UsageError(ErrorCode.AUTH_INVALID_KEY, `${name} has no "kty"`);
    }
    if (ALGORITHMS_BY_KEY_TYPE[key.kty] === undefined) {
      throw new UsageError(
        ErrorCode.AUTH_INVALID_KEY,
        `${name} has kty ${JSON.stringify(key.kty)}; a JWKS gives RSA, EC or OKP public keys (an HMAC secret goes in --auth-jwt-secret-file)`,
      );
    }
    if ('d' in key) {
      throw new UsageError(
        ErrorCode.AUTH_INVALID_KEY,
        `${name} is a private key; give wshub the public keys only (drop "d" and the other private members)`,
      );
    }
    if (typeof key.alg === 'string' && !ALGORITHMS_BY_KEY_TYPE[key.kty]?.includes(key.alg)) {
      throw new UsageError(
        ErrorCode.AUTH_INVALID_KEY,
        `${name} has alg ${key.alg}, which a ${key.kty} key cannot use`,
      );
    }
    try {
      createPublicKey({ key: key as import('node:crypto').JsonWebKey, format: 'jwk' });
    } catch (error) {
      throw new UsageError(
        ErrorCode.AUTH_INVALID_KEY,
        `${name} is not a valid key: ${(error as Error).message}`,
      );
    }
  });
  const lookup = createLocalJWKSet(document as JSONWebKeySet);
  const kids = keys.map((key: JWK) => key.kid ?? '(no kid)');
  return { lookup, kids };
}

/** A JWKS file; `reload()` swaps in its new keys, or keeps the old ones when the new file is broken. */
export class JwksFile {
  private current: { lookup: KeyLookup; kids: string[] };
  private text: string;

  constructor(readonly file: string) {
    this.text = this.read();
    this.current = parseJwks(this.text, this.where);
  }

  get kids(): readonly string[] {
    return this.current.kids;
  }

  /** Returns whether the file changed. Throws the UsageError of the first problem; the old keys stay in use then. */
  reload(): boolean {
    const text = this.read();
    if (text === this.text) return false;
    this.current = parseJwks(text, this.where);
    this.text = text;
    return true;
  }

  readonly lookup: KeyLookup = (header, token) => this.current.lookup(header, token);

  private get where(): string {
    return `--auth-jwks-file=${this.file}`;
  }

  private read(): string {
    return readKeyFile(this.file, '--auth-jwks-file').toString('utf8');
  }
}

export interface JwksUrlOptions {
  readonly url: string;
  /** Keys older than this are refetched in the background (the old ones serve meanwhile). */
  readonly maxAgeMs: number;
  /** An unknown `kid` triggers a refetch at most this often. */
  readonly cooldownMs: number;
  /** One fetch gives up after this long. */
  readonly timeoutMs: number;
  /** Told about every fetch: ok, or why not. */
  readonly onFetch: (result: { ok: true; kids: readonly string[] } | { ok: false; error: string }) => void;
  readonly now?: () => number;
}

/**
 * An identity provider's JWKS (e.g. https://idp.example.com/.well-known/jwks.json).
 * jose's createRemoteJWKSet forgets its keys when a refetch fails after they
 * went stale; this keeps the last good set for as long as the URL is
 * unreachable, so a provider outage does not lock every user out. Fetches are
 * shared (one in flight at a time); an unknown `kid` (a key rotation) refetches
 * at most once per `cooldownMs`; keys older than `maxAgeMs` are refreshed in
 * the background while the old ones keep answering.
 */
export class JwksUrl {
  private current: { lookup: KeyLookup; kids: string[] } | undefined;
  private fetchedAt = Number.NEGATIVE_INFINITY;
  private attemptedAt = Number.NEGATIVE_INFINITY;
  private inFlight: Promise<void> | undefined;
  private lastError = 'not fetched yet';
  private readonly now: () => number;

  constructor(private readonly options: JwksUrlOptions) {
    this.now = options.now ?? (() => performance.now());
  }

  get loaded(): boolean {
    return this.current !== undefined;
  }

  describe(): string {
    if (this.current === undefined) return `no keys yet from ${this.options.url} (${this.lastError})`;
    const age = Math.round((this.now() - this.fetchedAt) / 1000);
    return `${this.current.kids.length} keys from ${this.options.url}, fetched ${age}s ago${this.lastError === '' ? '' : `; last refetch failed: ${this.lastError}`}`;
  }

  /** Fetches now unless a fetch is already under way (startup and SIGHUP). */
  refresh(): Promise<void> {
    this.inFlight ??= this.fetchOnce().finally(() => {
      this.inFlight = undefined;
    });
    return this.inFlight;
  }

  readonly lookup: KeyLookup = async (header, token) => {
    if (this.current === undefined) {
      if (this.now() - this.attemptedAt >= this.options.cooldownMs || this.inFlight) await this.refresh();
      if (this.current === undefined)
        throw new KeysUnavailable(`no keys from ${this.options.url}: ${this.lastError}`);
    } else if (this.now() - this.fetchedAt >= this.options.maxAgeMs) {
      void this.refresh();
    }
    try {
      return await (this.current as { lookup: KeyLookup }).lookup(header, token);
    } catch (error) {
      // A kid the provider has just added: fetch again, but not for every forged kid.
      if (!(error instanceof errors.JWKSNoMatchingKey)) throw error;
      if (this.now() - this.attemptedAt < this.options.cooldownMs && this.inFlight === undefined) throw error;
      await this.refresh();
      return (this.current as { lookup: KeyLookup }).lookup(header, token);
    }
  };

  private async fetchOnce(): Promise<void> {
    this.attemptedAt = this.now();
    try {
      const response = await fetch(this.options.url, {
        signal: AbortSignal.timeout(this.options.timeoutMs),
        headers: { Accept: 'application/jwk-set+json, application/json' },
        redirect: 'follow',
      });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      const parsed = parseJwks(await response.text(), this.options.url);
      this.current = parsed;
      this.fetchedAt = this.now();
      this.lastError = '';
      this.options.onFetch({ ok: true, kids: parsed.kids });
    } catch (error) {
      const cause = (error as Error & { cause?: { code?: string } }).cause?.code;
      this.lastError = `${(error as Error).message}${cause ? ` (${cause})` : ''}`;
      this.options.onFetch({ ok: false, error: this.lastError });
    }
  }
}
