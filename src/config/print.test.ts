import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parse } from 'yaml';
import { bytes, duration, text } from './kinds.js';
import { loadConfig } from './load.js';
import { printConfig, REDACTED } from './print.js';
import type { Setting } from './settings.js';

describe('printConfig', () => {
  it('nests settings by key, in their written form, and loads back to the same config', () => {
    const { config } = loadConfig(
      ['--port=4444', '--shutdown-timeout=1m30s', '--max-buffered-bytes=64KiB'],
      {},
    );
    const yaml = printConfig(config);
    const parsed = parse(yaml) as { server: { port: number; shutdownTimeout: string } };
    assert.equal(parsed.server.port, 4444);
    assert.equal(parsed.server.shutdownTimeout, '90s');
    const reloaded = loadConfig(['--config-file=printed.yaml'], {}, { readFile: () => yaml });
    assert.deepEqual(reloaded.config, config);
  });

  it('redacts a secret that is set and leaves an unset one empty', () => {
    const table: Record<string, Setting<unknown>> = {
      password: {
        key: 'backplane.password',
        flag: 'p',
        kind: text({ allowEmpty: true }) as Setting<unknown>['kind'],
        default: '',
        doc: '',
        secret: true,
      },
      unset: {
        key: 'backplane.token',
        flag: 't',
        kind: text({ allowEmpty: true }) as Setting<unknown>['kind'],
        default: '',
        doc: '',
        secret: true,
      },
      size: {
        key: 'limits.size',
        flag: 's',
        kind: bytes(1, 2 ** 30) as Setting<unknown>['kind'],
        default: 1,
        doc: '',
      },
      wait: {
        key: 'limits.wait',
        flag: 'w',
        kind: duration(0, 10_000) as Setting<unknown>['kind'],
        default: 0,
        doc: '',
      },
    };
    const yaml = printConfig({ password: 's3cret', unset: '', size: 2048, wait: 250 }, table);
    assert.doesNotMatch(yaml, /s3cret/);
    assert.deepEqual(parse(yaml), {
      backplane: { password: REDACTED, token: '' },
      limits: { size: '2KiB', wait: '250ms' },
    });
  });
});
