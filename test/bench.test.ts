import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { type AddressInfo, createServer, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { BenchReport } from '../src/bench/report.js';
import { makeCertificate, makeTempDir, requireOpenssl } from './helpers/certs.js';
import { metricValue } from './helpers/metrics.js';
import { BIN, type InProcessServer, runWshub, startServer } from './helpers/server.js';

async function bench(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const run = runWshub(['bench', ...args]);
  const { code } = await run.exited;
  return { code, stdout: run.stdout.lines.join('\n'), stderr: run.stderr.lines.join('\n') };
}

async function benchJson(args: string[]): Promise<{ code: number | null; report: BenchReport }> {
  const { code, stdout, stderr } = await bench([...args, '--json']);
  assert.equal(stderr, '', 'nothing on stderr when it is not a terminal');
  return { code, report: JSON.parse(stdout) as BenchReport };
}

describe('wshub bench against a real wshub on loopback', () => {
  let server: InProcessServer;
  before(async () => {
    server = await startServer(['--stats-interval=0']);
  });
  after(() => server.app.stop());

  it('echo, closed loop, 2 workers: every message sent comes back, and is timed', async () => {
    const { code, report } = await benchJson([
      server.url,
      '--connections=6',
      '--workers=2',
      '--duration=1s',
      '--size=100',
    ]);
    assert.equal(code, 0);
    assert.equal(report.workers, 2);
    assert.equal(report.connections.established, 6);
    assert.equal(report.connections.failed, 0);
    assert.equal(report.connections.unexpectedCloses, 0);
    assert.ok(report.messages.sent > 0);
    assert.equal(report.messages.received, report.messages.sent);
    assert.equal(report.messages.lost, 0);
    assert.equal(report.messages.bytesReceived, report.messages.sent * 100);
    assert.equal(report.latencyMs.count, report.messages.received);
    assert.ok((report.latencyMs.p50 ?? 0) > 0);
    assert.ok((report.latencyMs.p50 ?? 0) <= (report.latencyMs.p99 ?? 0));
    assert.ok((report.latencyMs.p99 ?? 0) <= (report.latencyMs.max ?? 0));
    assert.deepEqual(report.closeCodes, { 1000: 6 });
    assert.equal(report.connections.connectMs.count, 6);
    assert.equal(report.errors, 0);
    assert.equal(report.passed, true);
    // The server saw the same traffic.
    assert.equal(server.app.stats.messagesReceived >= report.messages.sent, true);
  });

  it('echo at a fixed rate sends about rate x connections x duration', async () => {
    const { code, report } = await benchJson([
      server.url,
      '--connections=4',
      '--rate=50',
      '--duration=1s',
      '--max-errors=0',
    ]);
    assert.equal(code, 0);
    assert.equal(report.messages.received, report.messages.sent);
    // 4 x 50/s x 1s = 200; bounded loosely (timers on a loaded machine), never above the schedule.
    assert.ok(report.messages.sent >= 60 && report.messages.sent <= 204, String(report.messages.sent));
  });

  it('counts HTTP statuses of refused upgrades by status (404 for an unknown path)', async () => {
    const url = server.url.replace(/\/ws$/, '/no-such-path');
    const { code, report } = await benchJson([url, '--connections=3', '--duration=300ms']);
    assert.equal(code, 1, 'no connection established is a failure');
    assert.deepEqual(report.connections.failedByReason, { http_404: 3 });
    assert.equal(report.connections.established, 0);
    assert.equal(report.errors, 3);
    assert.equal(report.passed, false);
  });

  it('prints a human report when piped, without a progress line', async () => {
    const { code, stdout, stderr } = await bench([server.url, '--connections=2', '--duration=300ms']);
    assert.equal(code, 0);
    assert.equal(stderr, '');
    assert.match(stdout, /^connections {3}2 established, 0 failed, 0 closed unexpectedly$/m);
    assert.match(
      stdout,
      /^latency {7}p50 [\d.]+ ms {2}p90 [\d.]+ ms {2}p99 [\d.]+ ms {2}p99\.9 [\d.]+ ms {2}max [\d.]+ ms/m,
    );
    assert.match(stdout, /^close codes {3}1000: 2$/m);
    assert.doesNotMatch(stdout, /\r/);
  });

  it('shows a live progress line when run on a terminal', async () => {
    // script(1) runs the command on a pseudo-terminal; the in-process server must keep serving, so no spawnSync.
    const command = `${process.execPath} ${BIN} bench ${server.url} --connections=2 --duration=1200ms`;
    const child = spawn('script', ['-qec', command, '/dev/null'], { stdio: ['ignore', 'pipe', 'pipe'] });
    const failedToStart = once(child, 'error').then(([error]) => {
      throw new Error(`cannot run script(1) (Debian package bsdutils) for a pseudo-terminal: ${error}`);
    });
    let output = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      output += chunk;
    });
    const [status] = (await Promise.race([once(child, 'exit'), failedToStart])) as [number];
    assert.equal(status, 0, output);
    const clearLine = '\r\u001b[K';
    const progress = output.split(clearLine).slice(1, -1);
    assert.ok(progress.length > 0, `no progress line in ${JSON.stringify(output)}`);
    assert.match(
      progress.at(-1) ?? '',
      /^[\d.]+s\/1s {2}connections 2 open, 0 failed {2}messages [\d,]+ sent/,
    );
    assert.match(output, /connections {3}2 established/);
  });
});

describe('wshub bench --mode=broadcast against a broadcast-mode wshub', () => {
  it('every connection receives every message of its room, timed across worker threads', async () => {
    const server = await startServer(['--stats-interval=0', '--mode=broadcast']);
    try {
      const { code, report } = await benchJson([
        server.url.replace(/\/ws$/, '/ws/bench-room'),
        '--mode=broadcast',
        '--connections=3',
        '--connect-rate=1000',
        '--workers=2',
        '--rate=20',
        '--duration=1s',
      ]);
      assert.equal(code, 0);
      assert.equal(report.connections.established, 3);
      const { sent, received } = report.messages;
      assert.ok(sent > 0);
      // Each message reaches all 3 (the sender too); one sent while the ramp-up was still
      // opening the others reaches fewer (how many depends on the machine's load).
      assert.ok(received <= sent * 3 && received >= sent * 2, `sent ${sent}, received ${received}`);
      assert.equal(report.latencyMs.count, received);
      assert.equal(report.errors, 0);
    } finally {
      await server.app.stop();
    }
  });
});

describe('wshub bench --http2 against wshub --http2 (issue 17)', () => {
  it('opens the WebSockets as streams of shared HTTP/2 connections and reports how many shared each', async () => {
    const server = await startServer(['--stats-interval=0', '--http2']);
    try {
      const { code, report } = await benchJson([
        server.url,
        '--http2',
        '--connections=8',
        '--streams-per-connection=4',
        '--workers=1',
        '--connect-rate=1000',
        '--duration=1s',
      ]);
      assert.equal(code, 0);
      assert.equal(report.connections.established, 8);
      assert.deepEqual(report.connections.http2, { connections: 2, streamsPerConnection: 4 });
      assert.ok(report.messages.sent > 0);
      assert.equal(report.messages.received, report.messages.sent);
      assert.equal(report.errors, 0);
      // What the server saw: two HTTP/2 connections carrying the 8 WebSockets, none over HTTP/1.1.
      assert.equal(await metricValue(server.metricsUrl, 'wshub_http2_connections_total'), 2);
      const byVersion = (version: string) =>
        metricValue(server.metricsUrl, 'wshub_connections_by_http_version_total', { http_version: version });
      assert.equal(await byVersion('2'), 8);
      assert.equal(await byVersion('1.1'), 0);

      // The human report says it too (3 streams, 2 per connection: 2 connections, 1.5 on average).
      const human = await bench([
        server.url,
        '--http2',
        '--connections=3',
        '--streams-per-connection=2',
        '--workers=1',
        '--connect-rate=1000',
        '--duration=500ms',
      ]);
      assert.equal(human.code, 0, human.stderr);
      assert.match(human.stdout, /^http\/2 +2 connections, 1\.5 WebSocket streams per connection$/m);
    } finally {
      await server.app.stop();
    }
  });

  it('wss:// with --http2: h2 by ALPN (--insecure for a self-signed certificate)', async () => {
    requireOpenssl();
    const { dir, cleanup } = makeTempDir();
    const cert = makeCertificate(dir, 'server');
    const server = await startServer([
      '--stats-interval=0',
      '--http2',
      '--tls',
      `--tls-cert-file=${cert.certFile}`,
      `--tls-key-file=${cert.keyFile}`,
    ]);
    try {
      const { code, report } = await benchJson([
        server.url.replace(/^ws:/, 'wss:'),
        '--http2',
        '--insecure',
        '--connections=3',
        '--workers=1',
        '--duration=1s',
      ]);
      assert.equal(code, 0);
      assert.equal(report.connections.established, 3);
      assert.deepEqual(report.connections.http2, { connections: 1, streamsPerConnection: 3 });
      assert.equal(report.messages.received, report.messages.sent);
      assert.equal(
        await metricValue(server.metricsUrl, 'wshub_connections_by_http_version_total', {
          http_version: '2',
        }),
        3,
      );
    } finally {
      await server.app.stop();
      cleanup();
    }
  });
});

describe('wshub bench failures by reason', () => {
  it('counts refused connections against a closed port and exits 1 over --max-errors', async () => {
    const port = await closedPort();
    const { code, report } = await benchJson([
      `ws://127.0.0.1:${port}/ws`,
      '--connections=4',
      '--duration=300ms',
      '--max-errors=0',
    ]);
    assert.equal(code, 1);
    assert.deepEqual(report.connections.failedByReason, { refused: 4 });
    assert.equal(report.errors, 4);
    assert.equal(report.maxErrors, 0);
  });

  it('counts handshake timeouts against a server that never answers', async () => {
    const silent = createServer(function holdOpen(socket: Socket) {
      socket.on('error', () => {});
    });
    silent.listen(0, '127.0.0.1');
    await once(silent, 'listening');
    try {
      const { port } = silent.address() as AddressInfo;
      const { report } = await benchJson([
        `ws://127.0.0.1:${port}/ws`,
        '--connections=2',
        '--connect-timeout=200ms',
        '--duration=1s',
      ]);
      assert.deepEqual(report.connections.failedByReason, { timeout: 2 });
    } finally {
      silent.close();
      silent.unref();
    }
  });

  it('exits 2 with one line for a usage error', async () => {
    const { code, stderr } = await bench(['ws://127.0.0.1:1/ws', '--conections=3']);
    assert.equal(code, 2);
    assert.match(
      stderr,
      /^wshub: unknown flag --conections for wshub bench; did you mean --connections\?.*\[WSHUB_UNKNOWN_FLAG\]$/,
    );
  });
});

async function closedPort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}
