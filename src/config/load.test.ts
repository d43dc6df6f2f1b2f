import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ErrorCode, UsageError } from '../errors.js';
import { loadConfig } from './load.js';
import { closest } from './suggest.js';

const files = (contents: Record<string, string>) => ({
  readFile: (path: string) => {
    const text = contents[path];
    if (text === undefined) throw Object.assign(new Error('ENOENT'), { code: 'ENOENT' });
    return text;
  },
});

function codeOf(run: () => unknown): string | undefined {
  try {
    run();
  } catch (error) {
    if (error instanceof UsageError) return error.code;
    throw error;
  }
  return undefined;
}

describe('loadConfig', () => {
  it('applies the seed defaults', () => {
    const { config, action } = loadConfig([], {});
    assert.equal(action, 'run');
    assert.deepEqual(
      [config.host, config.port, config.metricsPort, config.shutdownTimeout],
      ['0.0.0.0', 3003, 9100, 5000],
    );
    assert.ok(Object.isFrozen(config));
  });

  it('a flag named like an object prototype member is unknown, not an action or a setting (issue 14)', () => {
    for (const flag of ['--constructor', '--toString', '--__proto__', '--hasOwnProperty=1']) {
      assert.equal(
        codeOf(() => loadConfig([flag], {})),
        ErrorCode.UNKNOWN_FLAG,
        flag,
      );
    }
  });

  it("server flags are scanned as the subcommands' are: --no- forms, --flag=false, -h, -v, refusals", () => {
    assert.equal(loadConfig(['--no-metrics'], {}).config.metricsEnabled, false);
    assert.equal(loadConfig(['--metrics=false'], {}).config.metricsEnabled, false);
    assert.equal(loadConfig(['-v', '-h'], {}).action, 'help');
    assert.equal(
      codeOf(() => loadConfig(['--no-metrics=1'], {})),
      ErrorCode.INVALID_VALUE,
    );
    assert.equal(
      codeOf(() => loadConfig(['--help=yes'], {})),
      ErrorCode.INVALID_VALUE,
    );
    assert.equal(
      codeOf(() => loadConfig(['--port'], {})),
      ErrorCode.MISSING_VALUE,
    );
    assert.equal(
      codeOf(() => loadConfig(['8080'], {})),
      ErrorCode.UNEXPECTED_ARGUMENT,
    );
  });

  it('takes flags over environment over file over defaults', () => {
    const yaml = 'server:\n  port: 1111\n  host: 127.0.0.2\nmetrics:\n  port: 2222\n';
    const source = files({ 'hub.yaml': yaml });
    const env = { WSHUB_PORT: '3333', WSHUB_CONFIG_FILE: 'hub.yaml' };
    const { config } = loadConfig(['--port=4444'], env, source);
    assert.equal(config.port, 4444);
    assert.equal(loadConfig([], env, source).config.port, 3333);
    assert.equal(loadConfig([], env, source).config.host, '127.0.0.2');
    assert.equal(loadConfig([], env, source).config.metricsPort, 2222);
    assert.equal(loadConfig([], {}, source).config.port, 3003);
  });

  it('accepts the Go hub spellings of keys (camelCase, snake_case)', () => {
    const source = files({ a: 'metrics:\n  Enabled: false\n', b: 'server:\n  shutdown_timeout: 2s\n' });
    assert.equal(loadConfig(['--config-file=a'], {}, source).config.metricsEnabled, false);
    assert.equal(loadConfig(['--config-file=b'], {}, source).config.shutdownTimeout, 2000);
  });

  it('reports unknown keys, bad values, syntax errors and missing files with stable codes', () => {
    const source = files({
      unknown: 'server:\n  prot: 1\n',
      bad: 'server:\n  port: "x"\n',
      syntax: 'server: [\n',
      scalar: 'server: 5\n',
    });
    assert.equal(
      codeOf(() => loadConfig(['--config-file=unknown'], {}, source)),
      ErrorCode.UNKNOWN_KEY,
    );
    assert.equal(
      codeOf(() => loadConfig(['--config-file=bad'], {}, source)),
      ErrorCode.INVALID_VALUE,
    );
    assert.equal(
      codeOf(() => loadConfig(['--config-file=syntax'], {}, source)),
      ErrorCode.CONFIG_FILE_SYNTAX,
    );
    assert.equal(
      codeOf(() => loadConfig(['--config-file=scalar'], {}, source)),
      ErrorCode.INVALID_VALUE,
    );
    assert.equal(
      codeOf(() => loadConfig(['--config-file=missing'], {}, source)),
      ErrorCode.CONFIG_FILE_UNREADABLE,
    );
  });

  it('names the line of a bad value and suggests the closest key', () => {
    const source = files({ f: '# comment\nserver:\n  port: 1\n  prot: 2\n' });
    assert.throws(
      () => loadConfig(['--config-file=f'], {}, source),
      /^UsageError: f:4: unknown key server\.prot; did you mean server\.port\?/,
    );
  });

  it('handles boolean flags in every form', () => {
    assert.equal(loadConfig(['--no-metrics'], {}).config.metricsEnabled, false);
    assert.equal(loadConfig(['--metrics=false'], {}).config.metricsEnabled, false);
    assert.equal(loadConfig(['--metrics'], { WSHUB_METRICS: 'false' }).config.metricsEnabled, true);
    assert.equal(
      codeOf(() => loadConfig(['--metrics=maybe'], {})),
      ErrorCode.INVALID_VALUE,
    );
  });
});

describe('closest', () => {
  it('suggests near misses only', () => {
    assert.equal(closest('--prot', ['--port', '--host']), '--port');
    assert.equal(closest('--zzzzzzzz', ['--port', '--host']), undefined);
  });
});
