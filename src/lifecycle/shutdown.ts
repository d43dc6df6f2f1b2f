import type { Server } from 'node:net';
import type { Logger } from '../log.js';
import type { UpgradeGate } from '../transport/upgrade-gate.js';
import type { WebSocketTransport } from '../transport/websocket-server.js';
import type { Health } from './health.js';
import { closeServer } from './listen.js';

export interface ShutdownParts {
  readonly logger: Logger;
  readonly health: Health;
  readonly gate: UpgradeGate;
  readonly transport: WebSocketTransport;
  readonly webSocketServer: Server;
  readonly metricsServer: Server | undefined;
  readonly timeoutMs: number;
  /** Stops timers and other background work. */
  readonly stopBackground: () => void;
}

/**
 * Graceful shutdown in seed 000's order: stop accepting (readiness 503 and new
 * upgrades 503), close every client with 1001 and wait for the close
 * handshakes, terminate whoever is left at the deadline, close the WebSocket
 * server, then the metrics server.
 */
export async function shutDown(parts: ShutdownParts): Promise<void> {
  const { logger, transport, timeoutMs } = parts;
  const deadline = Date.now() + timeoutMs;
  parts.health.stopAccepting();
  parts.gate.drain();
  parts.stopBackground();
  logger.info('Stopped accepting new connections');

  const open = transport.connections.size;
  if (open > 0) {
    logger.info(`Closing ${open} connection${open === 1 ? '' : 's'} with 1001 (going away)`, {
      connections: open,
      close_code: 1001,
    });
    for (const connection of transport.connections) {
      connection.closeBecause('shutdown', 1001, 'server shutting down');
    }
    const finishedInTime = await Promise.race([
      transport.allClosed().then(() => true),
      delay(deadline - Date.now()).then(() => false),
    ]);
    if (finishedInTime) {
      logger.info('All connections closed');
    } else {
      const left = transport.connections.size;
      logger.warn(
        `Shutdown deadline reached: terminating ${left} connection${left === 1 ? '' : 's'} still open`,
      );
      for (const connection of [...transport.connections]) connection.terminateBecause('shutdown_timeout');
      await transport.allClosed();
    }
  }

  await withDeadline(closeServer(parts.webSocketServer), deadline);
  logger.info('WebSocket server stopped');
  if (parts.metricsServer) {
    await withDeadline(closeServer(parts.metricsServer), deadline);
    logger.info('Metrics server stopped');
  }
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)).unref());
}

function withDeadline(work: Promise<void>, deadline: number): Promise<void> {
  return Promise.race([work, delay(deadline - Date.now())]);
}
