import { type HttpRefusal, tokenCheckForWebSocketPaths } from '../auth/http-guard.js';
import { AuthService, type JwksUrlTimings } from '../auth/service.js';
import type { Config } from '../config/settings.js';
import type { Health } from '../lifecycle/health.js';
import { type Logger, RateLimitedLog } from '../log.js';
import { Stats } from '../stats.js';
import { formatPeer } from '../transport/address.js';
import type { WebSocketPathGuard } from '../transport/http-server.js';
import { pathOf } from '../transport/routes.js';

const authConfigOf = (config: Config) => ({
  secretFile: config.authJwtSecretFile,
  jwksFile: config.authJwksFile,
  jwksUrl: config.authJwksUrl,
  issuer: config.authJwtIssuer,
  audience: config.authJwtAudience,
});

/**
 * --auth=jwt (issue 15): the key sources and the verifier, the key files read now (a broken
 * one is a UsageError: exit 2); undefined with --auth=none.
 */
export function buildAuth(
  config: Config,
  parts: {
    readonly stats: Stats;
    readonly logger: Logger;
    readonly limitedLog: RateLimitedLog;
    readonly jwksUrlTimings?: JwksUrlTimings | undefined;
  },
): AuthService | undefined {
  if (config.auth !== 'jwt') return undefined;
  return new AuthService({ config: authConfigOf(config), ...parts });
}

/** Reads the auth key files as startup would (a JWKS URL is not fetched): a UsageError names the broken one. */
export function checkAuthFiles(config: Config): void {
  const quiet = { info() {}, warn() {}, error() {} };
  buildAuth(config, { stats: new Stats(), logger: quiet, limitedLog: new RateLimitedLog(quiet) });
}

/**
 * After listening: the startup line, watching the key files (--tls-watch decides for the
 * certificate and the keys alike), the first JWKS URL fetch and its readiness check.
 */
export function startAuth(
  auth: AuthService,
  parts: {
    readonly config: Config;
    readonly logger: Logger;
    readonly health: Health;
    readonly quiet: boolean;
  },
): void {
  if (!parts.quiet) parts.logger.info(auth.describe());
  auth.start(parts.config.tlsWatch);
  const keys = auth.keysCheck;
  if (keys) parts.health.addCheck('auth_keys', keys.ready, { describe: keys.describe });
}

/**
 * Issue 15: a plain request refused for its token (GET /stats, a plain GET of a WebSocket path) is
 * counted in wshub_auth_failures_total and logged at a bounded rate like a refused upgrade: the
 * path without its query (where ?access_token= would be), never the token.
 */
export function httpRefusalReporter(stats: Stats, limitedLog: RateLimitedLog): HttpRefusal {
  return function reportHttpRefusal(request, status, reason, detail) {
    stats.authFailures[reason]++;
    const peer = formatPeer(request.socket?.remoteAddress, request.socket?.remotePort);
    limitedLog.log(
      `http_${reason}`,
      'warn',
      `Request refused: ${request.method ?? 'GET'} ${pathOf(request.url)} from ${peer} ${status} ${reason} (${detail})`,
      { remote_addr: peer, status, auth_failure: reason },
    );
  };
}

/** Issue 15: a plain GET of a WebSocket path tells a browser why its handshake was refused (401/403). */
export function webSocketPathGuard(
  auth: AuthService | undefined,
  refused: HttpRefusal,
): WebSocketPathGuard | undefined {
  return auth && tokenCheckForWebSocketPaths(auth.verifier, refused);
}
