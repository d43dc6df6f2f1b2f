import assert from 'node:assert/strict';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { WebSocket } from 'ws';
import { Http2WebSocketConnection } from '../src/client/http2.js';
import { makeCertificate, makeTempDir, requireOpenssl } from './helpers/certs.js';
import { metricValue } from './helpers/metrics.js';
import { type InProcessServer, runWshub, type SpawnResult, startServer } from './helpers/server.js';

function runClient(args: string[], input: string): SpawnResult {
  const run = runWshub(['client', ...args], {}, { stdin: 'pipe' });
  run.child.stdin?.end(input);
  return run;
}

async function finished(
  run: SpawnResult,
): Promise<{ code: number | null; stdout: string[]; stderr: string[] }> {
  const { code } = await run.exited;
  await Promise.all([
    run.child.stdout && !run.child.stdout.readableEnded ? once(run.child.stdout, 'end') : undefined,
    run.child.stderr && !run.child.stderr.readableEnded ? once(run.child.stderr, 'end') : undefined,
  ]);
  return { code, stdout: run.stdout.lines, stderr: run.stderr.lines };
}

describe('wshub client --http2', () => {
  let server: InProcessServer;
  before(async () => {
    server = await startServer(['--http2', '--stats-interval=0']);
  });
  after(() => server.app.stop());

  it('talks over h2c: every line echoed, 1000 at the end of stdin, exit 0; the server saw HTTP/2', async () => {
    const result = await finished(runClient(['--http2', server.url], 'hello\nworld\n'));
    assert.deepEqual(result.stdout, ['hello', 'world']);
    assert.equal(result.code, 0, result.stderr.join('\n'));
    assert.deepEqual(result.stderr, [`connected to ${server.url} (HTTP/2)`, 'closed: 1000 (normal closure)']);
    await server.log.waitFor(/WebSocket disconnected/);
    assert.equal(
      await metricValue(server.metricsUrl, 'wshub_connections_by_http_version_total', { http_version: '2' }),
      1,
    );
  });

  it('reports a refusal status and exits 1', async () => {
    const result = await finished(runClient(['--http2', server.url.replace('/ws', '/nope')], 'x\n'));
    assert.equal(result.code, 1);
    assert.match(result.stderr.join('\n'), /Unexpected server response: 404/);
  });

  it('terminate() while the stream is opening cancels it: error, then close 1006; no method replaced on the WebSocket', async () => {
    const connection = new Http2WebSocketConnection(server.url, {
      rejectUnauthorized: true,
      maxPayload: 1024,
    });
    try {
      const ws = connection.open(server.url);
      assert.equal(
        Object.hasOwn(ws, 'terminate'),
        false,
        'terminate is the class method, not a per-connection one',
      );
      const events: string[] = [];
      ws.on('error', (error: Error) => events.push(`error: ${error.message}`));
      // Not events.once: it would reject on the 'error' that comes first.
      const closed = new Promise<number>((resolve) => ws.on('close', resolve));
      ws.terminate();
      const code = await closed;
      assert.equal(code, 1006);
      assert.deepEqual(events, ['error: WebSocket was closed before the connection was established']);
      assert.equal(ws.readyState, WebSocket.CLOSED);
    } finally {
      connection.close();
    }
  });

  it('says what is wrong when the server does not speak HTTP/2', async () => {
    const plain = await startServer(['--stats-interval=0']);
    try {
      const result = await finished(runClient(['--http2', plain.url], 'x\n'));
      assert.equal(result.code, 1);
      assert.match(result.stderr.join('\n'), /does not speak HTTP\/2 here: start it with --http2/);
    } finally {
      await plain.app.stop();
    }
  });

  it('talks h2 by ALPN to a TLS server (wss://)', async () => {
    requireOpenssl();
    const temp = makeTempDir();
    const cert = makeCertificate(temp.dir, 'server');
    const tls = await startServer([
      '--http2',
      '--tls',
      `--tls-cert-file=${cert.certFile}`,
      `--tls-key-file=${cert.keyFile}`,
      '--stats-interval=0',
    ]);
    try {
      assert.ok(readFileSync(cert.certFile).length > 0);
      const url = `wss://127.0.0.1:${tls.app.port}/ws`;
      const result = await finished(runClient(['--http2', `--ca-file=${cert.certFile}`, url], 'secure\n'));
      assert.equal(result.code, 0, result.stderr.join('\n'));
      assert.deepEqual(result.stdout, ['secure']);
      assert.equal(
        await metricValue(tls.metricsUrl, 'wshub_connections_by_http_version_total', { http_version: '2' }),
        1,
      );
    } finally {
      await tls.app.stop();
      temp.cleanup();
    }
  });
});
