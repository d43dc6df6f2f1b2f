import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { makeCertificate, makeTempDir, requireOpenssl } from './helpers/certs.js';
import { clientFrame, rawHandshake, TestClient } from './helpers/clients.js';
import { closeCodeOf, type FrameReader } from './helpers/frames.js';
import { H2Client } from './helpers/h2.js';
import { metricValue, waitForMetric } from './helpers/metrics.js';
import { clientClose, openRaw } from './helpers/raw.js';
import { type InProcessServer, startServer } from './helpers/server.js';

/**
 * Issue 17, "questions people ask at the load balancer": ?hello reports what reached the server,
 * ?status refuses the handshake, ?close-after / ?close-in close later, ?ignore-pings leaves pings
 * unanswered. Each over HTTP/1.1 (raw sockets or ws) and HTTP/2 (Node's http2 client, frames by hand).
 */

interface FrameSource {
  readonly frames: FrameReader;
  sendText(text: string): void;
  sendPing(payload: string): void;
  /** Sends a close frame and waits for the server's. */
  close(): Promise<void>;
}

function rawSource(raw: Awaited<ReturnType<typeof openRaw>>): FrameSource {
  return {
    frames: raw.reader,
    sendText: (text) => raw.send(clientFrame(0x1, Buffer.from(text))),
    sendPing: (payload) => raw.send(clientFrame(0x9, Buffer.from(payload))),
    close: async () => {
      raw.send(clientClose(1000));
      await raw.reader.nextClose();
    },
  };
}

function h2Source(ws: Awaited<ReturnType<H2Client['openOk']>>): FrameSource {
  return {
    frames: ws.frames,
    sendText: (text) => ws.sendText(text),
    sendPing: (payload) => ws.sendFrame(0x9, Buffer.from(payload)),
    close: async () => {
      ws.close();
      await ws.frames.nextClose();
    },
  };
}

async function nextData(source: FrameSource): Promise<string> {
  const frame = await source.frames.next();
  assert.equal(frame.opcode, 0x1, `expected a text frame, got opcode ${frame.opcode}`);
  return frame.payload.toString('utf8');
}

describe('fault injection at the load balancer (issue 17), HTTP/1.1 and HTTP/2', () => {
  let server: InProcessServer;
  let h2: H2Client;
  before(async () => {
    server = await startServer(['--stats-interval=0', '--allow-fault-injection', '--http2']);
    h2 = await H2Client.connect(`http://127.0.0.1:${server.app.port}`);
  });
  after(async () => {
    h2.close();
    await server.app.stop();
  });

  /** Opens `path` over HTTP/1.1 (raw socket) or HTTP/2 (a stream of the shared connection). */
  async function open(version: '1.1' | '2', path: string, headers: Record<string, string> = {}) {
    if (version === '2') return h2Source(await h2.openOk(path, headers));
    const raw = await openRaw(
      server.app.port,
      path,
      Object.entries(headers).map(([name, value]) => `${name}: ${value}`),
    );
    assert.match(raw.response, /^HTTP\/1\.1 101 /);
    return rawSource(raw);
  }

  it('?hello over HTTP/1.1 reports the headers as received (credentials redacted), the version and the forwarding chain', async () => {
    const raw = await openRaw(server.app.port, '/ws/lobby?hello&access_token=s3cr3t-token&client=app', [
      'Authorization: Bearer s3cr3t-bearer',
      'Cookie: session=s3cr3t-cookie',
      'Proxy-Authorization: Basic s3cr3t-proxy',
      'X-Forwarded-For: 203.0.113.9, 10.0.0.2',
      'X-Forwarded-Proto: https',
      'Forwarded: for=203.0.113.9;proto=https;host=ws.example.com',
      'Via: 1.1 haproxy',
      'X-Custom: kept',
    ]);
    const text = await nextData(rawSource(raw));
    assert.equal(text.includes('s3cr3t'), false, `a secret reached the hello: ${text}`);
    const hello = JSON.parse(text);
    assert.equal(hello.type, 'hello');
    assert.equal(hello.room, 'lobby');
    assert.equal(hello.http_version, '1.1');
    assert.equal(hello.method, 'GET');
    assert.equal(hello.path, '/ws/lobby?hello=&access_token=%5Bredacted%5D&client=app');
    assert.equal(hello.headers.authorization, '[redacted]');
    assert.equal(hello.headers.cookie, '[redacted]');
    assert.equal(hello.headers['proxy-authorization'], '[redacted]');
    assert.equal(hello.headers['x-custom'], 'kept');
    assert.equal(hello.headers.upgrade, 'websocket');
    assert.equal(hello.headers['sec-websocket-version'], '13');
    assert.deepEqual(hello.forwarded, {
      'x-forwarded-for': '203.0.113.9, 10.0.0.2',
      'x-forwarded-proto': 'https',
      forwarded: 'for=203.0.113.9;proto=https;host=ws.example.com',
      via: '1.1 haproxy',
    });
    assert.equal(hello.tls, null);
    // Echo goes on as usual after it.
    raw.send(clientFrame(0x1, Buffer.from('after hello')));
    assert.equal((await raw.reader.next()).payload.toString(), 'after hello');
    await rawSource(raw).close();
  });

  it('?hello over HTTP/2 reports the HTTP/2 fields as received (pseudo-headers included), version 2', async () => {
    const ws = await h2.openOk('/ws?hello&token=s3cr3t', {
      authorization: 'Bearer s3cr3t',
      'x-forwarded-for': '198.51.100.7',
    });
    const text = await ws.nextText();
    assert.equal(text.includes('s3cr3t'), false, text);
    const hello = JSON.parse(text);
    assert.equal(hello.http_version, '2');
    assert.equal(hello.method, 'CONNECT');
    assert.equal(hello.headers[':method'], 'CONNECT');
    assert.equal(hello.headers[':protocol'], 'websocket');
    assert.equal(hello.headers[':path'], '/ws?hello=&token=%5Bredacted%5D');
    assert.equal(hello.headers.authorization, '[redacted]');
    // Nothing of HTTP/1.1's handshake was made up in what is reported.
    assert.equal(hello.headers.upgrade, undefined);
    assert.equal(hello.headers['sec-websocket-key'], undefined);
    assert.deepEqual(hello.forwarded, { 'x-forwarded-for': '198.51.100.7' });
    assert.equal(hello.tls, null);
    ws.close();
    await ws.frames.nextClose();
  });

  for (const version of ['1.1', '2'] as const) {
    it(`?close-after=3&close=4003&reason=… over HTTP/${version}: three echoes, then that close, counted`, async () => {
      const before = server.app.stats.serverDisconnects.fault_injection;
      const knobBefore = server.app.stats.faultInjections.close_after;
      const fromLine = server.log.lines.length;
      const client = await open(version, '/ws?close-after=3&close=4003&reason=th%C3%A9-end');
      for (const text of ['one', 'two', 'three', 'four']) client.sendText(text);
      assert.equal(await nextData(client), 'one');
      assert.equal(await nextData(client), 'two');
      assert.equal(await nextData(client), 'three');
      const close = await client.frames.next();
      assert.equal(close.opcode, 0x8, 'the fourth message is not echoed: the close comes first');
      assert.equal(closeCodeOf(close), 4003);
      assert.equal(close.payload.subarray(2).toString('utf8'), 'thé-end');
      await waitForMetric(server.metricsUrl, 'websocket_server_disconnects_total', before + 1, {
        reason: 'fault_injection',
      });
      assert.equal(
        await metricValue(server.metricsUrl, 'wshub_fault_injections_total', { knob: 'close_after' }),
        knobBefore + 1,
      );
      await server.log.waitFor(
        /^Fault injection for 127\.0\.0\.1:\d+: close 4003 after 3 messages$/,
        10_000,
        fromLine,
      );
    });

    it(`?close-in=300ms over HTTP/${version}: closes with 1000 after that long, while idle`, async () => {
      const before = server.app.stats.serverDisconnects.fault_injection;
      const fromLine = server.log.lines.length;
      const openedAt = performance.now();
      const client = await open(version, '/ws?close-in=300ms');
      client.sendText('still open');
      assert.equal(await nextData(client), 'still open');
      const close = await client.frames.next();
      assert.equal(close.opcode, 0x8);
      assert.equal(closeCodeOf(close), 1000);
      // A lower bound only (timers may fire a little early, never much).
      assert.ok(performance.now() - openedAt >= 290, `closed after ${performance.now() - openedAt} ms`);
      await waitForMetric(server.metricsUrl, 'websocket_server_disconnects_total', before + 1, {
        reason: 'fault_injection',
      });
      await server.log.waitFor(
        /^Fault injection for 127\.0\.0\.1:\d+: close 1000 in 300ms$/,
        10_000,
        fromLine,
      );
    });

    it(`?ignore-pings over HTTP/${version}: pings go unanswered, messages are echoed, counted`, async () => {
      const ignoredBefore = server.app.stats.faultPingsIgnored;
      const client = await open(version, '/ws?ignore-pings');
      client.sendPing('are you there');
      client.sendText('after the ping');
      // A server answers a ping before what follows it (the writer keeps the order asked for): the
      // first frame back would be the pong. Here it is the echo.
      const first = await client.frames.next();
      assert.equal(first.opcode, 0x1, `expected the echo, got opcode ${first.opcode}`);
      assert.equal(first.payload.toString(), 'after the ping');
      assert.equal(
        await waitForMetric(
          server.metricsUrl,
          'wshub_fault_injection_pings_ignored_total',
          ignoredBefore + 1,
        ),
        ignoredBefore + 1,
      );
      await server.log.waitFor(/^Not answering a ping from 127\.0\.0\.1:\d+ \(\?ignore-pings\)$/);
      // The same without the knob: the pong comes first.
      const plain = await open(version, '/ws');
      plain.sendPing('are you there');
      plain.sendText('after the ping');
      const pong = await plain.frames.next();
      assert.equal(pong.opcode, 0xa);
      assert.equal(pong.payload.toString(), 'are you there');
      await client.close();
      await plain.close();
    });

    it(`?status=503&retry-after=7 over HTTP/${version}: refused with that status and Retry-After, counted and logged`, async () => {
      const before = server.app.stats.upgradesRejected.injected_status;
      const knobBefore = server.app.stats.faultInjections.status;
      const fromLine = server.log.lines.length;
      if (version === '1.1') {
        const { response, socket } = await rawHandshake(server.app.port, '/ws?status=503&retry-after=7');
        socket.destroy();
        assert.match(response, /^HTTP\/1\.1 503 Service Unavailable\r\n/);
        assert.match(response, /\r\nRetry-After: 7\r\n/);
        const teapot = await rawHandshake(server.app.port, '/ws?status=418');
        teapot.socket.destroy();
        assert.match(teapot.response, /^HTTP\/1\.1 418 /);
        assert.doesNotMatch(teapot.response, /Retry-After/i);
      } else {
        const answer = await h2.open('/ws?status=503&retry-after=7');
        assert.equal(answer.status, 503);
        assert.equal(answer.headers['retry-after'], '7');
        assert.equal(answer.ws, undefined);
        assert.match(answer.body, /^503 Service Unavailable: refused as the client asked \(\?status=503\)/);
        const teapot = await h2.open('/ws?status=418');
        assert.equal(teapot.status, 418);
        // The HTTP/2 connection stays usable: only the streams were refused.
        const ws = await h2.openOk('/ws');
        ws.sendText('still here');
        assert.equal(await ws.nextText(), 'still here');
        await h2Source(ws).close();
      }
      assert.equal(
        await waitForMetric(server.metricsUrl, 'websocket_upgrades_rejected_total', before + 2, {
          reason: 'injected_status',
        }),
        before + 2,
      );
      assert.equal(
        await metricValue(server.metricsUrl, 'wshub_fault_injections_total', { knob: 'status' }),
        knobBefore + 2,
      );
      await server.log.waitFor(
        /^WebSocket upgrade refused: 127\.0\.0\.1:\d+ 503 injected_status \(refused as the client asked \(\?status=503\)\)$/,
        10_000,
        fromLine,
      );
    });
  }

  it('refuses invalid new knobs with 400 over HTTP/1.1 and HTTP/2, counted', async () => {
    const before = server.app.stats.upgradesRejected.invalid_fault_injection;
    const cases: Array<[string, RegExp]> = [
      ['status=200', /status must be an HTTP status from 400 to 599/],
      ['status=503&retry-after=soon', /retry-after must be whole seconds from 0 to 86400/],
      ['close-after=0', /close-after must be a number of messages from 1 to 1000000/],
      ['close-in=2h', /close-in must be a duration from 0 to 1h/],
      ['close-after=1&close=1005', /close must be a code a server may send/],
      ['status=500&hello', /cannot be combined with hello/],
    ];
    for (const [query, detail] of cases) {
      const { response, socket } = await rawHandshake(server.app.port, `/ws?${query}`);
      socket.destroy();
      assert.match(response, /^HTTP\/1\.1 400 /, query);
      const answer = await h2.open(`/ws?${query}`);
      assert.equal(answer.status, 400, query);
      assert.match(answer.body, detail, query);
    }
    await waitForMetric(server.metricsUrl, 'websocket_upgrades_rejected_total', before + 2 * cases.length, {
      reason: 'invalid_fault_injection',
    });
  });

  it('?close=1011 (a code a server may send, RFC 6455 §7.4.1) reaches a ws client with its reason', async () => {
    const client = await TestClient.open(`${server.url}?close=1011&reason=upstream%20broke`);
    await client.send('x');
    assert.equal(String((await client.next()).data), 'x');
    assert.deepEqual(await client.closed, { code: 1011, reason: 'upstream broke' });
  });
});

describe('?hello with TLS reports the TLS version and ALPN', () => {
  it('h2 by ALPN, and HTTP/1.1 without ALPN, on one port', async () => {
    requireOpenssl();
    const { dir, cleanup } = makeTempDir();
    const cert = makeCertificate(dir, 'server');
    const server = await startServer([
      '--stats-interval=0',
      '--allow-fault-injection',
      '--http2',
      '--tls',
      `--tls-cert-file=${cert.certFile}`,
      `--tls-key-file=${cert.keyFile}`,
    ]);
    const ca = [readFileSync(cert.certFile)];
    const h2 = await H2Client.connect(`https://127.0.0.1:${server.app.port}`, { ca });
    try {
      const ws = await h2.openOk('/ws?hello');
      const hello = JSON.parse(await ws.nextText());
      assert.equal(hello.http_version, '2');
      assert.deepEqual(hello.tls, { version: 'TLSv1.3', alpn: 'h2' });
      const http1 = await TestClient.open(`wss://127.0.0.1:${server.app.port}/ws?hello`, { ca });
      const hello1 = JSON.parse(String((await http1.next()).data));
      assert.equal(hello1.http_version, '1.1');
      // ws's client offers no ALPN: none was negotiated.
      assert.deepEqual(hello1.tls, { version: 'TLSv1.3', alpn: null });
      http1.ws.terminate();
      const alpn11 = await TestClient.open(`wss://127.0.0.1:${server.app.port}/ws?hello`, {
        ca,
        // Passed on to tls.connect (ws's ClientOptions do not list it).
        ...({ ALPNProtocols: ['http/1.1'] } as object),
      });
      assert.deepEqual(JSON.parse(String((await alpn11.next()).data)).tls, {
        version: 'TLSv1.3',
        alpn: 'http/1.1',
      });
      alpn11.ws.terminate();
    } finally {
      h2.close();
      await server.app.stop();
      cleanup();
    }
  });
});
