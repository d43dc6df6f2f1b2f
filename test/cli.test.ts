import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { describe, it } from 'node:test';
import { assertUsageError, runToExit } from './helpers/cli.js';

describe('command line (spawned process)', () => {
  it('--help lists every flag with its default, and exits 0', async () => {
    const result = await runToExit(['--help']);
    assert.equal(result.code, 0);
    for (const flag of ['--host', '--port', '--metrics-port', '--stats-interval', '--shutdown-timeout']) {
      assert.match(result.stdout, new RegExp(`${flag}=`));
    }
    assert.match(result.stdout, /default 3003/);
    assert.match(result.stdout, /default 9100/);
  });

  it('--version prints the package version', async () => {
    const result = await runToExit(['--version']);
    assert.equal(result.code, 0);
    assert.match(result.stdout, /^wshub \d+\.\d+\.\d+$/);
  });

  it('rejects an unknown flag and suggests the closest one', async () => {
    assertUsageError(await runToExit(['--prot=8080']), 'WSHUB_UNKNOWN_FLAG', /--prot.*did you mean --port\?/);
  });

  for (const bad of ['--port=70000', '--port=-1', '--port=abc', '--port=80.5', '--metrics-port=65536']) {
    it(`rejects ${bad} naming the flag and the allowed range`, async () => {
      const flag = bad.split('=')[0] as string;
      assertUsageError(await runToExit([bad]), 'WSHUB_INVALID_VALUE', new RegExp(`${flag}.*0 to 65535`));
    });
  }

  it('accepts --flag value as well as --flag=value', async () => {
    const result = await runToExit(['--port', 'nope']);
    assertUsageError(result, 'WSHUB_INVALID_VALUE', /--port: "nope"/);
  });

  it('rejects a flag without its value', async () => {
    assertUsageError(await runToExit(['--port']), 'WSHUB_MISSING_VALUE', /--port/);
  });

  it('rejects the same port for WebSocket and metrics', async () => {
    assertUsageError(
      await runToExit(['--port=4444', '--metrics-port=4444']),
      'WSHUB_CONFLICTING_SETTINGS',
      /--port and --metrics-port/,
    );
  });

  for (const bad of ['5', 'abc', '5 s', '-1s', '11m']) {
    it(`rejects an unparseable or out-of-range duration ${JSON.stringify(bad)}`, async () => {
      assertUsageError(
        await runToExit([`--shutdown-timeout=${bad}`]),
        'WSHUB_INVALID_VALUE',
        /--shutdown-timeout.*duration/,
      );
    });
  }

  it('says which port is in use', async () => {
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const port = (blocker.address() as { port: number }).port;
    try {
      const ws = await runToExit(['--host=127.0.0.1', `--port=${port}`, '--metrics-port=0']);
      assertUsageError(
        ws,
        'WSHUB_LISTEN_FAILED',
        new RegExp(`127\\.0\\.0\\.1:${port} \\(--host/--port\\).*in use`),
      );
      const metrics = await runToExit(['--port=0', '--metrics-host=127.0.0.1', `--metrics-port=${port}`]);
      assertUsageError(
        metrics,
        'WSHUB_LISTEN_FAILED',
        new RegExp(`127\\.0\\.0\\.1:${port} \\(--metrics-host/--metrics-port\\).*in use`),
      );
    } finally {
      blocker.close();
    }
  });

  it('rejects a positional argument', async () => {
    assertUsageError(await runToExit(['8080']), 'WSHUB_UNEXPECTED_ARGUMENT', /"8080"/);
  });

  it('reads settings from WSHUB_* environment variables and rejects unknown ones', async () => {
    assertUsageError(await runToExit([], { WSHUB_PORT: 'x' }), 'WSHUB_INVALID_VALUE', /WSHUB_PORT/);
    assertUsageError(
      await runToExit([], { WSHUB_PROT: '1' }),
      'WSHUB_UNKNOWN_ENV',
      /did you mean WSHUB_PORT\?/,
    );
  });
});
