import { performance } from 'node:perf_hooks';
import { DISCONNECT } from '../disconnects.js';
import type { RateLimitedLog } from '../log.js';
import type { Stats } from '../stats.js';
import { type Connection, connectionFields } from './connection.js';
import { OPEN } from './writer.js';

export interface KeepaliveOptions {
  /** Ping every open connection this often; 0 sends no pings. */
  readonly pingIntervalMs: number;
  /** Terminate a connection whose pong has not arrived this long after the ping. */
  readonly pingTimeoutMs: number;
  /** Close a connection that sent no data message for this long; 0 never does. */
  readonly idleTimeoutMs: number;
  /** Close a connection after about this long (±LIFETIME_JITTER); 0 never does. */
  readonly maxLifetimeMs: number;
  /** Connections carry token expiry times (--auth=jwt): sweep at least every second to close them on time. */
  readonly tokenExpiry?: boolean;
}

/** How late, at most, a connection whose token has expired is closed. */
export const TOKEN_EXPIRY_SWEEP_MS = 1000;

/**
 * Lifetimes are spread by ±10%, so connections opened together (after a deploy or a
 * scale-out) do not all reconnect in the same instant.
 */
export const LIFETIME_JITTER = 0.1;

/** When a connection opened at `now` reaches its lifetime, with jitter from `random` in [0, 1). */
export function lifetimeDeadline(
  now: number,
  lifetimeMs: number,
  random: () => number = Math.random,
): number {
  return now + lifetimeMs * (1 - LIFETIME_JITTER + 2 * LIFETIME_JITTER * random());
}

/**
 * How often the single sweep runs: a quarter of the shortest configured period,
 * between 25 ms and 1 s. Deadlines are therefore met up to one tick late, never early.
 */
export function sweepIntervalMs(options: KeepaliveOptions): number {
  const periods = [options.idleTimeoutMs, options.maxLifetimeMs];
  if (options.tokenExpiry) periods.push(4 * TOKEN_EXPIRY_SWEEP_MS);
  if (options.pingIntervalMs > 0) periods.push(options.pingIntervalMs, options.pingTimeoutMs);
  const shortest = Math.min(...periods.filter((period) => period > 0));
  if (!Number.isFinite(shortest)) return 0;
  return Math.min(1000, Math.max(25, Math.floor(shortest / 4)));
}

/**
 * Keepalive, idle timeout and connection lifetime for every connection, driven
 * by ONE interval timer that sweeps the open connections; per-connection state
 * is a few numbers on the Connection, so there is no timer or closure per
 * connection. Pings detect dead peers and keep proxies from closing quiet
 * connections (their idle timeouts are typically 60 s).
 */
export class Keepalive {
  private timer: NodeJS.Timeout | undefined;
  private readonly tickMs: number;

  constructor(
    private readonly options: KeepaliveOptions,
    private readonly connections: Iterable<Connection>,
    private readonly stats: Stats,
    private readonly limitedLog: RateLimitedLog,
    /** Closes a connection that reached its lifetime (1001; a wshub.v1 client is told to reconnect first). */
    private readonly lifetimeReached: (connection: Connection) => void,
  ) {
    this.tickMs = sweepIntervalMs(options);
  }

  start(): void {
    if (this.tickMs === 0 || this.timer !== undefined) return;
    this.timer = setInterval(this.sweep, this.tickMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Sets up a newly accepted connection's deadlines. */
  track(connection: Connection): void {
    const now = performance.now();
    const { pingIntervalMs, maxLifetimeMs, idleTimeoutMs } = this.options;
    // Only the deadlines in use are stored: a double in a field is a 16-byte box per connection.
    if (idleTimeoutMs > 0) connection.lastActiveAt = now;
    // The first ping comes after half to all of an interval, so pings of connections
    // opened in a burst do not stay bunched together.
    if (pingIntervalMs > 0) connection.nextPingAt = now + pingIntervalMs * (0.5 + 0.5 * Math.random());
    if (maxLifetimeMs > 0) connection.expiresAt = lifetimeDeadline(now, maxLifetimeMs);
  }

  /**
   * Any pong proves the peer alive (RFC 6455 §5.5.3 allows unsolicited ones);
   * one that answers our ping also gives a round-trip sample.
   */
  ponged(connection: Connection): void {
    if (connection.pingSentAt < 0) return;
    const now = performance.now();
    this.stats.pingRtt.observe((now - connection.pingSentAt) / 1000);
    connection.nextPingAt = connection.pingSentAt + this.options.pingIntervalMs;
    connection.pingSentAt = -1;
  }

  readonly sweep = (): void => {
    const { pingIntervalMs, pingTimeoutMs, idleTimeoutMs } = this.options;
    const now = performance.now();
    for (const connection of this.connections) {
      if (connection.readyState !== OPEN) continue;
      const guard = connection.guard;
      // Issue 15: a token is good until its exp; the client reconnects with a fresh one.
      if (guard !== undefined && guard.expiresAt > 0 && now >= guard.expiresAt) {
        this.limitedLog.log(
          'token_expired',
          'info',
          `WebSocket token expired: closing ${connection.peer} with 1008 (user ${guard.user})`,
          { ...connectionFields(connection), reason: 'token_expired', user: guard.user },
        );
        connection.disconnect(DISCONNECT.token_expired);
        continue;
      }
      if (connection.pingSentAt >= 0) {
        if (now - connection.pingSentAt >= pingTimeoutMs) {
          this.limitedLog.log(
            'ping_timeout',
            'warn',
            `WebSocket ping timeout: ${connection.peer} did not answer a ping within ${pingTimeoutMs}ms; terminating`,
            { ...connectionFields(connection), reason: 'ping_timeout' },
          );
          connection.disconnect(DISCONNECT.ping_timeout);
          continue;
        }
      } else if (pingIntervalMs > 0 && now >= connection.nextPingAt) {
        connection.pingSentAt = performance.now();
        connection.ping();
      }
      if (idleTimeoutMs > 0) {
        // Only data messages count as activity: browsers answer pings by themselves,
        // so counting pongs would keep every open tab "active" forever.
        if (connection.messagesReceived !== connection.messagesSeen) {
          connection.messagesSeen = connection.messagesReceived;
          connection.lastActiveAt = now;
        } else if (now - connection.lastActiveAt >= idleTimeoutMs) {
          this.limitedLog.log(
            'idle_timeout',
            'info',
            `WebSocket idle timeout: closing ${connection.peer} (no message for ${idleTimeoutMs}ms)`,
            { ...connectionFields(connection), reason: 'idle_timeout' },
          );
          connection.disconnect(DISCONNECT.idle_timeout);
          continue;
        }
      }
      if (connection.expiresAt > 0 && now >= connection.expiresAt) {
        this.limitedLog.log(
          'max_lifetime',
          'info',
          `WebSocket connection lifetime reached: closing ${connection.peer} so it reconnects`,
          { ...connectionFields(connection), reason: 'max_lifetime' },
        );
        this.lifetimeReached(connection);
      }
    }
  };
}
