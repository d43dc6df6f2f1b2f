import { Cluster, type ClusterOptions, Redis, type RedisOptions } from 'ioredis';
import { formatRedisTarget, type RedisClusterTarget } from '../config/redis-url.js';
import type { Logger, RateLimitedLog } from '../log.js';
import type {
  Backplane,
  BackplaneCounters,
  BackplaneHealth,
  BackplaneState,
  ShardHealth,
} from './backplane.js';
import { keySlot, SLOT_COUNT } from './key-slot.js';
import { PendingPublishes } from './pending-publishes.js';
import { type RedisPublish, reconnectDelay } from './redis.js';

export interface RedisClusterBackplaneOptions {
  readonly target: RedisClusterTarget;
  readonly counters: BackplaneCounters;
  readonly logger: Logger;
  readonly limitedLog: RateLimitedLog;
  /** Bytes handed to Redis and not yet acknowledged, at most; beyond it publish() fails fast. */
  readonly maxPendingBytes: number;
  /** Longest wait between reconnection attempts (backoff from 50 ms, doubling, with jitter). */
  readonly reconnectDelayMaxMs: number;
  /** SPUBLISH unless given (see RedisPublish: the seam for a publish that also keeps history). */
  readonly publish?: RedisPublish<Cluster>;
  /** Called whenever every shard is connected and subscribed again (and the first time). */
  readonly onConnected?: () => void;
}

/**
 * Options of ioredis's Cluster client as wshub uses it (the backplane's publisher, the history
 * scripts of issue 16): the slot map refreshed on MOVED, lost nodes and every few seconds, commands
 * queued only while a master's connection opens (callers bound what they hand over).
 */
export function clusterClientOptions(
  target: RedisClusterTarget,
  reconnectDelayMaxMs: number,
  connectionName: string,
): ClusterOptions {
  return {
    // ioredis connects to a master on its first command: without a queue every command behind the
    // first would be refused until then. Callers bound what they queue (maxPendingBytes, the outbox)
    // and the backplane publishes only while the shard is known up, so it is no outage buffer.
    redisOptions: nodeOptions(target, connectionName),
    enableOfflineQueue: true,
    enableReadyCheck: true,
    scaleReads: 'master',
    slotsRefreshInterval: SLOTS_REFRESH_INTERVAL_MS,
    // No resend of a command whose connection closed (Redis may have run it: a resend could publish
    // twice); refusals Redis answered without running the command (CLUSTERDOWN, TRYAGAIN, MOVED) are retried.
    retryDelayOnFailover: 0,
    retryDelayOnClusterDown: 100,
    retryDelayOnTryAgain: 100,
    clusterRetryStrategy: (attempt) => reconnectDelay(attempt, reconnectDelayMaxMs),
    lazyConnect: true,
    // TLS certificates name hosts, CLUSTER SLOTS answers with addresses: keep the address as the TLS server name's source.
    ...(target.tls ? { dnsLookup: (address, callback) => callback(null, address) } : {}),
  };
}

function nodeOptions(
  target: RedisClusterTarget,
  connectionName: string,
): Omit<RedisOptions, 'enableOfflineQueue'> {
  return {
    username: target.username || undefined,
    password: target.password || undefined,
    tls: target.tls ? {} : undefined,
    // RESP2: SSUBSCRIBE pushes arrive as plain replies, the way ioredis's subscriber mode reads them.
    protocol: 2,
    connectTimeout: CONNECT_TIMEOUT_MS,
    autoResubscribe: false,
    autoResendUnfulfilledCommands: false,
    // Rejects what was in flight when the connection dropped, at once, so pending bytes are released.
    maxRetriesPerRequest: 0,
    connectionName,
  };
}

const CONNECT_TIMEOUT_MS = 5000;
/** While a shard is down, how often the slot map is asked again (a replica's promotion shows there). */
const TOPOLOGY_POLL_MS = 250;
/** Background refresh of the slot map when everything is up (resharding, a failover seen by no connection). */
const SLOTS_REFRESH_INTERVAL_MS = 5000;
/** Slot ranges shown in a shard's label at most; more are summarised so the label stays short and bounded. */
const LABEL_RANGES = 3;

const sharedPublish: RedisPublish<Cluster> = (client, channel, message) => client.spublish(channel, message);

/** One shard as this node sees it: a subscriber connection to the master that owns its slots. */
interface Shard {
  /** host:port of the master: internal only (never a label, it changes on failover). */
  readonly address: string;
  /** The slot ranges it owns, e.g. "0-5460": the bounded name in /readyz and the metric label. */
  label: string;
  readonly connection: Redis;
  /** Connected and every channel below subscribed. */
  ready: boolean;
  /** Was ready once: a later ready is a reconnection. */
  everReady: boolean;
  readonly channels: Set<string>;
  lastError: string;
  downSince: number;
}

interface Subscription {
  onMessage: (message: Buffer) => void;
  readonly slot: number;
  shard: Shard | undefined;
  /** subscribe() callers waiting for the channel to be active. */
  waiters: Array<() => void>;
}

/**
 * The Redis Cluster driver (issue 18) with sharded pub/sub: a room's channel
 * `<prefix>:{<room>}` hashes to the room's slot, SPUBLISH sends a message
 * only to the shard that owns that slot, and a node SSUBSCRIBEs each room's
 * channel on that shard. Traffic of a room stays on one shard, so adding
 * shards adds pub/sub capacity (classic PUBLISH in a cluster is copied to
 * every node of every shard).
 *
 * ioredis's Cluster client keeps the slot map (CLUSTER SLOTS, refreshed on
 * MOVED, on lost nodes and periodically) and routes SPUBLISH by slot; this
 * class keeps one subscriber connection per master, built from that map, so it
 * knows each shard's state exactly: which shards are reachable (/readyz, the
 * shard gauge), and that a publish to a room on a dead shard fails fast
 * (counted) while rooms on the other shards go on untouched.
 *
 * Failover: the dead master's subscriber connection closes; the shard is
 * down, its rooms pause (their publishes fail fast, counted); the slot map is
 * polled every TOPOLOGY_POLL_MS until a replica is promoted, then the shard's
 * channels move to a connection to the new master and its rooms resume. That
 * is a topology change (counted, logged). The guarantees of backplane.ts hold
 * per channel; what was published to the shard during the outage is lost
 * (at most once) and shows as gaps on the receivers.
 */
export class RedisClusterBackplane implements Backplane {
  private readonly cluster: Cluster;
  private readonly where: string;
  private readonly subscriptions = new Map<string, Subscription>();
  private readonly shards = new Map<string, Shard>();
  /** Master address per slot; '' while unknown. */
  private slotOwner: string[] = new Array<string>(SLOT_COUNT).fill('');
  private readonly pending: PendingPublishes;
  private state: BackplaneState = 'connecting';
  private lastError = '';
  private closed = false;
  private closing: Promise<void> | undefined;
  private pollTimer: NodeJS.Timeout | undefined;
  private connectedOnce = false;

  constructor(private readonly options: RedisClusterBackplaneOptions) {
    const { target } = options;
    this.where = formatRedisTarget(target);
    this.pending = new PendingPublishes(
      options.maxPendingBytes,
      options.counters,
      options.limitedLog,
      this.where,
    );
    this.cluster = new Cluster(
      target.nodes.map(({ host, port }) => ({ host, port })),
      clusterClientOptions(target, options.reconnectDelayMaxMs, 'wshub-publisher'),
    );
    this.cluster.on('ready', this.onTopology);
    this.cluster.on('refresh', this.onTopology);
    this.cluster.on('close', this.updateState);
    this.cluster.on('end', this.updateState);
    this.cluster.on('error', this.onClusterError);
    this.cluster.on('node error', this.onClusterError);
    this.cluster.connect().catch(() => {});
  }

  publish(channel: string, message: Buffer): boolean {
    if (this.closed || this.cluster.status !== 'ready') {
      return this.pending.refuse(
        this.closed ? 'the backplane is closed' : 'the Redis Cluster is not connected',
      );
    }
    const shard = this.shards.get(this.slotOwner[keySlot(channel)] ?? '');
    if (shard === undefined || !shard.ready) {
      return this.pending.refuse(`shard ${shard?.label ?? 'of this room'} is unreachable`);
    }
    return this.pending.send(message, () =>
      (this.options.publish ?? sharedPublish)(this.cluster, channel, message),
    );
  }

  subscribe(channel: string, onMessage: (message: Buffer) => void): Promise<void> {
    if (this.closed) return Promise.resolve();
    const existing = this.subscriptions.get(channel);
    if (existing !== undefined) {
      existing.onMessage = onMessage;
      return existing.waiters.length === 0
        ? Promise.resolve()
        : new Promise<void>((resolve) => existing.waiters.push(resolve));
    }
    const subscription: Subscription = { onMessage, slot: keySlot(channel), shard: undefined, waiters: [] };
    this.subscriptions.set(channel, subscription);
    const active = new Promise<void>((resolve) => subscription.waiters.push(resolve));
    const shard = this.shards.get(this.slotOwner[subscription.slot] ?? '');
    // Without a slot map yet, onTopology() places it.
    if (shard !== undefined) this.place(channel, subscription, shard);
    return active;
  }

  async unsubscribe(channel: string): Promise<void> {
    const subscription = this.subscriptions.get(channel);
    if (subscription === undefined) return;
    this.subscriptions.delete(channel);
    resolveAll(subscription);
    const shard = subscription.shard;
    if (shard === undefined) return;
    shard.channels.delete(channel);
    // Ordered after the SSUBSCRIBE on the same connection; a reconnect subscribes only what is left.
    if (shard.connection.status === 'ready') await shard.connection.sunsubscribe(channel).catch(() => {});
  }

  health(): BackplaneHealth {
    const shards: ShardHealth[] = [...this.shards.values()]
      .sort((a, b) => firstSlot(a.label) - firstSlot(b.label))
      .map((shard) => ({
        shard: shard.label,
        state: shard.ready ? 'connected' : 'disconnected',
        detail: shard.ready ? '' : shard.lastError || 'connecting',
      }));
    const down = shards.filter((shard) => shard.state !== 'connected');
    let detail = '';
    if (this.state !== 'connected') {
      detail =
        down.length > 0 && down.length < shards.length
          ? `${shards.length - down.length} of ${shards.length} shards connected; ` +
            down.map((shard) => `shard ${shard.shard} unreachable (${shard.detail})`).join('; ')
          : this.lastError || down[0]?.detail || 'connecting';
    } else {
      detail = '';
    }
    return { state: this.state, detail, shards };
  }

  close(): Promise<void> {
    this.closing ??= this.shutDown();
    return this.closing;
  }

  private async shutDown(): Promise<void> {
    this.closed = true;
    this.state = 'closed';
    this.stopPolling();
    for (const subscription of this.subscriptions.values()) resolveAll(subscription);
    const shards = [...this.shards.values()];
    this.shards.clear();
    for (const shard of shards) shard.connection.disconnect(false);
    await Promise.race([
      this.cluster.quit().catch(() => {}),
      new Promise((resolve) => setTimeout(resolve, 1000).unref()),
    ]);
    this.cluster.disconnect(false);
  }

  private reconnectDelay(attempt: number): number {
    return reconnectDelay(attempt, this.options.reconnectDelayMaxMs);
  }

  /** The slot map changed or was confirmed: shards follow it (new masters get a connection, channels move). */
  private readonly onTopology = (): void => {
    if (this.closed) return;
    const slots = this.cluster.slots;
    const owner = new Array<string>(SLOT_COUNT);
    const ranges = new Map<string, Array<[number, number]>>();
    for (let slot = 0; slot < SLOT_COUNT; slot++) {
      const address = slots[slot]?.[0] ?? '';
      owner[slot] = address;
      if (address === '') continue;
      let list = ranges.get(address);
      if (list === undefined) {
        list = [];
        ranges.set(address, list);
      }
      const last = list.at(-1);
      if (last !== undefined && last[1] === slot - 1) last[1] = slot;
      else list.push([slot, slot]);
    }
    const changed = owner.some((address, slot) => address !== this.slotOwner[slot]);
    if (!changed) {
      this.updateState();
      return;
    }
    const hadMap = this.slotOwner.some((address) => address !== '');
    this.slotOwner = owner;
    if (hadMap) {
      this.options.counters.topologyChanges++;
      this.options.logger.info(
        `Backplane: the Redis Cluster's slot map changed (${ranges.size} masters: ${[...ranges.entries()]
          .map(([address, list]) => `${rangeLabel(list)} on ${address}`)
          .join(', ')}); following it`,
      );
    }
    for (const [address, list] of ranges) {
      const shard = this.shards.get(address) ?? this.openShard(address);
      shard.label = rangeLabel(list);
    }
    for (const [address, shard] of this.shards) {
      if (ranges.has(address)) continue;
      // No longer a master of anything (failed over, or resharded away): its channels move below.
      this.shards.delete(address);
      shard.connection.disconnect(false);
    }
    for (const [channel, subscription] of this.subscriptions) {
      const shard = this.shards.get(owner[subscription.slot] ?? '');
      if (shard !== undefined && shard !== subscription.shard) this.place(channel, subscription, shard);
    }
    this.updateState();
  };

  /** Moves a channel to the shard that owns its slot, subscribing there once it is connected. */
  private place(channel: string, subscription: Subscription, shard: Shard): void {
    const previous = subscription.shard;
    if (previous !== undefined && previous !== shard) {
      previous.channels.delete(channel);
      if (previous.connection.status === 'ready') previous.connection.sunsubscribe(channel).catch(() => {});
    }
    subscription.shard = shard;
    shard.channels.add(channel);
    if (shard.connection.status !== 'ready') return;
    shard.connection.ssubscribe(channel).then(
      () => {
        if (this.subscriptions.get(channel) === subscription) resolveAll(subscription);
      },
      (error: Error) => this.onShardSubscribeFailed(shard, error),
    );
  }

  private openShard(address: string): Shard {
    const separator = address.lastIndexOf(':');
    const connection = new Redis({
      ...nodeOptions(this.options.target, 'wshub-ssubscriber'),
      enableOfflineQueue: false,
      host: address.slice(0, separator),
      port: Number(address.slice(separator + 1)),
      retryStrategy: (attempt) => this.reconnectDelay(attempt),
      lazyConnect: true,
    });
    const shard: Shard = {
      address,
      label: '',
      connection,
      ready: false,
      everReady: false,
      channels: new Set(),
      lastError: '',
      downSince: performance.now(),
    };
    this.shards.set(address, shard);
    connection.on('ready', () => this.onShardReady(shard));
    connection.on('close', () => this.onShardClose(shard));
    connection.on('error', (error: Error) => {
      shard.lastError = error.message;
      this.options.limitedLog.log(
        'backplane_error',
        'warn',
        `Backplane error (${this.where}, shard ${shard.label}): ${error.message}`,
      );
    });
    // An unsolicited SUNSUBSCRIBE (slot migrated) or a MOVED answer to SSUBSCRIBE: the map is stale.
    connection.on('moved', () => this.cluster.refreshSlotsCache());
    connection.on('smessageBuffer', (channel: Buffer, message: Buffer) => {
      const subscription = this.subscriptions.get(channel.toString('utf8'));
      if (subscription === undefined || subscription.shard !== shard) return;
      this.options.counters.received++;
      subscription.onMessage(message);
    });
    connection.connect().catch(() => {});
    return shard;
  }

  private onShardReady(shard: Shard): void {
    if (this.shards.get(shard.address) !== shard) return;
    const channels = [...shard.channels];
    // SSUBSCRIBE takes channels of one slot only; each room is its own slot, so one command per channel (pipelined).
    Promise.all(channels.map((channel) => shard.connection.ssubscribe(channel))).then(
      () => {
        if (shard.connection.status !== 'ready' || this.shards.get(shard.address) !== shard) return;
        shard.ready = true;
        shard.lastError = '';
        if (shard.everReady) {
          this.options.counters.reconnects++;
          const seconds = ((performance.now() - shard.downSince) / 1000).toFixed(1);
          this.options.logger.info(
            `Backplane: shard ${shard.label} of ${this.where} is back after ${seconds}s; its rooms are relayed again`,
          );
        } else if (this.connectedOnce) {
          this.options.logger.info(
            `Backplane: shard ${shard.label} of ${this.where} is served by ${shard.address} now; its rooms are relayed again`,
          );
        }
        shard.everReady = true;
        for (const channel of channels) {
          const subscription = this.subscriptions.get(channel);
          if (subscription?.shard === shard) resolveAll(subscription);
        }
        this.updateState();
      },
      (error: Error) => this.onShardSubscribeFailed(shard, error),
    );
  }

  private onShardSubscribeFailed(shard: Shard, error: Error): void {
    shard.lastError = `SSUBSCRIBE failed: ${error.message}`;
    this.options.limitedLog.log(
      'backplane_error',
      'warn',
      `Backplane error (${this.where}, shard ${shard.label}): ${shard.lastError}`,
    );
    // MOVED: the map is stale and the refresh moves the channel. Otherwise start over on a new connection.
    if (error.message.startsWith('MOVED')) this.cluster.refreshSlotsCache();
    else if (shard.connection.status === 'ready') shard.connection.disconnect(true);
  }

  private onShardClose(shard: Shard): void {
    if (this.shards.get(shard.address) !== shard) return;
    if (shard.ready) {
      shard.downSince = performance.now();
      this.options.logger.warn(
        `Backplane: lost shard ${shard.label} of ${this.where} (${shard.lastError || 'connection closed'}); ` +
          'its rooms are not relayed between nodes until it is back or a replica takes over, the other shards go on',
      );
    }
    shard.ready = false;
    this.updateState();
  }

  /** Recomputes the overall state, logs transitions once, and polls the slot map while a shard is down. */
  private readonly updateState = (): void => {
    if (this.closed) return;
    const previous = this.state;
    const shards = [...this.shards.values()];
    const allUp =
      this.cluster.status === 'ready' && shards.length > 0 && shards.every((shard) => shard.ready);
    if (allUp) {
      this.stopPolling();
      this.state = 'connected';
      if (previous === 'connected') return;
      this.lastError = '';
      // One reconnection of the backplane as a whole, as for the other drivers; per shard, see the shard gauge.
      if (previous === 'disconnected') this.options.counters.reconnects++;
      if (!this.connectedOnce) {
        this.connectedOnce = true;
        this.options.logger.info(`Backplane connected to ${this.where} (${shards.length} shards)`);
      } else {
        this.options.logger.info(`Backplane: every shard of ${this.where} is connected again`);
      }
      this.options.onConnected?.();
      return;
    }
    if (this.connectedOnce || shards.length > 0) this.startPolling();
    if (previous === 'connected') this.state = 'disconnected';
  };

  private startPolling(): void {
    this.pollTimer ??= setInterval(() => this.cluster.refreshSlotsCache(), TOPOLOGY_POLL_MS).unref();
  }

  private stopPolling(): void {
    if (this.pollTimer !== undefined) clearInterval(this.pollTimer);
    this.pollTimer = undefined;
  }

  private readonly onClusterError = (error: Error): void => {
    this.lastError = error.message;
    this.options.limitedLog.log(
      'backplane_error',
      'warn',
      `Backplane error (${this.where}): ${error.message}`,
    );
  };
}

function resolveAll(subscription: Subscription): void {
  const waiters = subscription.waiters;
  subscription.waiters = [];
  for (const resolve of waiters) resolve();
}

function rangeLabel(ranges: ReadonlyArray<readonly [number, number]>): string {
  const shown = ranges
    .slice(0, LABEL_RANGES)
    .map(([from, to]) => (from === to ? `${from}` : `${from}-${to}`));
  return ranges.length > LABEL_RANGES
    ? `${shown.join(',')},+${ranges.length - LABEL_RANGES}`
    : shown.join(',');
}

function firstSlot(label: string): number {
  return Number.parseInt(label, 10) || 0;
}
