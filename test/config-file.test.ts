import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { parse } from 'yaml';
import { makeCertificate, requireOpenssl } from './helpers/certs.js';
import { assertUsageError, runToExit } from './helpers/cli.js';
import { TestClient } from './helpers/clients.js';
import { runWshub } from './helpers/server.js';

// Generous: CI machines are shared, and a spawned Node process can take seconds to start there.
const STARTUP_MS = 30_000;
const dir = mkdtempSync(join(tmpdir(), 'wshub-config-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function file(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

// The Go hub's config.yaml (seed 002), with ports a test can use.
const SEED_SHAPE = `server:
  port: 0
  tls:
    enabled: false
    certFile: ""
    keyFile: ""
metrics:
  enabled: true
  port: 0
`;

describe('--config-file (spawned process)', () => {
  it('--check-config accepts a file in the Go hub shape and says so', async () => {
    const hub = file('hub.yaml', SEED_SHAPE);
    const result = await runToExit([`--config-file=${hub}`, '--check-config']);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, `wshub: configuration OK (config file ${hub})`);
    assert.equal(result.stderr, '');
  });

  it('serves with a file in the Go hub shape, with the mode from the environment', async () => {
    const hub = file('serve.yaml', `${SEED_SHAPE}  host: 127.0.0.1\n`);
    const run = runWshub([`--config-file=${hub}`, '--host=127.0.0.1', '--stats-interval=0'], {
      WSHUB_MODE: 'broadcast',
    });
    try {
      const started = await run.stdout.waitFor(
        /Starting WebSocket server on 127\.0\.0\.1:(\d+)$/,
        STARTUP_MS,
      );
      const port = Number(/:(\d+)$/.exec(started)?.[1]);
      const metricsLine = await run.stdout.waitFor(
        /Starting metrics server on 127\.0\.0\.1:(\d+)$/,
        STARTUP_MS,
      );
      const metricsPort = Number(/:(\d+)$/.exec(metricsLine)?.[1]);
      const [a, b] = await Promise.all([
        TestClient.open(`ws://127.0.0.1:${port}/ws`),
        TestClient.open(`ws://127.0.0.1:${port}/ws`),
      ]);
      await a.send('via yaml');
      assert.equal((await b.next()).data.toString(), 'via yaml');
      const metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
      assert.match(metrics, /^websocket_messages_total 1$/m);
      a.ws.terminate();
      b.ws.terminate();
    } finally {
      run.child.kill('SIGKILL');
      await run.exited;
    }
  });

  it('issue 3 done-when: a Go hub config with TLS, several wss:// clients, every message reaches all, counters in /metrics', async () => {
    requireOpenssl();
    const cert = makeCertificate(dir, 'hub');
    const hub = file(
      'tls.yaml',
      `server:\n  port: 0\n  host: 127.0.0.1\n  tls:\n    enabled: true\n    certFile: "${cert.certFile}"\n    keyFile: "${cert.keyFile}"\nmetrics:\n  enabled: true\n  host: 127.0.0.1\n  port: 0\n`,
    );
    const check = await runToExit([`--config-file=${hub}`, '--check-config'], { WSHUB_MODE: 'broadcast' });
    assert.equal(check.code, 0, check.stderr);
    const run = runWshub([`--config-file=${hub}`, '--stats-interval=0'], { WSHUB_MODE: 'broadcast' });
    const clients: TestClient[] = [];
    try {
      const started = await run.stdout.waitFor(/Starting WebSocket server on 127\.0\.0\.1:(\d+)/, STARTUP_MS);
      const port = Number(/:(\d+)/.exec(started.slice(started.indexOf('127.0.0.1')))?.[1]);
      const metricsLine = await run.stdout.waitFor(
        /Starting metrics server on 127\.0\.0\.1:(\d+)$/,
        STARTUP_MS,
      );
      const metricsPort = Number(/:(\d+)$/.exec(metricsLine)?.[1]);
      for (let i = 0; i < 3; i++) {
        clients.push(await TestClient.open(`wss://127.0.0.1:${port}/ws`, { ca: cert.cert }));
      }
      await clients[0]?.send('over tls');
      await clients[2]?.send(Buffer.from([1, 2, 3]), { binary: true });
      for (const client of clients) {
        // Two senders on two connections: the hub keeps each sender's order, not an order between senders.
        const received = await client.take(2, STARTUP_MS);
        const text = received.find((message) => !message.isBinary);
        const binary = received.find((message) => message.isBinary);
        assert.deepEqual([text?.data.toString(), text?.isBinary], ['over tls', false]);
        assert.deepEqual([binary?.data, binary?.isBinary], [Buffer.from([1, 2, 3]), true]);
      }
      const metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
      assert.match(metrics, /^websocket_connected_clients 3$/m);
      assert.match(metrics, /^websocket_connections_total 3$/m);
      assert.match(metrics, /^websocket_messages_total 2$/m);
      assert.match(metrics, /^websocket_messages_delivered_total 6$/m);
    } finally {
      for (const client of clients) client.ws.terminate();
      run.child.kill('SIGKILL');
      await run.exited;
    }
  });

  it('runs no metrics server with metrics.enabled: false, and logs that', async () => {
    const hub = file('nometrics.yaml', 'server:\n  port: 0\nmetrics:\n  enabled: false\n  port: 0\n');
    const run = runWshub([`--config-file=${hub}`, '--host=127.0.0.1']);
    try {
      await run.stdout.waitFor(/Starting WebSocket server on/, STARTUP_MS);
      await run.stdout.waitFor(/Metrics server disabled \(metrics\.enabled: false\)$/, STARTUP_MS);
      assert.equal(run.stdout.count(/Starting metrics server/), 0);
    } finally {
      run.child.kill('SIGKILL');
      await run.exited;
    }
  });

  it('rejects an unknown key with its line and the closest known key', async () => {
    const hub = file('unknown.yaml', 'server:\n  port: 8443\nmetrics:\n  enable: true\n');
    for (const extra of [[], ['--check-config']]) {
      assertUsageError(
        await runToExit([`--config-file=${hub}`, ...extra]),
        'WSHUB_UNKNOWN_KEY',
        new RegExp(`${hub}:4: unknown key metrics\\.enable; did you mean metrics\\.enabled\\?`),
      );
    }
  });

  it('rejects a value of the wrong type naming the key path, the line and what is allowed', async () => {
    const hub = file('type.yaml', 'server:\n  port: 8443\nmetrics:\n  enabled: true\n  port: ninety\n');
    assertUsageError(
      await runToExit([`--config-file=${hub}`, '--check-config']),
      'WSHUB_INVALID_VALUE',
      new RegExp(`${hub}:5: invalid value for metrics\\.port: "ninety"; expected an integer from 0 to 65535`),
    );
    const notBool = file('bool.yaml', 'metrics:\n  enabled: sometimes\n');
    assertUsageError(
      await runToExit([`--config-file=${notBool}`]),
      'WSHUB_INVALID_VALUE',
      /bool\.yaml:2: invalid value for metrics\.enabled: "sometimes"; expected true or false/,
    );
    const badMode = file('mode.yaml', 'server:\n  mode: fanout\n');
    assertUsageError(
      await runToExit([`--config-file=${badMode}`]),
      'WSHUB_INVALID_VALUE',
      /mode\.yaml:2: invalid value for server\.mode: "fanout"; expected one of echo, broadcast/,
    );
  });

  it('refuses a broadcast setting in echo mode instead of ignoring it', async () => {
    const hub = file('exclude.yaml', 'broadcast:\n  excludeSender: true\n');
    assertUsageError(
      await runToExit([`--config-file=${hub}`, '--check-config']),
      'WSHUB_CONFLICTING_SETTINGS',
      /broadcast\.excludeSender \(.*exclude\.yaml:2\) only applies in broadcast mode, but --mode is echo/,
    );
    const ok = await runToExit([`--config-file=${hub}`, '--check-config'], { WSHUB_MODE: 'broadcast' });
    assert.equal(ok.code, 0, ok.stderr);
  });

  it('says so when the file is missing or unreadable', async () => {
    const missing = join(dir, 'nope.yaml');
    assertUsageError(
      await runToExit([`--config-file=${missing}`]),
      'WSHUB_CONFIG_FILE_UNREADABLE',
      new RegExp(`cannot read config file ${missing} \\(--config-file\\): no such file`),
    );
    assertUsageError(
      await runToExit(['--check-config'], { WSHUB_CONFIG_FILE: dir }),
      'WSHUB_CONFIG_FILE_UNREADABLE',
      new RegExp(`cannot read config file ${dir}`),
    );
  });

  it('reports a YAML syntax error with its line', async () => {
    const hub = file('syntax.yaml', 'server:\n  port: 8443\n  tls: [enabled\nmetrics:\n  port: 9090\n');
    const result = await runToExit([`--config-file=${hub}`, '--check-config']);
    assertUsageError(result, 'WSHUB_CONFIG_FILE_SYNTAX', new RegExp(`${hub}:\\d+: invalid YAML`));
  });

  it('--print-config prints the effective configuration as YAML that loads back', async () => {
    const hub = file('print.yaml', 'server:\n  port: 8443\nmetrics:\n  port: 9090\n');
    const printed = await runToExit([`--config-file=${hub}`, '--print-config', '--mode=broadcast'], {
      WSHUB_MAX_BUFFERED_BYTES: '256KiB',
    });
    assert.equal(printed.code, 0, printed.stderr);
    const yaml = parse(printed.stdout) as {
      server: { port: number; mode: string };
      metrics: { port: number; enabled: boolean };
      limits: { maxBufferedBytes: string };
    };
    assert.deepEqual(
      [
        yaml.server.port,
        yaml.server.mode,
        yaml.metrics.port,
        yaml.metrics.enabled,
        yaml.limits.maxBufferedBytes,
      ],
      [8443, 'broadcast', 9090, true, '256KiB'],
    );
    const again = file('printed.yaml', printed.stdout);
    const check = await runToExit([`--config-file=${again}`, '--print-config']);
    assert.equal(check.stdout, printed.stdout);
  });
});
