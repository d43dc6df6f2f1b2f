import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ErrorCode, UsageError } from '../errors.js';
import { loadConfig } from './load.js';
import { printConfig } from './print.js';
import { formatRedisTarget, parseRedisUrl, type RedisTarget } from './redis-url.js';

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
    assert.equal(target('redis://[::1]:7000').host, '::1');
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
    assert.equal(loadConfig([...broadcast, '--backplane=redis://a:1'], {}).config.backplane?.host, 'a');
    assert.equal(loadConfig(broadcast, { WSHUB_BACKPLANE: 'redis://b:2' }).config.backplane?.port, 2);
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
    const error = failure(() => loadConfig([...broadcast, '--backplane-channel=has space'], {}));
    assert.equal(error.code, ErrorCode.INVALID_VALUE);
  });

  it('refuses a backplane in echo mode (echo never relays between nodes)', () => {
    const error = failure(() => loadConfig(['--backplane=redis://a:1'], {}));
    assert.equal(error.code, ErrorCode.CONFLICTING_SETTINGS);
    assert.match(error.message, /--backplane only works in broadcast mode/);
  });
});
