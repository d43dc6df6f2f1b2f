import assert from 'node:assert/strict';
import { once } from 'node:events';
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { WebSocket } from 'ws';
import { type CertificateFiles, makeCertificate, makeTempDir, requireOpenssl } from './helpers/certs.js';
import { waitForMetric } from './helpers/metrics.js';
import { runWshub, spawnServer } from './helpers/server.js';
import { echo, openWss } from './helpers/wss.js';

/** Runs wshub expecting a startup failure; returns its single stderr line. */
async function expectUsageError(args: string[], code: string): Promise<string> {
  const run = runWshub(['--host=127.0.0.1', '--port=0', '--metrics-port=0', '--stats-interval=0', ...args]);
  const exit = await run.exited;
  const stderr = run.stderr.lines.filter((line) => line !== '');
  assert.equal(exit.code, 2, `exit code for ${args.join(' ')}; stderr: ${stderr.join('\n')}`);
  assert.equal(stderr.length, 1, `one line on stderr, got:\n${stderr.join('\n')}`);
  const line = stderr[0] as string;
  assert.ok(line.endsWith(`[${code}]`), `expected ${code} in: ${line}`);
  assert.ok(!/\n\s+at /.test(line));
  assert.equal(run.stdout.count(/Starting WebSocket server/), 0, 'nothing may listen');
  return line;
}

describe('TLS startup errors (spawned wshub, exit 2, one line)', () => {
  let temp: ReturnType<typeof makeTempDir>;
  let good: CertificateFiles;
  let other: CertificateFiles;
  before(() => {
    requireOpenssl();
    temp = makeTempDir();
    good = makeCertificate(temp.dir, 'good');
    other = makeCertificate(temp.dir, 'other');
  });
  after(() => temp.cleanup());
  const file = (name: string, content: string | Buffer): string => {
    const path = join(temp.dir, name);
    writeFileSync(path, content);
    return path;
  };

  it('--tls without certificate files names the missing setting', async () => {
    const line = await expectUsageError(['--tls'], 'WSHUB_MISSING_SETTING');
    assert.match(line, /--tls turns TLS on, but server\.tls\.certFile is not set.*--tls-cert-file/);
  });

  it('server.tls.enabled in YAML (seed spelling) without keyFile names the key and file line', async () => {
    const config = file(
      'hub.yaml',
      `server:\n  port: 0\n  tls:\n    enabled: true\n    certFile: ${good.certFile}\n`,
    );
    const line = await expectUsageError([`--config-file=${config}`], 'WSHUB_MISSING_SETTING');
    assert.match(line, /server\.tls\.enabled \(.*hub\.yaml:4\).*server\.tls\.keyFile is not set/);
  });

  it('a certificate file that does not exist', async () => {
    const line = await expectUsageError(
      ['--tls', `--tls-cert-file=${join(temp.dir, 'nope.crt')}`, `--tls-key-file=${good.keyFile}`],
      'WSHUB_TLS_FILE_NOT_FOUND',
    );
    assert.match(line, /nope\.crt \(--tls-cert-file \/ server\.tls\.certFile\): no such file/);
  });

  it('a key file that cannot be read (a directory)', async () => {
    const dir = join(temp.dir, 'a-directory');
    mkdirSync(dir);
    const line = await expectUsageError(
      ['--tls', `--tls-cert-file=${good.certFile}`, `--tls-key-file=${dir}`],
      'WSHUB_TLS_FILE_UNREADABLE',
    );
    assert.match(line, /--tls-key-file.*it is a directory/);
  });

  it('a certificate file that is not PEM', async () => {
    const line = await expectUsageError(
      [
        '--tls',
        `--tls-cert-file=${file('text.crt', 'hello, not a certificate\n')}`,
        `--tls-key-file=${good.keyFile}`,
      ],
      'WSHUB_TLS_INVALID_PEM',
    );
    assert.match(line, /--tls-cert-file.*is not a PEM file/);
  });

  it('a certificate PEM block whose content is garbage', async () => {
    const garbage = '-----BEGIN CERTIFICATE-----\nAAAAbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n';
    const line = await expectUsageError(
      ['--tls', `--tls-cert-file=${file('garbage.crt', garbage)}`, `--tls-key-file=${good.keyFile}`],
      'WSHUB_TLS_INVALID_PEM',
    );
    assert.match(line, /--tls-cert-file.*cannot be parsed/);
  });

  it('certificate and key given the wrong way round', async () => {
    const line = await expectUsageError(
      ['--tls', `--tls-cert-file=${good.keyFile}`, `--tls-key-file=${good.certFile}`],
      'WSHUB_TLS_INVALID_PEM',
    );
    assert.match(line, /--tls-cert-file/);
  });

  it('a key file that is not PEM', async () => {
    const line = await expectUsageError(
      [
        '--tls',
        `--tls-cert-file=${good.certFile}`,
        `--tls-key-file=${file('binary.key', Buffer.from([0, 1, 2, 3]))}`,
      ],
      'WSHUB_TLS_INVALID_PEM',
    );
    assert.match(line, /--tls-key-file.*found no PEM block/);
  });

  it('an encrypted key', async () => {
    const encrypted = join(temp.dir, 'encrypted.key');
    const { execFileSync } = await import('node:child_process');
    execFileSync('openssl', [
      'pkey',
      '-in',
      good.keyFile,
      '-aes256',
      '-passout',
      'pass:secret',
      '-out',
      encrypted,
    ]);
    const line = await expectUsageError(
      ['--tls', `--tls-cert-file=${good.certFile}`, `--tls-key-file=${encrypted}`],
      'WSHUB_TLS_INVALID_PEM',
    );
    assert.match(line, /--tls-key-file.*is encrypted/);
  });

  it('a key that does not match the certificate', async () => {
    const line = await expectUsageError(
      ['--tls', `--tls-cert-file=${good.certFile}`, `--tls-key-file=${other.keyFile}`],
      'WSHUB_TLS_KEY_MISMATCH',
    );
    assert.match(
      line,
      /private key in .*other\.key \(--tls-key-file.*does not match the certificate in .*good\.crt/,
    );
  });

  it('a CA bundle that is not PEM', async () => {
    const line = await expectUsageError(
      [
        '--tls',
        `--tls-cert-file=${good.certFile}`,
        `--tls-key-file=${good.keyFile}`,
        `--tls-ca-file=${file('ca.txt', 'nope')}`,
      ],
      'WSHUB_TLS_INVALID_PEM',
    );
    assert.match(line, /--tls-ca-file \/ server\.tls\.caFile\) is not a PEM file/);
  });

  it('--check-config checks the TLS files too: a mismatched pair fails, a good pair passes', async () => {
    const bad = runWshub([
      '--check-config',
      '--tls',
      `--tls-cert-file=${good.certFile}`,
      `--tls-key-file=${other.keyFile}`,
    ]);
    assert.equal((await bad.exited).code, 2);
    assert.match(bad.stderr.lines.join('\n'), /does not match the certificate.*\[WSHUB_TLS_KEY_MISMATCH\]$/);
    const fine = runWshub([
      '--check-config',
      '--tls',
      `--tls-cert-file=${good.certFile}`,
      `--tls-key-file=${good.keyFile}`,
    ]);
    assert.equal((await fine.exited).code, 0);
    assert.match(fine.stdout.lines.join('\n'), /configuration OK/);
  });

  it('the environment variable form names the variable', async () => {
    const run = runWshub(['--host=127.0.0.1', '--port=0', '--metrics-port=0'], { WSHUB_TLS: 'true' });
    assert.equal((await run.exited).code, 2);
    assert.match(run.stderr.lines.join('\n'), /^wshub: WSHUB_TLS turns TLS on.*\[WSHUB_MISSING_SETTING\]$/);
  });
});

describe('SIGHUP (spawned wshub)', () => {
  let temp: ReturnType<typeof makeTempDir>;
  before(() => {
    requireOpenssl();
    temp = makeTempDir();
  });
  after(() => temp.cleanup());

  it('reloads the certificate on SIGHUP without dropping the open connection; a broken pair keeps the old one', async () => {
    const first = makeCertificate(temp.dir, 'first');
    const second = makeCertificate(temp.dir, 'second');
    const dir = join(temp.dir, 'live');
    mkdirSync(dir);
    const certFile = join(dir, 'tls.crt');
    const keyFile = join(dir, 'tls.key');
    copyFileSync(first.certFile, certFile);
    copyFileSync(first.keyFile, keyFile);
    // --no-tls-watch: only the signal may cause a reload here.
    const server = await spawnServer([
      '--stats-interval=0',
      '--tls',
      '--no-tls-watch',
      `--tls-cert-file=${certFile}`,
      `--tls-key-file=${keyFile}`,
    ]);
    try {
      const open = () => openWss(server.port);
      const kept = await open();
      assert.equal(kept.fingerprint, first.fingerprint256);

      // A broken pair first (second's certificate, first's key): SIGHUP logs and keeps the old one.
      writeFileSync(certFile, readFileSync(second.certFile));
      server.kill('SIGHUP');
      await server.stdout.waitFor(/Received SIGHUP, reloading/);
      await server.stdout.waitFor(
        /TLS certificate reload \(SIGHUP\) failed, keeping the current certificate/,
      );
      assert.equal(
        await waitForMetric(server.metricsUrl, 'wshub_tls_reloads_total', 1, { result: 'failure' }),
        1,
      );
      assert.equal((await open()).fingerprint, first.fingerprint256);

      writeFileSync(keyFile, readFileSync(second.keyFile));
      server.kill('SIGHUP');
      await server.stdout.waitFor(
        new RegExp(`TLS certificate reloaded \\(SIGHUP\\): .*sha256 ${second.fingerprint256}`),
      );
      assert.equal(
        await waitForMetric(server.metricsUrl, 'wshub_tls_reloads_total', 1, { result: 'success' }),
        1,
      );
      const fresh = await open();
      assert.equal(fresh.fingerprint, second.fingerprint256);
      assert.equal(await echo(kept.ws, 'kept'), 'kept');
      assert.equal(await echo(fresh.ws, 'fresh'), 'fresh');
      kept.ws.close();
      fresh.ws.close();
      server.kill('SIGTERM');
      assert.equal((await server.exited).code, 0);
    } finally {
      server.kill('SIGKILL');
    }
  });

  it('SIGHUP without TLS is logged and does not stop the server', async () => {
    const server = await spawnServer(['--stats-interval=0']);
    try {
      server.kill('SIGHUP');
      await server.stdout.waitFor(/Nothing to reload: TLS and auth are disabled/);
      const ws = new WebSocket(server.url);
      await once(ws, 'open');
      ws.close();
      server.kill('SIGTERM');
      assert.equal((await server.exited).code, 0);
    } finally {
      server.kill('SIGKILL');
    }
  });
});
