import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RedisBackplane } from '../src/backplane/redis.js';
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
