import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { exportJWK, generateKeyPair, jwtVerify } from 'jose';
import { loadConfig } from '../src/config/load.js';
import { ErrorCode, UsageError } from '../src/errors.js';
import { hs256, SECRET, secretBytes, startWithSecret } from './helpers/auth.js';
import { runWshub } from './helpers/server.js';

describe('auth configuration errors (exit 2, naming the flags)', () => {
  const fails = (argv: string[], code: string, pattern: RegExp) =>
    assert.throws(
      () => loadConfig(argv, {}),
      (error: unknown) => error instanceof UsageError && error.code === code && pattern.test(error.message),
    );

  it('refuses --auth=jwt without a key source, and auth settings without --auth=jwt', () => {
    fails(
      ['--auth=jwt'],
      ErrorCode.MISSING_SETTING,
      /--auth-jwt-secret-file=FILE .*--auth-jwks-file=FILE or --auth-jwks-url=URL/,
    );
    fails(
      ['--auth-jwt-issuer=x'],
      ErrorCode.CONFLICTING_SETTINGS,
      /--auth-jwt-issuer only applies with --auth=jwt/,
    );
    fails(
      ['--max-connections-per-user=3'],
      ErrorCode.CONFLICTING_SETTINGS,
      /--max-connections-per-user only applies/,
    );
    fails(['--auth=jwt', '--auth-jwks-url=ftp://x'], ErrorCode.INVALID_VALUE, /--auth-jwks-url/);
    fails(['--auth=basic'], ErrorCode.INVALID_VALUE, /one of none, jwt/);
  });

  it('--client-publish=false, --no-client-publish, the env and YAML key all make clients receive-only', () => {
    assert.equal(loadConfig([], {}).config.clientPublish, true);
    assert.equal(loadConfig(['--client-publish=false'], {}).config.clientPublish, false);
    assert.equal(loadConfig(['--no-client-publish'], {}).config.clientPublish, false);
    assert.equal(loadConfig([], { WSHUB_CLIENT_PUBLISH: 'false' }).config.clientPublish, false);
    fails(['--client-publish=maybe'], ErrorCode.INVALID_VALUE, /--client-publish/);
  });

  it('exits 2 with one line for a short secret, a missing file and a JWKS holding a private key', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'wshub-auth-'));
    try {
      writeFileSync(join(dir, 'short'), 'too short');
      const { privateKey } = await generateKeyPair('ES256', { extractable: true });
      writeFileSync(join(dir, 'private.json'), JSON.stringify({ keys: [await exportJWK(privateKey)] }));
      const cases: Array<[string[], RegExp]> = [
        [
          [`--auth-jwt-secret-file=${join(dir, 'short')}`],
          /holds 9 bytes; an HS256 secret needs at least 32 .*\[WSHUB_AUTH_INVALID_KEY\]$/,
        ],
        [
          [`--auth-jwt-secret-file=${join(dir, 'missing')}`],
          /cannot read --auth-jwt-secret-file=.*missing: ENOENT \[WSHUB_AUTH_KEY_FILE_UNREADABLE\]$/,
        ],
        [
          [`--auth-jwks-file=${join(dir, 'private.json')}`],
          /key 0 is a private key; give wshub the public keys only.*\[WSHUB_AUTH_INVALID_KEY\]$/,
        ],
      ];
      for (const [flags, pattern] of cases) {
        const run = runWshub(['--port=0', '--metrics-port=0', '--auth=jwt', ...flags]);
        const { code } = await run.exited;
        assert.equal(code, 2);
        assert.equal(run.stderr.lines.length, 1, run.stderr.lines.join('\n'));
        assert.match(run.stderr.lines[0] as string, pattern);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('wshub client and wshub bench with a token', () => {
  let running: Awaited<ReturnType<typeof startWithSecret>>;
  before(async () => {
    running = await startWithSecret([]);
  });
  after(() => running.stop());

  it('wshub client --token and --token-file send Authorization: Bearer; a URL token is not printed', async () => {
    const token = await hs256({ sub: 'cli', rooms: ['*'], publish: ['*'] });
    writeFileSync(join(running.dir, 'token'), `${token}\n`);
    for (const flag of [`--token=${token}`, `--token-file=${join(running.dir, 'token')}`]) {
      const run = runWshub(['client', flag, running.server.url], {}, { stdin: 'pipe' });
      run.child.stdin?.end('through auth\n');
      await run.stdout.waitFor(/^through auth$/);
      assert.equal((await run.exited).code, 0, run.stderr.lines.join('\n'));
    }
    const viaUrl = runWshub(['client', `${running.server.url}?access_token=${token}`], {}, { stdin: 'pipe' });
    viaUrl.child.stdin?.end('x\n');
    assert.equal((await viaUrl.exited).code, 0);
    assert.match(
      viaUrl.stderr.lines.join('\n'),
      /connected to ws:\/\/127\.0\.0\.1:\d+\/ws\?access_token=<redacted>/,
    );
    assert.ok(!viaUrl.stderr.lines.join('\n').includes(token));
    const refused = runWshub(['client', running.server.url], {}, { stdin: 'pipe' });
    refused.child.stdin?.end();
    assert.equal((await refused.exited).code, 1);
    assert.match(refused.stderr.lines.join('\n'), /401/);
  });

  it('wshub bench --token opens every connection with the token', async () => {
    const token = await hs256({ sub: 'bench', rooms: ['*'], publish: ['*'] });
    const run = runWshub([
      'bench',
      running.server.url,
      `--token=${token}`,
      '--connections=4',
      '--duration=1s',
      '--workers=1',
      '--json',
    ]);
    assert.equal((await run.exited).code, 0, run.stderr.lines.join('\n'));
    const report = JSON.parse(run.stdout.lines.join('\n')) as {
      connections: { established: number; failed: number };
    };
    assert.equal(report.connections.established, 4);
    assert.equal(report.connections.failed, 0);

    // A token in the URL (as a browser would pass it) reaches the server but no output: the
    // --json report, the HTML report and stderr show the URL with access_token=<redacted>.
    const file = join(running.dir, 'report.html');
    const viaUrl = runWshub([
      'bench',
      `${running.server.url}?access_token=${token}`,
      '--connections=2',
      '--duration=1s',
      '--workers=1',
      '--json',
      `--report=${file}`,
    ]);
    assert.equal((await viaUrl.exited).code, 0, viaUrl.stderr.lines.join('\n'));
    const json = viaUrl.stdout.lines.join('\n');
    assert.equal(
      (JSON.parse(json) as { url: string; connections: { established: number } }).connections.established,
      2,
    );
    assert.match(json, /"url":"ws:\/\/127\.0\.0\.1:\d+\/ws\?access_token=<redacted>"/);
    const signature = token.split('.')[2] as string;
    for (const output of [json, viaUrl.stderr.lines.join('\n'), readFileSync(file, 'utf8')]) {
      assert.ok(!output.includes(signature), 'no token in the bench output or report');
    }
  });
});

describe('wshub token', () => {
  it('prints an HS256 token with the claims asked for, verifiable with the secret', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'wshub-auth-'));
    try {
      writeFileSync(join(dir, 'secret'), `${SECRET}\n`);
      const run = runWshub([
        'token',
        `--secret-file=${join(dir, 'secret')}`,
        '--sub=olga',
        '--rooms=,chat.*',
        '--publish=chat.*',
        '--ttl=15m',
        '--audience=wshub',
      ]);
      assert.equal((await run.exited).code, 0, run.stderr.lines.join('\n'));
      const token = run.stdout.lines[0] as string;
      const { payload, protectedHeader } = await jwtVerify(token, secretBytes, { audience: 'wshub' });
      assert.equal(protectedHeader.alg, 'HS256');
      assert.equal(payload.sub, 'olga');
      assert.deepEqual(payload.rooms, ['', 'chat.*']);
      assert.deepEqual(payload.publish, ['chat.*']);
      const ttl = (payload.exp as number) - Math.floor(Date.now() / 1000);
      assert.ok(ttl > 14 * 60 && ttl <= 15 * 60, `ttl ${ttl}`);

      const missing = runWshub(['token', '--sub=olga']);
      assert.equal((await missing.exited).code, 2);
      assert.match(missing.stderr.lines[0] as string, /wshub token needs --secret-file/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
