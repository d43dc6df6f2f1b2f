import type { TLSSocket, Server as TlsServer } from 'node:tls';
import { DirectoryWatch } from '../file-watch.js';
import type { Logger, RateLimitedLog } from '../log.js';
import type { Stats, TlsHandshakeFailureReason } from '../stats.js';
import { formatPeer } from './address.js';
import {
  describeCertificate,
  loadTlsMaterial,
  sameMaterial,
  secureContextOptions,
  type TlsFiles,
  type TlsMaterial,
} from './tls-files.js';

export type ReloadTrigger = 'SIGHUP' | 'file change';

export interface TlsReloaderOptions {
  readonly files: TlsFiles;
  readonly stats: Stats;
  readonly logger: Logger;
  readonly limitedLog: RateLimitedLog;
  /** Quiet time after the last directory event before reloading (a rotation touches several files). */
  readonly debounceMs?: number;
  readonly load?: (files: TlsFiles) => TlsMaterial;
}

/**
 * Holds the certificate the WebSocket port serves and swaps it without
 * dropping connections: `setSecureContext` only affects handshakes that start
 * afterwards. Reloads on SIGHUP and when the files' directories change.
 * Directories, not files, are watched: a Kubernetes Secret volume rotates by
 * atomically renaming a `..data` symlink, which a watch on the old file never sees.
 * A new pair that fails any startup check is logged and the old one kept.
 */
export class TlsReloader {
  private material: TlsMaterial;
  private server: TlsServer | undefined;
  private watcher: DirectoryWatch | undefined;
  private readonly load: (files: TlsFiles) => TlsMaterial;

  /** Loads the initial pair; throws the UsageError of the first failed check. */
  constructor(private readonly options: TlsReloaderOptions) {
    this.load = options.load ?? loadTlsMaterial;
    this.material = this.load(options.files);
  }

  get current(): TlsMaterial {
    return this.material;
  }

  get serverOptions() {
    return secureContextOptions(this.material);
  }

  attach(server: TlsServer): void {
    this.server = server;
  }

  /** Loads the files again; on success the server uses them for new handshakes. Returns whether it succeeded. */
  reload(trigger: ReloadTrigger): boolean {
    const { stats, logger, limitedLog } = this.options;
    let next: TlsMaterial;
    try {
      next = this.load(this.options.files);
    } catch (error) {
      stats.tlsReloads.failure++;
      limitedLog.log(
        'tls_reload_failure',
        'error',
        `TLS certificate reload (${trigger}) failed, keeping the current certificate: ${(error as Error).message}`,
      );
      return false;
    }
    // A directory event for some other file: nothing to do, nothing to count.
    if (trigger === 'file change' && sameMaterial(next, this.material)) return true;
    this.server?.setSecureContext(secureContextOptions(next));
    this.material = next;
    stats.tlsReloads.success++;
    logger.info(`TLS certificate reloaded (${trigger}): ${describeCertificate(next)}`);
    warnIfNotValidNow(logger, next);
    return true;
  }

  /** Starts watching the directories of the files. A directory that cannot be watched is logged; SIGHUP still works. */
  watch(): void {
    const { files, logger, debounceMs } = this.options;
    this.watcher ??= new DirectoryWatch({
      files: [files.certFile, files.keyFile, files.caFile],
      what: 'certificate',
      logger,
      debounceMs,
      onChange: this.reloadAfterChange,
    });
    this.watcher.start();
  }

  stop(): void {
    this.watcher?.stop();
  }

  private readonly reloadAfterChange = (): void => {
    this.reload('file change');
  };
}

/** Logs an expired or not-yet-valid certificate: served anyway (the operator decides), but never silently. */
export function warnIfNotValidNow(logger: Logger, material: TlsMaterial, now = Date.now()): void {
  if (material.validTo < now) {
    logger.warn(
      `TLS certificate expired at ${new Date(material.validTo).toISOString()}; clients will reject it`,
    );
  } else if (material.validFrom > now) {
    logger.warn(`TLS certificate is not valid before ${new Date(material.validFrom).toISOString()}`);
  }
}

const HANDSHAKE_ERROR_REASONS: Readonly<Record<string, TlsHandshakeFailureReason>> = {
  ERR_SSL_HTTP_REQUEST: 'http_request',
  ERR_TLS_HANDSHAKE_TIMEOUT: 'timeout',
  ECONNRESET: 'closed',
};

/**
 * The 'tlsClientError' listener of the WebSocket port: a handshake that fails
 * is counted by reason and logged, rate-limited per reason. A peer that closes
 * first (a TCP health check) is logged at info, the rest at warn. Node destroys
 * the socket itself.
 */
export function tlsHandshakeFailureListener(
  stats: Stats,
  limitedLog: RateLimitedLog,
): (error: Error & { code?: string }, socket: TLSSocket) => void {
  return function onTlsClientError(error, socket) {
    const reason = HANDSHAKE_ERROR_REASONS[error.code ?? ''] ?? 'protocol';
    stats.tlsHandshakeFailures[reason]++;
    const peer = formatPeer(socket.remoteAddress, socket.remotePort);
    const detail = error.code ?? error.message;
    limitedLog.log(
      `tls_handshake_${reason}`,
      reason === 'closed' ? 'info' : 'warn',
      reason === 'closed'
        ? `TLS connection from ${peer} closed before the handshake completed (health check, or a client that rejected the certificate)`
        : `TLS handshake failed from ${peer} (${reason}): ${detail}`,
    );
  };
}
