import assert from 'node:assert/strict';
import { once } from 'node:events';
import { describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { quit, RedisBackplane, reconnectWhenEnded } from '../src/backplane/redis.js';
import { parseRedisUrl, type RedisServerTarget } from '../src/config/redis-url.js';
import { RateLimitedLog, silentLogger } from '../src/log.js';
import { backplaneContract } from './helpers/backplane-contract.js';
import { RedisServer } from './helpers/redis.js';

backplaneContract('redis', async () => {
  const redis = await RedisServer.start();
  const target = parseRedisUrl(redis.url) as RedisServerTarget;
  return {
    create: (counters) =>
      new RedisBackplane({
        target,
        counters,
        logger: silentLogger,
        limitedLog: new RateLimitedLog(silentLogger),
        maxPendingBytes: 64 * 1024 * 1024,
        reconnectDelayMaxMs: 100,
      }),
    outage: () => redis.kill(),
    recover: () => redis.start(),
    teardown: () => redis.stop(),
  };
});

describe('redis-server test harness', () => {
  it('fails, naming the Debian package, when redis-server is missing', async () => {
    await assert.rejects(RedisServer.start({ binary: 'redis-server-not-installed-here' }), (error: Error) => {
      assert.match(error.message, /Debian package redis-server/);
      return true;
    });
  });
});

describe('reconnectWhenEnded (ioredis can end a connection for good mid-failover)', () => {
  it('connects again a connection that ended without quit(), and leaves one that quit() closed', async () => {
    const redis = await RedisServer.start();
    const client = new Redis({
      port: redis.port,
      host: '127.0.0.1',
      lazyConnect: true,
      retryStrategy: () => 50,
    });
    try {
      client.on('error', () => {});
      reconnectWhenEnded(client, () => 20);
      await client.connect();
      // What ioredis does when its connector fails mid-failover: status 'end', no retryStrategy.
      const ended = once(client, 'end');
      client.disconnect(false);
      await ended;
      await once(client, 'ready');
      assert.equal(await client.ping(), 'PONG');
      await quit(client);
      await new Promise((resolve) => setTimeout(resolve, 200));
      assert.equal(client.status, 'end', 'quit() is final');
    } finally {
      await quit(client);
      await redis.stop();
    }
  });
});
