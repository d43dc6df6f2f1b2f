import type { Logger } from '../log.js';

/** Logs "Active connections: N" every interval (seed 000). One unref'd timer. */
export function startPeriodicReport(
  logger: Logger,
  connections: { readonly size: number },
  intervalMs: number,
): () => void {
  if (intervalMs === 0) return () => {};
  const timer = setInterval(function reportActiveConnections() {
    logger.info(`Active connections: ${connections.size}`, { connections: connections.size });
  }, intervalMs);
  timer.unref();
  return () => clearInterval(timer);
}
