import { RedisClusterBackplane } from '../src/backplane/redis-cluster.js';
import { parseRedisUrl, type RedisClusterTarget } from '../src/config/redis-url.js';
import { RateLimitedLog, silentLogger } from '../src/log.js';
import { backplaneContract } from './helpers/backplane-contract.js';
import { RedisClusterFixture } from './helpers/redis-cluster.js';

// The delivery guarantees of backplane.ts, against a real 3-master Redis Cluster (issue 18);
// an outage is every node of the cluster killed, a recovery all of them started again.
backplaneContract('redis-cluster', async () => {
  const cluster = await RedisClusterFixture.start({ masters: 3 });
  const target = parseRedisUrl(cluster.url) as RedisClusterTarget;
  return {
    create: (counters) =>
      new RedisClusterBackplane({
        target,
        counters,
        logger: silentLogger,
        limitedLog: new RateLimitedLog(silentLogger),
        maxPendingBytes: 64 * 1024 * 1024,
        reconnectDelayMaxMs: 100,
      }),
    outage: async () => {
      await Promise.all(cluster.servers.map((server) => server.kill()));
    },
    recover: async () => {
      await Promise.all(cluster.servers.map((server) => server.start()));
      await cluster.waitUntilHealthy(3);
    },
    teardown: () => cluster.stop(),
  };
});
