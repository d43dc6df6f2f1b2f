import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ErrorCode, UsageError } from '../errors.js';
import { benchHelpText, parseBenchArgs } from './options.js';

const URL = 'ws://127.0.0.1:3003/ws';

function codeOf(argv: string[]): string {
  try {
    parseBenchArgs(argv, 2);
  } catch (error) {
    assert.ok(error instanceof UsageError, String(error));
    return error.code;
  }
  return 'no error';
}

describe('wshub bench arguments', () => {
  it('has defaults a user can run with just a URL', () => {
    const options = parseBenchArgs([URL], 8);
    assert.equal(options.url, URL);
    assert.equal(options.connections, 10);
    assert.equal(options.rate, 0);
    assert.equal(options.mode, 'echo');
    assert.equal(options.durationMs, 10_000);
    assert.equal(options.workers, 8);
    assert.equal(options.maxErrors, undefined);
    assert.equal(options.json, false);
  });

  it('parses units and never uses more workers than connections', () => {
    const options = parseBenchArgs(
      [URL, '--connections=3', '--duration=1.5s', '--size=1KiB', '--rate', '50', '--max-errors=0', '--json'],
      8,
    );
    assert.deepEqual(
      [options.connections, options.durationMs, options.size, options.rate, options.maxErrors, options.json],
      [3, 1500, 1024, 50, 0, true],
    );
    assert.equal(options.workers, 3);
  });

  it('rejects bad input with stable codes', () => {
    assert.equal(codeOf([]), ErrorCode.MISSING_VALUE);
    assert.equal(codeOf([URL, URL]), ErrorCode.UNEXPECTED_ARGUMENT);
    assert.equal(codeOf([URL, '--conections=5']), ErrorCode.UNKNOWN_FLAG);
    assert.equal(codeOf([URL, '--connections=0']), ErrorCode.INVALID_VALUE);
    assert.equal(codeOf([URL, '--duration=5']), ErrorCode.INVALID_VALUE);
    assert.equal(codeOf([URL, '--size=4']), ErrorCode.INVALID_VALUE);
    assert.equal(codeOf([URL, '--connections']), ErrorCode.MISSING_VALUE);
    assert.equal(codeOf(['http://example.com/']), ErrorCode.INVALID_URL);
    assert.equal(codeOf(['not a url']), ErrorCode.INVALID_URL);
    assert.equal(codeOf([URL, '--mode=broadcast']), ErrorCode.CONFLICTING_SETTINGS);
    assert.equal(codeOf([URL, '--mode=broadcast', '--rate=1']), 'no error');
  });

  it('documents every flag in --help', () => {
    assert.equal(parseBenchArgs(['--help'], 2).action, 'help');
    const help = benchHelpText();
    for (const flag of [
      '--connections',
      '--connect-rate',
      '--connect-timeout',
      '--size',
      '--rate',
      '--mode',
    ]) {
      assert.ok(help.includes(flag), flag);
    }
    for (const flag of ['--duration', '--workers', '--max-errors', '--json', '--insecure']) {
      assert.ok(help.includes(flag), flag);
    }
  });
});
