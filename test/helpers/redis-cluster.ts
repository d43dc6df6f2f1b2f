import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { RedisServer, type RedisTlsFiles } from './redis.js';
import { waitUntil } from './wait.js';

const run = promisify(execFile);

/** A short-lived admin connection to one server (over TLS, trusting `tls.caFile`, when given). */
async function withClient<T>(
  port: number,
  use: (client: Redis) => Promise<T>,
  tls?: RedisTlsFiles,
): Promise<T> {
  const client = new Redis({
    host: '127.0.0.1',
    port,
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    ...(tls === undefined ? {} : { tls: { ca: readFileSync(tls.caFile) } }),
  });
  client.on('error', () => {});
  try {
    await client.connect();
    return await use(client);
  } finally {
    client.disconnect();
  }
}

export interface ClusterShard {
  readonly masterPort: number;
  readonly replicaPorts: readonly number[];
  readonly ranges: ReadonlyArray<readonly [number, number]>;
}

/**
 * A private Redis Cluster for one test file: `masters` masters with one
 * replica each, on loopback and ephemeral ports, persistence off, a short
 * cluster-node-timeout so a failover takes seconds, and replicas that may
 * always take over (cluster-replica-validity-factor 0). Built with
 * `redis-cli --cluster create … --cluster-replicas 1`; ready once every node
 * says cluster_state:ok and every master has its replica.
 */
export class RedisClusterFixture {
  private constructor(
    readonly servers: readonly RedisServer[],
    private readonly dir: string,
    /** TLS only (tls-port, tls-cluster, tls-replication): the cluster's URL is rediss-cluster://. */
    private readonly tls?: RedisTlsFiles,
  ) {}

  static async start(
    options: { masters?: number; replicas?: 0 | 1; nodeTimeoutMs?: number; tls?: RedisTlsFiles } = {},
  ): Promise<RedisClusterFixture> {
    const masters = options.masters ?? 3;
    const replicas = options.replicas ?? 1;
    const dir = mkdtempSync(join(tmpdir(), 'wshub-redis-cluster-'));
    const servers: RedisServer[] = [];
    try {
      for (let i = 0; i < masters * (1 + replicas); i++) {
        servers.push(
          await RedisServer.start({
            args: [
              '--cluster-enabled',
              'yes',
              '--cluster-config-file',
              join(dir, `nodes-${i}.conf`),
              '--cluster-node-timeout',
              String(options.nodeTimeoutMs ?? 1000),
              '--cluster-replica-validity-factor',
              '0',
              '--dir',
              dir,
              ...(options.tls ? ['--tls-cluster', 'yes', '--tls-replication', 'yes'] : []),
            ],
            tls: options.tls,
          }),
        );
      }
      await run(
        'redis-cli',
        [
          '--cluster',
          'create',
          ...servers.map((server) => `127.0.0.1:${server.port}`),
          '--cluster-replicas',
          String(replicas),
          '--cluster-yes',
          ...(options.tls ? ['--tls', '--cacert', options.tls.caFile] : []),
        ],
        { timeout: 60_000 },
      );
      const fixture = new RedisClusterFixture(servers, dir, options.tls);
      await fixture.waitUntilHealthy(masters, replicas);
      return fixture;
    } catch (error) {
      await Promise.all(servers.map((server) => server.kill()));
      rmSync(dir, { recursive: true, force: true });
      throw error;
    }
  }

  /** `redis-cluster://` with two seed nodes (a node needs only one to reach to learn the rest). */
  get url(): string {
    return `${this.tls ? 'rediss' : 'redis'}-cluster://${this.servers
      .slice(0, 2)
      .map((server) => `127.0.0.1:${server.port}`)
      .join(',')}`;
  }

  /** The shards as a live node sees them (CLUSTER SLOTS). */
  async shards(): Promise<ClusterShard[]> {
    const alive = this.servers.filter((server) => server.running);
    for (const server of alive) {
      try {
        const slots = await withClient(server.port, (client) => client.cluster('SLOTS'), this.tls);
        const byMaster = new Map<number, { replicaPorts: number[]; ranges: Array<[number, number]> }>();
        for (const [from, to, master, ...replicas] of slots) {
          if (master === undefined) continue;
          const entry = byMaster.get(master[1]) ?? { replicaPorts: replicas.map((r) => r[1]), ranges: [] };
          entry.ranges.push([from, to]);
          byMaster.set(master[1], entry);
        }
        return [...byMaster.entries()]
          .map(([masterPort, entry]) => ({ masterPort, ...entry }))
          .sort((a, b) => (a.ranges[0]?.[0] ?? 0) - (b.ranges[0]?.[0] ?? 0));
      } catch {
        // that node is down or busy: ask another
      }
    }
    throw new Error('no cluster node answers CLUSTER SLOTS');
  }

  /** CLUSTER KEYSLOT, answered by the cluster itself. */
  async keySlot(key: string): Promise<number> {
    const server = this.servers.find((candidate) => candidate.running);
    if (!server) throw new Error('no cluster node is running');
    return Number(await withClient(server.port, (client) => client.cluster('KEYSLOT', key), this.tls));
  }

  async masterOf(slot: number): Promise<ClusterShard> {
    const shard = (await this.shards()).find((candidate) =>
      candidate.ranges.some(([from, to]) => slot >= from && slot <= to),
    );
    if (!shard) throw new Error(`no master serves slot ${slot}`);
    return shard;
  }

  /** PUBSUB SHARDNUMSUB on one node: how many connections subscribe `channel` there. */
  async shardSubscribers(port: number, channel: string): Promise<number> {
    const reply = (await withClient(
      port,
      (client) => client.call('PUBSUB', 'SHARDNUMSUB', channel),
      this.tls,
    )) as [string, number];
    return Number(reply[1]);
  }

  server(port: number): RedisServer {
    const server = this.servers.find((candidate) => candidate.port === port);
    if (!server) throw new Error(`no cluster node on port ${port}`);
    return server;
  }

  /** Waits until every running node says cluster_state:ok and `masters` masters each have their replicas. */
  async waitUntilHealthy(masters: number, replicas: 0 | 1 = 1, timeoutMs = 60_000): Promise<void> {
    await waitUntil(
      async () => {
        try {
          for (const server of this.servers.filter((candidate) => candidate.running)) {
            const info = await withClient(server.port, (client) => client.cluster('INFO'), this.tls);
            if (!/cluster_state:ok/.test(String(info))) return false;
          }
          const shards = await this.shards();
          return shards.length === masters && shards.every((shard) => shard.replicaPorts.length >= replicas);
        } catch {
          return false;
        }
      },
      `the Redis Cluster is ok with ${masters} masters, each with ${replicas} replica(s)`,
      timeoutMs,
    );
  }

  async stop(): Promise<void> {
    await Promise.all(this.servers.map((server) => server.stop()));
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/**
 * A Redis primary with one replica and three Sentinels watching it as
 * `mymaster` (quorum 2), down-after 1 s, so a failover takes a few seconds.
 */
export class RedisSentinelFixture {
  static readonly MASTER_NAME = 'mymaster';

  private constructor(
    readonly primary: RedisServer,
    readonly replica: RedisServer,
    readonly sentinels: readonly RedisServer[],
    private readonly dir: string,
  ) {}

  static async start(): Promise<RedisSentinelFixture> {
    const dir = mkdtempSync(join(tmpdir(), 'wshub-redis-sentinel-'));
    const started: RedisServer[] = [];
    try {
      // Replication writes an RDB file for the full sync: keep it in the fixture's directory.
      const primary = await RedisServer.start({ args: ['--dir', dir] });
      started.push(primary);
      const replica = await RedisServer.start({
        args: ['--dir', dir, '--replicaof', '127.0.0.1', String(primary.port)],
      });
      started.push(replica);
      await waitUntil(
        async () =>
          (await primary.info('connected_slaves')) === '1' &&
          (await replica.info('master_link_status')) === 'up',
        'the replica is in sync',
      );
      const sentinels: RedisServer[] = [];
      for (let i = 0; i < 3; i++) {
        const config = join(dir, `sentinel-${i}.conf`);
        writeFileSync(
          config,
          [
            `sentinel monitor ${RedisSentinelFixture.MASTER_NAME} 127.0.0.1 ${primary.port} 2`,
            `sentinel down-after-milliseconds ${RedisSentinelFixture.MASTER_NAME} 1000`,
            `sentinel failover-timeout ${RedisSentinelFixture.MASTER_NAME} 5000`,
            `sentinel parallel-syncs ${RedisSentinelFixture.MASTER_NAME} 1`,
            '',
          ].join('\n'),
        );
        const sentinel = await RedisServer.start({ configFile: config, args: ['--sentinel'] });
        started.push(sentinel);
        sentinels.push(sentinel);
      }
      const fixture = new RedisSentinelFixture(primary, replica, sentinels, dir);
      // Every Sentinel knows the replica and the other Sentinels before a failover can be agreed on.
      await waitUntil(
        async () => {
          for (const sentinel of sentinels) {
            const master = (await withClient(sentinel.port, (client) =>
              client.call('SENTINEL', 'MASTER', RedisSentinelFixture.MASTER_NAME),
            )) as string[];
            const fields = new Map<string, string>();
            for (let i = 0; i + 1 < master.length; i += 2)
              fields.set(String(master[i]), String(master[i + 1]));
            if (fields.get('num-slaves') !== '1' || fields.get('num-other-sentinels') !== '2') return false;
          }
          return true;
        },
        'the Sentinels know the replica and each other',
        30_000,
      );
      return fixture;
    } catch (error) {
      await Promise.all(started.map((server) => server.kill()));
      rmSync(dir, { recursive: true, force: true });
      throw error;
    }
  }

  get url(): string {
    return `redis-sentinel://${this.sentinels.map((sentinel) => `127.0.0.1:${sentinel.port}`).join(',')}/${RedisSentinelFixture.MASTER_NAME}`;
  }

  /** The primary's port as the first Sentinel that answers names it. */
  async primaryPort(): Promise<number> {
    for (const sentinel of this.sentinels) {
      try {
        const [, port] = (await withClient(sentinel.port, (client) =>
          client.call('SENTINEL', 'GET-MASTER-ADDR-BY-NAME', RedisSentinelFixture.MASTER_NAME),
        )) as [string, string];
        return Number(port);
      } catch {
        // ask the next one
      }
    }
    throw new Error('no Sentinel answers');
  }

  async stop(): Promise<void> {
    await Promise.all([this.primary, this.replica, ...this.sentinels].map((server) => server.stop()));
    rmSync(this.dir, { recursive: true, force: true });
  }
}
