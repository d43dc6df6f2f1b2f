import { type Cluster, Redis, type RedisOptions } from 'ioredis';
import { formatRedisTarget, type RedisSentinelTarget, type RedisServerTarget } from '../config/redis-url.js';
import type { Logger, RateLimitedLog } from '../log.js';
import type { Backplane, BackplaneCounters, BackplaneHealth, BackplaneState } from './backplane.js';
import { PendingPublishes } from './pending-publishes.js';

/**
 * How one message goes out on a room's channel. The default is PUBLISH (and
 * SPUBLISH on Redis Cluster, see cluster.ts); it is the seam where a publish
 * that also appends to the room's history (issue 16: one Lua script, XADD +
 * PUBLISH or SPUBLISH, keys from room-keys.ts) replaces the plain command, on
 * a plain client and on the Cluster client alike (ioredis routes a script by
 * its first key). It must settle once Redis answered: the driver counts the
 * message as published (or lost) then and releases its pending bytes.
 */
export type RedisPublish<Client extends Redis | Cluster = Redis | Cluster> = (
  client: Client,
  channel: string,
  message: Buffer,
) => Promise<unknown>;

const plainPublish: RedisPublish<Redis> = (client, channel, message) => client.publish(channel, message);

export interface RedisBackplaneOptions {
  /** One server, or a primary found through Sentinel (failover: the Sentinels name the new primary on reconnect). */
  readonly target: RedisServerTarget | RedisSentinelTarget;
  readonly counters: BackplaneCounters;
  readonly logger: Logger;
  readonly limitedLog: RateLimitedLog;
  /** Bytes handed to Redis and not yet acknowledged, at most; beyond it publish() fails fast. */
  readonly maxPendingBytes: number;
  /** Longest wait between reconnection attempts; the backoff starts at RECONNECT_DELAY_MIN_MS and doubles. */
  readonly reconnectDelayMaxMs: number;
  /** Called on every (re)connection, once publishing works and every subscription is active. */
  readonly onConnected?: () => void;
  /** PUBLISH unless given (see RedisPublish). */
  readonly publish?: RedisPublish;
}

/** Exponential backoff from RECONNECT_DELAY_MIN_MS, capped at `maxMs`, with jitter. */
export function reconnectDelay(attempt: number, maxMs: number): number {
  const exponential = RECONNECT_DELAY_MIN_MS * 2 ** Math.min(attempt - 1, 20);
  const capped = Math.min(exponential, maxMs);
  // Jitter, so that many nodes losing Redis at once don't reconnect in lockstep.
  return Math.round(capped * (0.8 + Math.random() * 0.2));
}

/**
 * Options of one wshub connection to Redis: fail fast (no offline queue, no
 * resend: what must survive an outage is resent by its owner, e.g. the outbox),
 * and reconnect with `retryStrategy`. Behind Sentinel (issue 18) ioredis asks
 * the Sentinels for the primary on every (re)connect, and with failoverDetector
 * also drops the connection as soon as a Sentinel announces +switch-master, so
 * a failover costs one reconnect, not a timeout.
 */
export function redisConnectionOptions(
  target: RedisServerTarget | RedisSentinelTarget,
  retryStrategy: (attempt: number) => number,
): RedisOptions {
  const where: RedisOptions =
    'kind' in target
      ? {
          sentinels: target.sentinels.map(({ host, port }) => ({ host, port })),
          name: target.masterName,
          role: 'master',
          sentinelTLS: target.tls ? {} : undefined,
          enableTLSForSentinelMode: target.tls,
          sentinelRetryStrategy: retryStrategy,
          failoverDetector: true,
          // A former primary that came back as a replica refuses writes: reconnect (and ask the Sentinels again).
          reconnectOnError: (error) => error.message.startsWith('READONLY'),
        }
      : { host: target.host, port: target.port };
  return {
    ...where,
    username: target.username || undefined,
    password: target.password || undefined,
    db: target.db,
    tls: target.tls ? {} : undefined,
    // RESP2 works with every Redis (and compatible servers) still in use.
    protocol: 2,
    connectTimeout: CONNECT_TIMEOUT_MS,
    enableOfflineQueue: false,
    autoResubscribe: false,
    autoResendUnfulfilledCommands: false,
    // Rejects what was in flight when the connection dropped, at once, so pendingBytes is released.
    maxRetriesPerRequest: 0,
    retryStrategy,
    lazyConnect: true,
  };
}

const RECONNECT_DELAY_MIN_MS = 50;
/** Channels per SUBSCRIBE when a reconnect restores thousands of rooms: bounded commands, few round trips. */
const SUBSCRIBE_BATCH = 1000;
const CONNECT_TIMEOUT_MS = 5000;

/**
 * The Redis pub/sub driver. Two connections, as Redis requires: one in
 * subscriber mode, one to PUBLISH on. Publishing is fail-fast (no offline
 * queue, no resend after a reconnect: that would break at-most-once), and
 * bounded by maxPendingBytes. Subscriptions are restored by this class on
 * every 'ready', so it knows exactly when the node is connected again.
 */
export class RedisBackplane implements Backplane {
  private readonly publisher: Redis;
  private readonly subscriber: Redis;
  private readonly handlers = new Map<string, (message: Buffer) => void>();
  private readonly where: string;
  private subscriberReady = false;
  private subscribeWaiters: Array<() => void> = [];
  private readonly pending: PendingPublishes;
  private state: BackplaneState = 'connecting';
  private lastError = '';
  private disconnectedAt = 0;
  private closing: Promise<void> | undefined;
  /** Address of the primary the subscriber last connected to (a change behind Sentinel is a failover). */
  private primary = '';

  constructor(private readonly options: RedisBackplaneOptions) {
    this.where = formatRedisTarget(options.target);
    this.pending = new PendingPublishes(
      options.maxPendingBytes,
      options.counters,
      options.limitedLog,
      this.where,
    );
    const { target } = options;
    const common = redisConnectionOptions(target, (attempt) => this.reconnectDelay(attempt));
    this.publisher = new Redis({ ...common, connectionName: 'wshub-publisher' });
    this.subscriber = new Redis({ ...common, connectionName: 'wshub-subscriber' });
    this.publisher.on('ready', this.onConnectionChange);
    this.publisher.on('close', this.onConnectionChange);
    this.publisher.on('error', this.onError);
    this.subscriber.on('ready', this.onSubscriberReady);
    this.subscriber.on('close', this.onSubscriberClose);
    this.subscriber.on('error', this.onError);
    this.subscriber.on('messageBuffer', this.onMessage);
    reconnectWhenEnded(this.publisher, (attempt) => this.reconnectDelay(attempt));
    reconnectWhenEnded(this.subscriber, (attempt) => this.reconnectDelay(attempt));
    // Failures are reported through 'error' and retried by retryStrategy.
    this.publisher.connect().catch(() => {});
    this.subscriber.connect().catch(() => {});
  }

  publish(channel: string, message: Buffer): boolean {
    if (this.publisher.status !== 'ready' || this.state === 'closed') {
      return this.pending.refuse(
        this.state === 'closed' ? 'the backplane is closed' : 'Redis is not connected',
      );
    }
    return this.pending.send(message, () =>
      (this.options.publish ?? plainPublish)(this.publisher, channel, message),
    );
  }

  subscribe(channel: string, onMessage: (message: Buffer) => void): Promise<void> {
    this.handlers.set(channel, onMessage);
    if (this.state === 'closed') return Promise.resolve();
    // Before 'ready' the whole set is subscribed by subscribeAll(); after it, each channel on its own.
    if (this.subscriber.status !== 'ready') {
      return new Promise<void>((resolve) => this.subscribeWaiters.push(resolve));
    }
    return this.subscriber.subscribe(channel).then(
      () => {},
      (error: Error) => {
        this.onSubscribeFailed(error);
        return new Promise<void>((resolve) => this.subscribeWaiters.push(resolve));
      },
    );
  }

  async unsubscribe(channel: string): Promise<void> {
    if (!this.handlers.delete(channel) || this.state === 'closed') return;
    // Ordered after any SUBSCRIBE of the channel on the same connection; a reconnect subscribes only what is left.
    if (this.subscriber.status !== 'ready') return;
    await this.subscriber.unsubscribe(channel).catch(() => {});
  }

  health(): BackplaneHealth {
    return { state: this.state, detail: this.state === 'connected' ? '' : this.lastError };
  }

  close(): Promise<void> {
    this.closing ??= this.shutDown();
    return this.closing;
  }

  private async shutDown(): Promise<void> {
    this.state = 'closed';
    this.resolveSubscribeWaiters();
    await Promise.all([quit(this.publisher), quit(this.subscriber)]);
  }

  private reconnectDelay(attempt: number): number {
    return reconnectDelay(attempt, this.options.reconnectDelayMaxMs);
  }

  private readonly onSubscriberReady = (): void => {
    const stream = this.subscriber.stream as { remoteAddress?: string; remotePort?: number } | undefined;
    const primary = `${stream?.remoteAddress ?? ''}:${stream?.remotePort ?? ''}`;
    if ('kind' in this.options.target && this.primary !== '' && primary !== this.primary) {
      this.options.counters.topologyChanges++;
      this.options.logger.info(
        `Backplane: Sentinel names a new primary for ${this.options.target.masterName} (failover); resubscribing there`,
      );
    }
    this.primary = primary;
    this.subscribeAll();
  };

  private subscribeAll(): void {
    const channels = [...this.handlers.keys()];
    const batches: Array<Promise<unknown>> = [];
    for (let i = 0; i < channels.length; i += SUBSCRIBE_BATCH) {
      batches.push(this.subscriber.subscribe(...channels.slice(i, i + SUBSCRIBE_BATCH)));
    }
    Promise.all(batches).then(() => {
      if (this.subscriber.status !== 'ready') return;
      this.subscriberReady = true;
      this.onConnectionChange();
    }, this.onSubscribeFailed);
  }

  private readonly onSubscribeFailed = (error: Error): void => {
    this.onError(new Error(`SUBSCRIBE failed: ${error.message}`));
    // A subscriber that cannot subscribe is useless: drop the connection and let the backoff retry.
    if (this.subscriber.status === 'ready') this.subscriber.disconnect(true);
  };

  private readonly onSubscriberClose = (): void => {
    this.subscriberReady = false;
    this.onConnectionChange();
  };

  private readonly onError = (error: Error): void => {
    this.lastError = error.message;
    this.options.limitedLog.log(
      'backplane_error',
      'warn',
      `Backplane error (${this.where}): ${error.message}`,
    );
  };

  private readonly onMessage = (channel: Buffer, message: Buffer): void => {
    const handler = this.handlers.get(channel.toString('utf8'));
    if (handler === undefined) return;
    this.options.counters.received++;
    handler(message);
  };

  /** Recomputes the state after any connection event and logs transitions once. */
  private readonly onConnectionChange = (): void => {
    if (this.state === 'closed') return;
    const previous = this.state;
    const connected = this.publisher.status === 'ready' && this.subscriberReady;
    if (connected) {
      this.state = 'connected';
      if (previous === 'connected') return;
      this.lastError = '';
      if (previous === 'disconnected') {
        this.options.counters.reconnects++;
        const seconds = ((performance.now() - this.disconnectedAt) / 1000).toFixed(1);
        this.options.logger.info(
          `Backplane reconnected to ${this.where} after ${seconds}s; relaying between nodes again`,
        );
      } else {
        this.options.logger.info(`Backplane connected to ${this.where}`);
      }
      this.resolveSubscribeWaiters();
      this.options.onConnected?.();
    } else if (previous === 'connected') {
      this.state = 'disconnected';
      this.disconnectedAt = performance.now();
      this.lastError ||= 'connection closed';
      this.options.logger.warn(
        `Backplane disconnected from ${this.where} (${this.lastError}); local delivery continues, ` +
          'messages for other nodes are dropped until it reconnects',
      );
    }
  };

  private readonly resolveSubscribeWaiters = (): void => {
    const waiters = this.subscribeWaiters;
    this.subscribeWaiters = [];
    for (const resolve of waiters) resolve();
  };
}

const QUIT_TIMEOUT_MS = 1000;

/** Connections quit() is closing: their 'end' is wanted. */
const quitting = new WeakSet<Redis | Cluster>();

/**
 * Connects again, after the backoff, a connection that ioredis gave up on. Behind
 * Sentinel ioredis can end a connection for good in the middle of a failover: the
 * failover detector (+switch-master) disconnects the connector while a reconnect is
 * asking the Sentinels, that reconnect fails with "Connection is closed" and the
 * client goes to 'end' without calling retryStrategy (seen in test/backplane-redis-sentinel:
 * one of two nodes stayed disconnected for good, about one failover in two).
 */
export function reconnectWhenEnded(connection: Redis, delay: (attempt: number) => number): void {
  let attempt = 0;
  connection.on('ready', () => {
    attempt = 0;
  });
  connection.on('end', () => {
    if (quitting.has(connection)) return;
    attempt++;
    setTimeout(() => {
      if (quitting.has(connection) || connection.status !== 'end') return;
      connection.connect().catch(() => {});
    }, delay(attempt)).unref();
  });
}

/** QUIT lets Redis finish the PUBLISHes already sent; an unresponsive server gets the socket closed instead. */
export async function quit(connection: Redis | Cluster): Promise<void> {
  quitting.add(connection);
  if (connection.status === 'ready') {
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, QUIT_TIMEOUT_MS);
    });
    await Promise.race([connection.quit().catch(() => {}), timedOut]);
    clearTimeout(timer);
  }
  connection.disconnect(false);
}
