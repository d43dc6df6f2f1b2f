import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ErrorCode, UsageError } from '../errors.js';
import { loadConfig } from './load.js';
import { printConfig } from './print.js';
import {
  formatRedisTarget,
  parseRedisUrl,
  type RedisClusterTarget,
  type RedisServerTarget,
  type RedisTarget,
} from './redis-url.js';

const target = (text: string): RedisTarget => {
  const parsed = parseRedisUrl(text);
  if (typeof parsed === 'string') assert.fail(`${text}: ${parsed}`);
  return parsed;
};

function failure(run: () => unknown): UsageError {
  try {
    run();
  } catch (error) {
    if (error instanceof UsageError) return error;
    throw error;
  }
  assert.fail('expected a UsageError');
}

describe('Redis URL', () => {
  it('parses host, port, credentials, database and TLS', () => {
    assert.deepEqual(target('redis://10.0.0.5'), {
      tls: false,
      host: '10.0.0.5',
      port: 6379,
      username: '',
      password: '',
      db: 0,
    });
    assert.deepEqual(target('rediss://app:p%40ss%3Aword@redis.example:6380/3'), {
      tls: true,
      host: 'redis.example',
      port: 6380,
      username: 'app',
      password: 'p@ss:word',
      db: 3,
    });
    assert.equal(target('redis://:only-password@h:1').password, 'only-password');
    assert.equal((target('redis://[::1]:7000') as RedisServerTarget).host, '::1');
  });

  it('parses redis-cluster:// and redis-sentinel:// host lists (issue 18)', () => {
    assert.deepEqual(target('redis-cluster://10.0.0.1:7000,10.0.0.2,[::1]:7002'), {
      kind: 'cluster',
      tls: false,
      nodes: [
        { host: '10.0.0.1', port: 7000 },
        { host: '10.0.0.2', port: 6379 },
        { host: '::1', port: 7002 },
      ],
      username: '',
      password: '',
    });
    assert.deepEqual(target('rediss-sentinel://app:p%40ss@s1:26380,s2/mymaster/2'), {
      kind: 'sentinel',
      tls: true,
      sentinels: [
        { host: 's1', port: 26380 },
        { host: 's2', port: 26379 },
      ],
      masterName: 'mymaster',
      username: 'app',
      password: 'p@ss',
      db: 2,
    });
    assert.equal(
      formatRedisTarget(target('rediss-cluster://:secret@a:1,b:2')),
      'rediss-cluster://:***@a:1,b:2',
    );
    assert.equal(
      formatRedisTarget(target('redis-sentinel://u:secret@a:1,b:2/main')),
      'redis-sentinel://u:***@a:1,b:2/main/0',
    );
    assert.match(parseRedisUrl('redis-cluster://a:1/0') as string, /no databases/);
    assert.match(parseRedisUrl('redis-sentinel://a:1') as string, /master name is missing/);
    assert.match(parseRedisUrl('redis-sentinel://a:1/m/x') as string, /database "x"/);
    assert.match(parseRedisUrl('redis-cluster://a:1,,b:2') as string, /"" is not host:port/);
    assert.match(parseRedisUrl('redis-cluster://a:99999') as string, /port 99999/);
    assert.equal(parseRedisUrl('redis-cluster://'), 'no host');
    assert.match(parseRedisUrl('redis-cluster://a:1?x=1') as string, /query/);
  });

  it('says what is wrong with a bad URL', () => {
    assert.match(parseRedisUrl('localhost:6379') as string, /scheme localhost: is not redis/);
    assert.match(parseRedisUrl('http://h:1') as string, /scheme http:/);
    assert.match(parseRedisUrl('redis://h:0') as string, /port 0/);
    assert.match(parseRedisUrl('redis://h/abc') as string, /database "abc"/);
    assert.match(parseRedisUrl('redis://h?db=1') as string, /query/);
    assert.equal(parseRedisUrl('redis://'), 'no host');
    assert.equal(parseRedisUrl('not a url'), 'not a URL');
  });

  it('redacts the password and only the password when formatted', () => {
    assert.equal(formatRedisTarget(target('rediss://app:secret@h:6380/2')), 'rediss://app:***@h:6380/2');
    assert.equal(formatRedisTarget(target('redis://:secret@h')), 'redis://:***@h:6379/0');
    assert.equal(formatRedisTarget(target('redis://app@h')), 'redis://app@h:6379/0');
    assert.equal(formatRedisTarget(target('redis://[::1]:7000')), 'redis://[::1]:7000/0');
  });
});

describe('backplane settings', () => {
  const broadcast = ['--mode=broadcast'];

  it('is off by default and reads --backplane, WSHUB_BACKPLANE and the YAML backplane: section', () => {
    assert.equal(loadConfig(broadcast, {}).config.backplane, undefined);
    const server = (config: { backplane?: unknown }) => config.backplane as RedisServerTarget | undefined;
    assert.equal(server(loadConfig([...broadcast, '--backplane=redis://a:1'], {}).config)?.host, 'a');
    assert.equal(server(loadConfig(broadcast, { WSHUB_BACKPLANE: 'redis://b:2' }).config)?.port, 2);
    assert.equal(
      (
        loadConfig(broadcast, { WSHUB_BACKPLANE: 'redis-cluster://c:3,d:4' }).config
          .backplane as RedisClusterTarget
      ).nodes[1]?.host,
      'd',
    );
    const yaml = [
      'server:',
      '  mode: broadcast',
      'backplane:',
      '  url: rediss://u:pw@c:3/1',
      '  channel: eu-west.chat',
      '  required: true',
      '  maxPending: 1MiB',
      '  reconnectDelayMax: 250ms',
      '',
    ].join('\n');
    const { config } = loadConfig(['--config-file=hub.yaml'], {}, { readFile: () => yaml });
    assert.deepEqual(config.backplane, {
      tls: true,
      host: 'c',
      port: 3,
      username: 'u',
      password: 'pw',
      db: 1,
    });
    assert.equal(config.backplaneChannel, 'eu-west.chat');
    assert.equal(config.backplaneRequired, true);
    assert.equal(config.backplaneMaxPending, 1024 * 1024);
    assert.equal(config.backplaneReconnectMax, 250);
  });

  it('prints the URL with the password redacted (--print-config)', () => {
    const { config } = loadConfig([...broadcast, '--backplane=redis://app:hunter2@10.1.2.3:6380/2'], {});
    const printed = printConfig(config);
    assert.match(printed, /backplane:\n {2}url: redis:\/\/app:\*\*\*@10\.1\.2\.3:6380\/2\n/);
    assert.doesNotMatch(printed, /hunter2/);
  });

  it('treats an empty URL as no backplane', () => {
    assert.equal(loadConfig(broadcast, { WSHUB_BACKPLANE: '' }).config.backplane, undefined);
  });

  it('rejects a bad URL with the flag named and the password not echoed', () => {
    const error = failure(() => loadConfig([...broadcast, '--backplane=localhost:6379'], {}));
    assert.equal(error.code, ErrorCode.INVALID_VALUE);
    assert.match(error.message, /--backplane/);
    assert.match(error.message, /redis:\/\//);
    const withPassword = failure(() => loadConfig([...broadcast, '--backplane=redis://app:hunter2@h:0'], {}));
    assert.doesNotMatch(withPassword.message, /hunter2/);
    assert.match(withPassword.message, /redis:\/\/app:\*\*\*@h:0/);
  });

  it('rejects a bad channel name', () => {
    // Braces would turn the prefix into every room's hash tag: all rooms on one Redis Cluster slot.
    assert.match(
      failure(() => loadConfig([...broadcast, '--backplane-channel=app{x}'], {})).message,
      /no braces/,
    );
    const error = failure(() => loadConfig([...broadcast, '--backplane-channel=has space'], {}));
    assert.equal(error.code, ErrorCode.INVALID_VALUE);
  });

  it('refuses a backplane in echo mode (echo never relays between nodes)', () => {
    const error = failure(() => loadConfig(['--backplane=redis://a:1'], {}));
    assert.equal(error.code, ErrorCode.CONFLICTING_SETTINGS);
    assert.match(error.message, /--backplane only works in broadcast mode/);
  });
});
