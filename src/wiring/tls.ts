import type { Config } from '../config/settings.js';
import type { Logger, RateLimitedLog } from '../log.js';
import type { Stats } from '../stats.js';
import { TlsReloader } from '../transport/tls.js';
import { loadTlsMaterial, type TlsFiles } from '../transport/tls-files.js';
import { checkAuthFiles } from './auth.js';

export const tlsFilesOf = (config: Config): TlsFiles => ({
  certFile: config.tlsCertFile,
  keyFile: config.tlsKeyFile,
  caFile: config.tlsCaFile,
});

/** What --check-config verifies beyond the values: the files startup would read (the TLS pair, the auth keys). */
export function checkStartupFiles(config: Config): void {
  if (config.tlsEnabled) loadTlsMaterial(tlsFilesOf(config));
  checkAuthFiles(config);
}

/** The TLS of the WebSocket port when enabled (the pair read and validated now); says so when files are set but TLS is off. */
export function buildTls(
  config: Config,
  parts: { readonly stats: Stats; readonly logger: Logger; readonly limitedLog: RateLimitedLog },
): TlsReloader | undefined {
  const tls = config.tlsEnabled
    ? new TlsReloader({
        files: tlsFilesOf(config),
        stats: parts.stats,
        logger: parts.logger,
        limitedLog: parts.limitedLog,
      })
    : undefined;
  if (!tls && (config.tlsCertFile !== '' || config.tlsKeyFile !== '' || config.tlsCaFile !== '')) {
    parts.logger.info(
      'TLS disabled (server.tls.enabled is false): the configured certificate files are not used',
    );
  }
  return tls;
}
