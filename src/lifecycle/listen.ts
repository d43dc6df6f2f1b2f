import type { Server } from 'node:net';
import { ErrorCode, UsageError } from '../errors.js';
import { formatListenAddress } from '../transport/address.js';

const LISTEN_ERRORS: Readonly<Record<string, string>> = {
  EADDRINUSE: 'address already in use (is another server running on that port?)',
  EACCES: 'permission denied (ports below 1024 need privileges)',
  EADDRNOTAVAIL: 'address not available on this machine',
  ENOTFOUND: 'host name not found',
  EAI_AGAIN: 'host name could not be resolved',
};

/**
 * Listens, and turns the errors a user can cause (port in use, bad host) into
 * a UsageError that names the flag, so the process exits 2 with one line.
 */
export function listen(server: Server, host: string, port: number, flags: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (error: NodeJS.ErrnoException): void => {
      const why = LISTEN_ERRORS[error.code ?? ''] ?? error.message;
      reject(
        new UsageError(
          ErrorCode.LISTEN_FAILED,
          `cannot listen on ${formatListenAddress(host, port)} (${flags}): ${why}`,
        ),
      );
    };
    server.once('error', onError);
    const onListening = (): void => {
      server.off('error', onError);
      const address = server.address();
      resolve(typeof address === 'object' && address !== null ? address.port : port);
    };
    if (host === '') server.listen(port, onListening);
    else server.listen(port, host, onListening);
  });
}

export function closeServer(server: Server & { closeAllConnections?: () => void }): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    // Idle keep-alive HTTP connections would otherwise hold close() open.
    server.closeAllConnections?.();
  });
}
