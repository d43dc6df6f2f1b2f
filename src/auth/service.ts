import { DirectoryWatch } from '../file-watch.js';
import type { Logger, RateLimitedLog } from '../log.js';
import type { Stats } from '../stats.js';
import { JwksFile, JwksUrl, type KeyLookup, loadSecretKey, type SecretKey } from './keys.js';
import { TokenVerifier } from './verifier.js';

export interface AuthConfig {
  readonly secretFile: string;
  readonly jwksFile: string;
  readonly jwksUrl: string;
  readonly issuer: string;
  readonly audience: string;
}

/** How a JWKS URL is cached; tests shorten them. */
export interface JwksUrlTimings {
  readonly maxAgeMs: number;
  readonly cooldownMs: number;
  readonly timeoutMs: number;
}

/** Keys are refetched every 10 minutes, on an unknown kid at most every 30 s, each fetch bounded by 5 s (jose's defaults). */
export const JWKS_URL_TIMINGS: JwksUrlTimings = {
  maxAgeMs: 10 * 60_000,
  cooldownMs: 30_000,
  timeoutMs: 5000,
};

export interface AuthServiceOptions {
  readonly config: AuthConfig;
  readonly stats: Stats;
  readonly logger: Logger;
  readonly limitedLog: RateLimitedLog;
  readonly jwksUrlTimings?: JwksUrlTimings;
}

export type ReloadTrigger = 'SIGHUP' | 'file change';

/**
 * --auth=jwt (issue 15): owns the key sources and the verifier. Key files are
 * read at construction (a broken one is a UsageError: exit 2) and again on
 * SIGHUP and when their directories change, like the TLS certificate; a broken
 * new file is logged and counted, and the keys in use stay. A JWKS URL is
 * fetched in the background: readiness waits for its first keys.
 */
export class AuthService {
  readonly verifier: TokenVerifier;
  private secret: SecretKey | undefined;
  private readonly jwksFile: JwksFile | undefined;
  private readonly jwksUrl: JwksUrl | undefined;
  private watcher: DirectoryWatch | undefined;

  constructor(private readonly options: AuthServiceOptions) {
    const { config, stats, logger, limitedLog } = options;
    if (config.secretFile !== '') this.secret = loadSecretKey(config.secretFile);
    this.jwksFile = config.jwksFile === '' ? undefined : new JwksFile(config.jwksFile);
    if (config.jwksUrl !== '') {
      const url = config.jwksUrl;
      this.jwksUrl = new JwksUrl({
        url,
        ...(options.jwksUrlTimings ?? JWKS_URL_TIMINGS),
        onFetch(result) {
          if (result.ok) {
            stats.authJwksFetches.success++;
            logger.info(
              `Auth: fetched ${result.kids.length} keys from ${url} (kid ${result.kids.join(', ')})`,
            );
          } else {
            stats.authJwksFetches.failure++;
            limitedLog.log(
              'auth_jwks_fetch',
              'error',
              `Auth: fetching ${url} failed, keeping the last good keys: ${result.error}`,
            );
          }
        },
      });
    }
    const keySets: KeyLookup[] = [];
    if (this.jwksFile) keySets.push(this.jwksFile.lookup);
    if (this.jwksUrl) keySets.push(this.jwksUrl.lookup);
    this.verifier = new TokenVerifier({
      secret: this.secret && (() => this.secret as SecretKey),
      keySets,
      issuer: config.issuer === '' ? undefined : config.issuer,
      audience: config.audience === '' ? undefined : config.audience,
    });
  }

  /** One line for the startup log: which keys verify tokens. */
  describe(): string {
    const parts: string[] = [];
    if (this.secret) parts.push(`HMAC secret (${this.secret.algorithms.join('/')})`);
    if (this.jwksFile) parts.push(`JWKS file ${this.jwksFile.file} (kid ${this.jwksFile.kids.join(', ')})`);
    if (this.jwksUrl) parts.push(`JWKS URL ${this.options.config.jwksUrl}`);
    const { issuer, audience } = this.options.config;
    const checks = [issuer !== '' && `iss ${issuer}`, audience !== '' && `aud ${audience}`].filter(Boolean);
    return `Auth: JWT required on every WebSocket upgrade, verified with ${parts.join(' and ')}${checks.length ? `; expecting ${checks.join(', ')}` : ''}`;
  }

  /** The JWKS URL's first fetch (in the background) and, with `watch`, the key files' directories. */
  start(watch: boolean): void {
    void this.jwksUrl?.refresh();
    const files = [this.options.config.secretFile, this.options.config.jwksFile].filter(
      (file) => file !== '',
    );
    if (watch && files.length > 0) {
      this.watcher = new DirectoryWatch({
        files,
        what: 'auth key',
        logger: this.options.logger,
        onChange: () => this.reload('file change'),
      });
      this.watcher.start();
    }
  }

  stop(): void {
    this.watcher?.stop();
  }

  /** Present only with a JWKS URL: whether keys have been fetched (a readiness check). */
  get keysCheck(): { ready: () => boolean; describe: () => string } | undefined {
    const jwksUrl = this.jwksUrl;
    return jwksUrl && { ready: () => jwksUrl.loaded, describe: () => jwksUrl.describe() };
  }

  reload(trigger: ReloadTrigger): void {
    const { config, stats, logger, limitedLog } = this.options;
    if (trigger === 'SIGHUP' && this.jwksUrl) void this.jwksUrl.refresh();
    if (this.secret === undefined && this.jwksFile === undefined) return;
    try {
      const secret = this.secret && loadSecretKey(config.secretFile);
      const jwksChanged = this.jwksFile?.reload() ?? false;
      const secretChanged = secret !== undefined && !this.secret?.key.equals(secret.key);
      this.secret = secret;
      // A directory event for some other file: nothing to log or count.
      if (trigger === 'file change' && !jwksChanged && !secretChanged) return;
      stats.authKeyReloads.success++;
      logger.info(
        `Auth keys reloaded (${trigger})${this.jwksFile ? `: JWKS kid ${this.jwksFile.kids.join(', ')}` : ''}`,
      );
    } catch (error) {
      stats.authKeyReloads.failure++;
      limitedLog.log(
        'auth_key_reload_failure',
        'error',
        `Auth key reload (${trigger}) failed, keeping the current keys: ${(error as Error).message}`,
      );
    }
  }
}
