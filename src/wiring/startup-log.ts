import type { Config } from '../config/settings.js';
import type { Logger } from '../log.js';
import { describeAccelerators, detectAccelerators } from '../transport/accelerators.js';
import { warnIfNotValidNow } from '../transport/tls.js';
import { describeCertificate, type TlsMaterial } from '../transport/tls-files.js';

/** The startup lines that describe the whole server; with --workers the primary logs them once. */
export function logStartupDetails(
  logger: Logger,
  config: Config,
  certificate: TlsMaterial | undefined,
): void {
  logger.info(describeAccelerators(detectAccelerators()));
  // Echo mode keeps seed 000's startup lines exactly; broadcast mode says so once.
  if (config.mode === 'broadcast') {
    logger.info(
      `Broadcast mode: every message goes to every client of its room (/ws, /ws/<room>)${config.broadcastExcludeSender ? ', sender excluded' : ''}`,
    );
  }
  if (certificate) {
    logger.info(`TLS enabled (wss://): certificate ${describeCertificate(certificate)}`);
    warnIfNotValidNow(logger, certificate);
  }
}
