import type { Server } from 'node:net';
import { formatDuration } from '../config/duration.js';
import { DISCONNECT } from '../disconnects.js';
import type { Logger } from '../log.js';
import type { Stats } from '../stats.js';
import type { Connection } from '../transport/connection.js';
import type { Http2Front } from '../transport/http2.js';
import type { UpgradeGate } from '../transport/upgrade-gate.js';
import { reconnectWithinMs, type WebSocketTransport } from '../transport/websocket-server.js';
import type { Health } from './health.js';
import { closeServer } from './listen.js';

export interface ShutdownParts {
  readonly logger: Logger;
  readonly health: Health;
  readonly gate: UpgradeGate;
  readonly transport: WebSocketTransport;
  readonly webSocketServer: Server;
  /** --http2: its connections get GOAWAY before their WebSocket streams are closed. */
  readonly http2?: Http2Front | undefined;
  readonly metricsServer: Server | undefined;
  readonly timeoutMs: number;
  /** --drain-delay: readiness is 503 but new upgrades are still served for this long (0: none). */
  readonly drainDelayMs?: number;
  /** --drain-window: open connections are closed spread over this long (0: all at once). */
  readonly drainWindowMs?: number;
  readonly stats: Stats;
  /** Stops timers and other background work. */
  readonly stopBackground: () => void;
}

/**
 * Graceful shutdown (issue 17: drains without reconnect storms). On the signal:
 * 1. readiness turns 503 at once, but new upgrades are still served for `drainDelayMs`
 *    (--drain-delay), so load balancers take the instance out before anyone is refused;
 * 2. then new upgrades get 503, HTTP/2 connections get GOAWAY, and the open connections are
 *    closed with 1001 spread evenly over `drainWindowMs` (--drain-window) with jitter, so their
 *    clients do not all reconnect to the remaining replicas at once;
 * 3. `timeoutMs` (--shutdown-timeout) after the last close frame, whoever is left is terminated;
 *    then the WebSocket server, then the metrics server close.
 * With both durations 0 (the defaults) this is seed 000's shutdown: every client gets 1001 at
 * once and the deadline is `timeoutMs` after the signal.
 */
export async function shutDown(parts: ShutdownParts): Promise<void> {
  const { logger, transport, timeoutMs, stats } = parts;
  const drainDelayMs = parts.drainDelayMs ?? 0;
  const drainWindowMs = parts.drainWindowMs ?? 0;
  parts.health.stopAccepting();
  if (drainDelayMs > 0) {
    stats.shutdownPhase = SHUTDOWN_PHASES.delay;
    logger.info(
      `Draining: /readyz answers 503; new connections are still accepted for ${formatDuration(drainDelayMs)} (--drain-delay)`,
      { phase: 'drain_delay', drain_delay_ms: drainDelayMs },
    );
    const acceptedBefore = stats.connectionsTotal;
    await delay(drainDelayMs);
    const accepted = stats.connectionsTotal - acceptedBefore;
    stats.acceptedWhileDraining += accepted;
    logger.info(`Drain delay over: ${accepted} connection${accepted === 1 ? '' : 's'} accepted during it`, {
      phase: 'drain_delay',
      connections: accepted,
    });
  }
  parts.gate.drain();
  parts.stopBackground();
  stats.shutdownPhase = SHUTDOWN_PHASES.closing;
  logger.info('Stopped accepting new connections');

  const http2 = parts.http2;
  if (http2 !== undefined && http2.sessionCount > 0) {
    // RFC 9113 §6.8: no new stream on these connections; each closes once its streams have ended.
    const sessions = http2.sessionCount;
    logger.info(`Sent GOAWAY to ${sessions} HTTP/2 connection${sessions === 1 ? '' : 's'}`, {
      http2_connections: sessions,
    });
  }
  http2?.goAway();
  const open = transport.connections.size;
  if (open > 0) {
    const spread = drainWindowMs > 0 && open > 1;
    logger.info(
      `Closing ${open} connection${open === 1 ? '' : 's'} with 1001 (going away)${spread ? ` spread over ${formatDuration(drainWindowMs)} (--drain-window)` : ''}`,
      { connections: open, close_code: 1001, drain_window_ms: spread ? drainWindowMs : 0 },
    );
    const framesBefore = stats.reconnectFramesSent.shutdown;
    const withinMs = reconnectWithinMs(drainWindowMs > 0 ? drainWindowMs / open : 0);
    const goAway = (connection: Connection): void =>
      transport.goAway(connection, DISCONNECT.shutdown, withinMs);
    if (spread) await closeSpread([...transport.connections], drainWindowMs, goAway);
    else for (const connection of transport.connections) goAway(connection);
    const told = stats.reconnectFramesSent.shutdown - framesBefore;
    if (told > 0) {
      logger.info(
        `Told ${told} wshub.v1 client${told === 1 ? '' : 's'} to reconnect elsewhere within ${formatDuration(withinMs)} before their 1001`,
        { connections: told, within_ms: withinMs },
      );
    }
    const deadline = performance.now() + timeoutMs;
    stats.shutdownPhase = SHUTDOWN_PHASES.waiting;
    const finishedInTime = await Promise.race([
      transport.allClosed().then(() => true),
      delay(deadline - performance.now()).then(() => false),
    ]);
    if (finishedInTime) {
      logger.info('All connections closed');
    } else {
      const left = transport.connections.size;
      logger.warn(
        `Shutdown deadline reached: terminating ${left} connection${left === 1 ? '' : 's'} still open`,
        { connections: left },
      );
      for (const connection of [...transport.connections]) connection.disconnect(DISCONNECT.shutdown_timeout);
      await transport.allClosed();
    }
  }
  const deadline = performance.now() + timeoutMs;

  // HTTP/2 connections still open carry no WebSocket now (plain requests that never ended).
  http2?.destroyAll();
  await withDeadline(closeServer(parts.webSocketServer), deadline);
  logger.info('WebSocket server stopped');
  if (parts.metricsServer) {
    await withDeadline(closeServer(parts.metricsServer), deadline);
    logger.info('Metrics server stopped');
  }
}

/** Values of the wshub_shutdown_phase gauge. */
export const SHUTDOWN_PHASES = { serving: 0, delay: 1, closing: 2, waiting: 3 } as const;

/**
 * Closes `connections` one by one over `windowMs`: the i-th at (i + u) × windowMs / n with u
 * uniform in [0, 1), so the closes are spread evenly (never more than two in one slot) and two
 * replicas draining at once do not close in lockstep. One timer at a time, not one per connection;
 * each wake-up closes every connection whose time has come.
 */
async function closeSpread(
  connections: readonly Connection[],
  windowMs: number,
  closeGoingAway: (connection: Connection) => void,
): Promise<void> {
  const slot = windowMs / connections.length;
  const due = connections.map((_, index) => (index + Math.random()) * slot);
  const started = performance.now();
  let next = 0;
  while (next < connections.length) {
    const elapsed = performance.now() - started;
    while (next < connections.length && (due[next] as number) <= elapsed) {
      closeGoingAway(connections[next] as Connection);
      next++;
    }
    if (next < connections.length) {
      await delay(Math.max(MIN_SPREAD_STEP_MS, (due[next] as number) - (performance.now() - started)));
    }
  }
}

/** Timers are not precise below a few milliseconds: closes due within this step go out together. */
const MIN_SPREAD_STEP_MS = 5;

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)).unref());
}

function withDeadline(work: Promise<void>, deadline: number): Promise<void> {
  return Promise.race([work, delay(deadline - performance.now())]);
}
