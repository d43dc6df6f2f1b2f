import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { WebSocketServer } from 'ws';
import { type CertificateFiles, makeCertificate, makeTempDir, requireOpenssl } from './helpers/certs.js';
import { type InProcessServer, runWshub, type SpawnResult, startServer } from './helpers/server.js';

/** Runs `wshub client ...` with `input` piped to its stdin (stdin left open when input is undefined). */
function runClient(args: string[], input?: string): SpawnResult {
  const run = runWshub(['client', ...args], {}, { stdin: 'pipe' });
  if (input !== undefined) run.child.stdin?.end(input);
  return run;
}

async function finished(
  run: SpawnResult,
): Promise<{ code: number | null; stdout: string[]; stderr: string[] }> {
  const { code } = await run.exited;
  // Output is complete once the pipes have closed.
  await Promise.all([
    run.child.stdout && !run.child.stdout.readableEnded ? once(run.child.stdout, 'end') : undefined,
    run.child.stderr && !run.child.stderr.readableEnded ? once(run.child.stderr, 'end') : undefined,
  ]);
  return { code, stdout: run.stdout.lines, stderr: run.stderr.lines };
}

describe('wshub client', () => {
  let server: InProcessServer;
  before(async () => {
    server = await startServer(['--stats-interval=0']);
  });
  after(() => server.app.stop());

  it('sends every stdin line, prints every echo, closes with 1000 when stdin ends and exits 0', async () => {
    const result = await finished(runClient([server.url], 'hello\nworld\n\nlast line without newline'));
    assert.deepEqual(result.stdout, ['hello', 'world', '', 'last line without newline']);
    assert.equal(result.code, 0, result.stderr.join('\n'));
    assert.deepEqual(result.stderr, [`connected to ${server.url}`, 'closed: 1000 (normal closure)']);
    await server.log.waitFor(/WebSocket disconnected/);
  });

  it('keeps order for many lines through a pipe', async () => {
    const lines = Array.from({ length: 500 }, (_, i) => `line ${i}`);
    const result = await finished(runClient([server.url], `${lines.join('\n')}\n`));
    assert.equal(result.code, 0);
    assert.deepEqual(result.stdout, lines);
  });

  it('ends quietly when its reader goes away (wshub client | head -1)', async () => {
    const run = runWshub(['client', server.url], {}, { stdin: 'pipe' });
    const lines = Array.from({ length: 5000 }, (_, i) => `line ${i}`).join('\n');
    run.child.stdin?.end(`${lines}\n`);
    await run.stdout.waitFor(/^line 0$/);
    run.child.stdout?.destroy();
    const { code } = await run.exited;
    const stderr = run.child.stderr;
    if (stderr && !stderr.readableEnded) await once(stderr, 'end');
    assert.equal(code, 0, run.stderr.lines.join('\n'));
    assert.equal(run.stderr.count(/Error|EPIPE|at /), 0, run.stderr.lines.join('\n'));
  });

  it('prints the close code and exits 1 when the server goes away while stdin is still open', async () => {
    const own = await startServer(['--stats-interval=0']);
    const run = runClient([own.url]);
    await run.stderr.waitFor(/^connected to /);
    await own.app.stop();
    const result = await finished(run);
    assert.equal(result.code, 1);
    assert.equal(result.stderr.at(-1), 'closed: 1001 (going away) reason: "server shutting down"');
  });

  it('shows binary messages as base64 with a marker, and application close codes', async () => {
    const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    await once(wss, 'listening');
    wss.on('connection', (ws) => {
      ws.send(Buffer.from([0, 1, 2, 0xfe, 0xff]), { binary: true });
      ws.send('text too');
      ws.close(4001, 'bye');
    });
    try {
      const { port } = wss.address() as AddressInfo;
      const result = await finished(runClient([`ws://127.0.0.1:${port}/`]));
      assert.deepEqual(result.stdout, ['[binary 5 bytes, base64] AAEC/v8=', 'text too']);
      assert.equal(result.stderr.at(-1), 'closed: 4001 (application code) reason: "bye"');
      assert.equal(result.code, 1);
    } finally {
      wss.close();
    }
  });

  it('says so in one line and exits 1 when nothing listens', async () => {
    const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    await once(wss, 'listening');
    const { port } = wss.address() as AddressInfo;
    await new Promise((resolve) => wss.close(resolve));
    const result = await finished(runClient([`ws://127.0.0.1:${port}/ws`], ''));
    assert.equal(result.code, 1);
    assert.deepEqual(result.stderr, [
      `wshub client: cannot connect to ws://127.0.0.1:${port}/ws: connect ECONNREFUSED 127.0.0.1:${port}`,
    ]);
    assert.deepEqual(result.stdout, []);
  });

  it("defaults to the server's default address, ws://127.0.0.1:3003/ws", async () => {
    // Whether or not something listens on 3003 here, the client names the URL it used.
    const result = await finished(runClient([], ''));
    assert.match(result.stderr.join('\n'), /(connected to|cannot connect to) ws:\/\/127\.0\.0\.1:3003\/ws/);
  });

  for (const [args, code] of [
    [['not a url'], 'WSHUB_INVALID_URL'],
    [['http://127.0.0.1:3003/ws'], 'WSHUB_INVALID_URL'],
    [['--insecur'], 'WSHUB_UNKNOWN_FLAG'],
    [['ws://a/', 'ws://b/'], 'WSHUB_UNEXPECTED_ARGUMENT'],
    [['--ca-file'], 'WSHUB_MISSING_VALUE'],
  ] as const) {
    it(`rejects ${args.join(' ')} with one line and exit 2 (${code})`, async () => {
      const result = await finished(runClient([...args], ''));
      assert.equal(result.code, 2);
      assert.equal(result.stderr.length, 1, result.stderr.join('\n'));
      assert.match(result.stderr[0] as string, new RegExp(`^wshub: .*\\[${code}\\]$`));
    });
  }

  it('suggests the flag it guesses was meant', async () => {
    const result = await finished(runClient(['--insecur'], ''));
    assert.match(result.stderr[0] as string, /did you mean --insecure/);
  });

  it('has its own --help', async () => {
    const result = await finished(runClient(['--help']));
    assert.equal(result.code, 0);
    assert.match(result.stdout.join('\n'), /^Usage: wshub client \[flags\] \[URL\]/);
    assert.match(result.stdout.join('\n'), /--insecure/);
  });
});

describe('wshub client over wss://', () => {
  let temp: ReturnType<typeof makeTempDir>;
  let cert: CertificateFiles;
  let server: InProcessServer;
  let url: string;
  before(async () => {
    requireOpenssl();
    temp = makeTempDir();
    cert = makeCertificate(temp.dir, 'self-signed');
    server = await startServer([
      '--stats-interval=0',
      '--tls',
      `--tls-cert-file=${cert.certFile}`,
      `--tls-key-file=${cert.keyFile}`,
    ]);
    url = `wss://127.0.0.1:${server.app.port}/ws`;
  });
  after(async () => {
    await server.app.stop();
    temp.cleanup();
  });

  it('refuses a self-signed certificate by default and says how to accept it', async () => {
    const result = await finished(runClient([url], 'x\n'));
    assert.equal(result.code, 1);
    assert.equal(result.stderr.length, 1);
    assert.match(result.stderr[0] as string, /self-signed certificate .*use --insecure/);
  });

  it('accepts it with --insecure', async () => {
    const result = await finished(runClient(['--insecure', url], 'secure hello\n'));
    assert.equal(result.code, 0, result.stderr.join('\n'));
    assert.deepEqual(result.stdout, ['secure hello']);
  });

  it('verifies it with --ca-file', async () => {
    const result = await finished(runClient([`--ca-file=${cert.certFile}`, url], 'verified\n'));
    assert.equal(result.code, 0, result.stderr.join('\n'));
    assert.deepEqual(result.stdout, ['verified']);
  });
});
