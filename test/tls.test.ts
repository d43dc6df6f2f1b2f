import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { once } from 'node:events';
import { copyFileSync, mkdirSync, readFileSync, renameSync, symlinkSync, writeFileSync } from 'node:fs';
import { connect as netConnect } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { WebSocket } from 'ws';
import { loadTlsMaterial } from '../src/transport/tls-files.js';
import { type CertificateFiles, makeCertificate, makeTempDir, requireOpenssl } from './helpers/certs.js';
import { metricValue, waitForMetric } from './helpers/metrics.js';
import { type InProcessServer, startServer } from './helpers/server.js';
import { echo, openWss, servedFingerprint } from './helpers/wss.js';

async function closeClient(ws: WebSocket): Promise<void> {
  const closed = once(ws, 'close');
  ws.close(1000);
  await closed;
}

const tlsFlags = (certFile: string, keyFile: string, extra: string[] = []): string[] => [
  '--stats-interval=0',
  '--tls',
  `--tls-cert-file=${certFile}`,
  `--tls-key-file=${keyFile}`,
  ...extra,
];

describe('TLS (wss://)', () => {
  let temp: ReturnType<typeof makeTempDir>;
  let first: CertificateFiles;
  before(() => {
    requireOpenssl();
    temp = makeTempDir();
    first = makeCertificate(temp.dir, 'first');
  });
  after(() => temp.cleanup());

  describe('serving', () => {
    let server: InProcessServer;
    before(async () => {
      server = await startServer(tlsFlags(first.certFile, first.keyFile));
    });
    after(() => server.app.stop());

    it('echoes over wss:// to a client that verifies the certificate', async () => {
      const { ws, fingerprint } = await openWss(server.app.port, { ca: first.cert });
      assert.equal(fingerprint, first.fingerprint256);
      assert.equal(await echo(ws, 'over tls'), 'over tls');
      await closeClient(ws);
    });

    it('exports the served certificate expiry as a gauge', async () => {
      const expected = Math.floor(
        Date.parse(new (await import('node:crypto')).X509Certificate(first.cert).validTo) / 1000,
      );
      assert.equal(
        await metricValue(server.metricsUrl, 'wshub_tls_certificate_expiry_timestamp_seconds'),
        expected,
      );
    });

    it('counts and logs a plain ws:// client that reaches the TLS port (reason http_request)', async () => {
      const labels = { reason: 'http_request' };
      const before =
        (await metricValue(server.metricsUrl, 'wshub_tls_handshake_failures_total', labels)) ?? 0;
      const ws = new WebSocket(`ws://127.0.0.1:${server.app.port}/ws`);
      const [error] = (await once(ws, 'error').catch((e: unknown) => [e])) as [Error];
      assert.ok(error instanceof Error);
      assert.equal(
        await waitForMetric(server.metricsUrl, 'wshub_tls_handshake_failures_total', before + 1, labels),
        before + 1,
      );
      await server.log.waitFor(
        /TLS handshake failed from 127\.0\.0\.1:\d+ \(http_request\): ERR_SSL_HTTP_REQUEST/,
      );
    });

    it('counts a TCP connection closed before the handshake (a health check) as reason closed', async () => {
      const labels = { reason: 'closed' };
      const before =
        (await metricValue(server.metricsUrl, 'wshub_tls_handshake_failures_total', labels)) ?? 0;
      const socket = netConnect(server.app.port, '127.0.0.1');
      await once(socket, 'connect');
      socket.end();
      assert.equal(
        await waitForMetric(server.metricsUrl, 'wshub_tls_handshake_failures_total', before + 1, labels),
        before + 1,
      );
      await server.log.waitFor(/TLS connection from .* closed before the handshake completed/);
    });
  });

  it('counts a client that never starts the handshake as reason timeout (--handshake-timeout)', async () => {
    const server = await startServer(tlsFlags(first.certFile, first.keyFile, ['--handshake-timeout=200ms']));
    try {
      const socket = netConnect(server.app.port, '127.0.0.1');
      await once(socket, 'connect');
      await once(socket, 'close');
      assert.equal(
        await waitForMetric(server.metricsUrl, 'wshub_tls_handshake_failures_total', 1, {
          reason: 'timeout',
        }),
        1,
      );
      await server.log.waitFor(/TLS handshake failed from .* \(timeout\): ERR_TLS_HANDSHAKE_TIMEOUT/);
      // Counted once, as a TLS failure: not also as a refused HTTP upgrade.
      assert.equal(
        await metricValue(server.metricsUrl, 'websocket_upgrades_rejected_total', { reason: 'bad_request' }),
        0,
      );
    } finally {
      await server.app.stop();
    }
  });

  describe('accepted file layouts', () => {
    it('a combined file (certificate then key) as both certFile and keyFile', () => {
      const combined = join(temp.dir, 'combined.pem');
      writeFileSync(combined, Buffer.concat([first.cert, readFileSync(first.keyFile)]));
      const material = loadTlsMaterial({ certFile: combined, keyFile: combined, caFile: '' });
      assert.equal(material.fingerprint256, first.fingerprint256);
    });

    it('a traditional "EC PARAMETERS" + "EC PRIVATE KEY" key file, as openssl ecparam writes', () => {
      const keyFile = join(temp.dir, 'traditional.key');
      const certFile = join(temp.dir, 'traditional.crt');
      execFileSync('openssl', ['ecparam', '-name', 'prime256v1', '-genkey', '-out', keyFile]);
      execFileSync('openssl', [
        'req',
        '-x509',
        '-key',
        keyFile,
        '-out',
        certFile,
        '-days',
        '1',
        '-subj',
        '/CN=t',
      ]);
      assert.match(readFileSync(keyFile, 'latin1'), /BEGIN EC PARAMETERS[\s\S]*BEGIN EC PRIVATE KEY/);
      assert.equal(loadTlsMaterial({ certFile, keyFile, caFile: '' }).subject, 'CN=t');
    });
  });

  describe('CA bundle (--tls-ca-file)', () => {
    let root: CertificateFiles;
    let intermediate: CertificateFiles;
    let leaf: CertificateFiles;
    before(() => {
      root = makeCertificate(temp.dir, 'root', { ca: true });
      intermediate = makeCertificate(temp.dir, 'intermediate', { ca: true, issuer: root });
      leaf = makeCertificate(temp.dir, 'leaf', { issuer: intermediate });
    });

    it('sends the intermediate from the CA bundle, so a client trusting only the root verifies the chain', async () => {
      const server = await startServer(
        tlsFlags(leaf.certFile, leaf.keyFile, [`--tls-ca-file=${intermediate.certFile}`]),
      );
      try {
        const { ws, fingerprint } = await openWss(server.app.port, { ca: root.cert });
        assert.equal(fingerprint, leaf.fingerprint256);
        assert.equal(await echo(ws, 'chain'), 'chain');
        await closeClient(ws);
      } finally {
        await server.app.stop();
      }
    });

    it('without the CA bundle the same client cannot verify the leaf (the bundle is what made it work)', async () => {
      const server = await startServer(tlsFlags(leaf.certFile, leaf.keyFile));
      try {
        const ws = new WebSocket(`wss://127.0.0.1:${server.app.port}/ws`, { ca: root.cert });
        const [error] = (await once(ws, 'error').catch((e: unknown) => [e])) as [Error & { code?: string }];
        assert.equal(error.code, 'UNABLE_TO_VERIFY_LEAF_SIGNATURE');
      } finally {
        await server.app.stop();
      }
    });
  });

  it('reloads when the files are overwritten in place (cp new.crt tls.crt; cp new.key tls.key)', async () => {
    const dir = join(temp.dir, 'in-place');
    mkdirSync(dir);
    const next = makeCertificate(temp.dir, 'in-place-next');
    copyFileSync(first.certFile, join(dir, 'tls.crt'));
    copyFileSync(first.keyFile, join(dir, 'tls.key'));
    const server = await startServer(tlsFlags(join(dir, 'tls.crt'), join(dir, 'tls.key')));
    try {
      assert.equal(await servedFingerprint(server.app.port), first.fingerprint256);
      copyFileSync(next.certFile, join(dir, 'tls.crt'));
      copyFileSync(next.keyFile, join(dir, 'tls.key'));
      await server.log.waitFor(/TLS certificate reloaded \(file change\)/);
      assert.equal(await servedFingerprint(server.app.port), next.fingerprint256);
      // One debounced reload for the two writes, none failed half-way.
      assert.equal(await metricValue(server.metricsUrl, 'wshub_tls_reloads_total', { result: 'failure' }), 0);
      assert.equal(await metricValue(server.metricsUrl, 'wshub_tls_reloads_total', { result: 'success' }), 1);
    } finally {
      await server.app.stop();
    }
  });

  describe('reload on a Kubernetes Secret rotation (symlink swap)', () => {
    let server: InProcessServer;
    let mount: string;
    let second: CertificateFiles;
    let third: CertificateFiles;

    /** Lays out a Secret volume as the kubelet does: tls.crt -> ..data/tls.crt, ..data -> ..<version>. */
    function writeVersion(version: string, cert: string, key: string): void {
      const dir = join(mount, `..${version}`);
      mkdirSync(dir);
      copyFileSync(cert, join(dir, 'tls.crt'));
      copyFileSync(key, join(dir, 'tls.key'));
    }
    function swapTo(version: string): void {
      symlinkSync(`..${version}`, join(mount, '..data_tmp'));
      renameSync(join(mount, '..data_tmp'), join(mount, '..data'));
    }

    before(async () => {
      second = makeCertificate(temp.dir, 'second');
      third = makeCertificate(temp.dir, 'third');
      mount = join(temp.dir, 'secret');
      mkdirSync(mount);
      writeVersion('v1', first.certFile, first.keyFile);
      symlinkSync('..v1', join(mount, '..data'));
      symlinkSync('..data/tls.crt', join(mount, 'tls.crt'));
      symlinkSync('..data/tls.key', join(mount, 'tls.key'));
      server = await startServer(tlsFlags(join(mount, 'tls.crt'), join(mount, 'tls.key')));
    });
    after(() => server.app.stop());

    it('serves the new certificate to new connections while an open connection keeps working', async () => {
      const kept = await openWss(server.app.port);
      assert.equal(kept.fingerprint, first.fingerprint256);

      writeVersion('v2', second.certFile, second.keyFile);
      swapTo('v2');
      await server.log.waitFor(/TLS certificate reloaded \(file change\): .*sha256 /);
      assert.equal(
        await waitForMetric(server.metricsUrl, 'wshub_tls_reloads_total', 1, { result: 'success' }),
        1,
      );

      assert.equal(await servedFingerprint(server.app.port), second.fingerprint256);
      const fresh = await openWss(server.app.port);
      assert.equal(fresh.fingerprint, second.fingerprint256);
      assert.equal(await echo(fresh.ws, 'new'), 'new');
      assert.equal(kept.ws.readyState, WebSocket.OPEN);
      assert.equal(await echo(kept.ws, 'still here'), 'still here');
      assert.equal(server.app.connectionCount(), 2);
      await closeClient(fresh.ws);
      await closeClient(kept.ws);
    });

    it('keeps the current certificate when the new pair is broken, and takes the next good one', async () => {
      const failuresBefore =
        (await metricValue(server.metricsUrl, 'wshub_tls_reloads_total', { result: 'failure' })) ?? 0;
      const successesBefore =
        (await metricValue(server.metricsUrl, 'wshub_tls_reloads_total', { result: 'success' })) ?? 0;
      const kept = await openWss(server.app.port);
      assert.equal(kept.fingerprint, second.fingerprint256);

      // third's certificate with second's key: a rotation that went wrong.
      writeVersion('v3', third.certFile, second.keyFile);
      swapTo('v3');
      await server.log.waitFor(
        /TLS certificate reload \(file change\) failed, keeping the current certificate: .*does not match/,
      );
      assert.equal(
        await waitForMetric(server.metricsUrl, 'wshub_tls_reloads_total', failuresBefore + 1, {
          result: 'failure',
        }),
        failuresBefore + 1,
      );
      assert.equal(await servedFingerprint(server.app.port), second.fingerprint256);
      assert.equal(await echo(kept.ws, 'unaffected'), 'unaffected');

      writeVersion('v4', third.certFile, third.keyFile);
      swapTo('v4');
      assert.equal(
        await waitForMetric(server.metricsUrl, 'wshub_tls_reloads_total', successesBefore + 1, {
          result: 'success',
        }),
        successesBefore + 1,
      );
      assert.equal(await servedFingerprint(server.app.port), third.fingerprint256);
      assert.equal(await echo(kept.ws, 'after'), 'after');
      await closeClient(kept.ws);
    });

    it('ignores directory events that do not change the files (nothing reloaded, nothing counted)', async () => {
      const successes = await metricValue(server.metricsUrl, 'wshub_tls_reloads_total', {
        result: 'success',
      });
      const failures = await metricValue(server.metricsUrl, 'wshub_tls_reloads_total', { result: 'failure' });
      const reloadedLines = server.log.count(/TLS certificate reload/);
      writeFileSync(join(mount, 'unrelated.txt'), 'x');
      // The debounce is 500 ms; give the watcher a full second to (not) act.
      await new Promise((resolve) => setTimeout(resolve, 1000));
      assert.equal(
        await metricValue(server.metricsUrl, 'wshub_tls_reloads_total', { result: 'success' }),
        successes,
      );
      assert.equal(
        await metricValue(server.metricsUrl, 'wshub_tls_reloads_total', { result: 'failure' }),
        failures,
      );
      assert.equal(server.log.count(/TLS certificate reload/), reloadedLines);
    });
  });
});
