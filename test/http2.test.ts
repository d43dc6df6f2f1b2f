import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { afterEach, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { constants, inflateRawSync } from 'node:zlib';
import { makeCertificate, makeTempDir, requireOpenssl } from './helpers/certs.js';
import { TestClient } from './helpers/clients.js';
import { H2Client } from './helpers/h2.js';
import { metricValue, waitForMetric } from './helpers/metrics.js';
import { type InProcessServer, startServer } from './helpers/server.js';

const run = promisify(execFile);
let server: InProcessServer | undefined;
const cleanups: Array<() => void> = [];

afterEach(async () => {
  for (const cleanup of cleanups.splice(0)) cleanup();
  await server?.app.stop();
  server = undefined;
});

async function start(flags: string[] = []): Promise<InProcessServer> {
  server = await startServer(['--http2', '--stats-interval=0', ...flags]);
  return server;
}

async function h2(s: InProcessServer): Promise<H2Client> {
  const client = await H2Client.connect(`http://127.0.0.1:${s.app.port}`);
  cleanups.push(() => client.close());
  return client;
}

describe('WebSockets over HTTP/2 (RFC 8441), h2c with prior knowledge', () => {
  it('advertises SETTINGS_ENABLE_CONNECT_PROTOCOL, answers an extended CONNECT with 200 and echoes', async () => {
    const s = await start();
    const client = await h2(s);
    assert.equal(client.enableConnectProtocol, true);
    const answer = await client.open('/ws');
    assert.equal(answer.status, 200);
    // RFC 9113 §8.2.2 / RFC 8441 §5: none of HTTP/1.1's handshake fields on an HTTP/2 answer.
    assert.equal(answer.headers.upgrade, undefined);
    assert.equal(answer.headers['sec-websocket-accept'], undefined);
    const ws = answer.ws as NonNullable<typeof answer.ws>;
    ws.sendText('hello over h2');
    const frame = await ws.frames.next();
    assert.equal(frame.masked, false, 'server frames are not masked');
    assert.equal(frame.payload.toString(), 'hello over h2');
    assert.equal(
      await waitForMetric(s.metricsUrl, 'wshub_connections_by_http_version_total', 1, { http_version: '2' }),
      1,
    );
    assert.equal(
      await metricValue(s.metricsUrl, 'wshub_connections_by_http_version_total', { http_version: '1.1' }),
      0,
    );
    assert.equal(await metricValue(s.metricsUrl, 'wshub_http2_connections'), 1);
    ws.close(1000);
    const close = await ws.frames.nextClose();
    assert.equal(close.payload.readUInt16BE(0), 1000);
    // RFC 8441 §5 / RFC 6455 §7.1.1: after the close frames, END_STREAM both ways (a TCP FIN over HTTP/1.1).
    ws.stream.end();
    await s.log.waitFor(/WebSocket disconnected/);
  });

  it('refuses an unmasked client frame with 1002, as over HTTP/1.1', async () => {
    const s = await start();
    const ws = await (await h2(s)).openOk('/ws');
    // An unmasked text frame "hi".
    ws.stream.write(Buffer.from([0x81, 0x02, 0x68, 0x69]));
    const close = await ws.frames.nextClose();
    assert.equal(close.payload.readUInt16BE(0), 1002);
  });

  it('message limits as over HTTP/1.1: 1009 past --max-message-size, 1007 for invalid UTF-8, counted; the other streams carry on', async () => {
    const s = await start(['--max-message-size=1KiB']);
    const client = await h2(s);
    const [large, invalid, other] = await Promise.all([
      client.openOk('/ws'),
      client.openOk('/ws'),
      client.openOk('/ws'),
    ]);
    large.sendText('x'.repeat(1025));
    invalid.sendFrame(0x1, Buffer.from([0xc3, 0x28]));
    for (const [ws, code] of [
      [large, 1009],
      [invalid, 1007],
    ] as const) {
      assert.equal((await ws.frames.nextClose()).payload.readUInt16BE(0), code);
      // The client's half of the close handshake (RFC 6455 §5.5.1), then END_STREAM.
      ws.close(code);
      ws.stream.end();
    }
    other.sendText('y'.repeat(1024));
    assert.equal(await other.nextText(), 'y'.repeat(1024));
    for (const reason of ['message_too_large', 'invalid_utf8']) {
      assert.equal(
        await waitForMetric(s.metricsUrl, 'websocket_server_disconnects_total', 1, { reason }),
        1,
        reason,
      );
    }
  });

  it('serves HTTP/1.1 upgrades and plain requests on the same port, and plain requests over HTTP/2', async () => {
    const s = await start();
    const http1 = await TestClient.open(s.url);
    cleanups.push(() => http1.ws.terminate());
    await http1.send('over 1.1');
    assert.equal(String((await http1.next()).data), 'over 1.1');
    const stats = await fetch(`http://127.0.0.1:${s.app.port}/stats`);
    assert.equal(stats.status, 200);
    const client = await h2(s);
    const overH2 = await client.get('/stats');
    assert.equal(overH2.status, 200);
    const overview = JSON.parse(overH2.body) as { connections: number; mode: string };
    assert.equal(overview.connections, 1);
    assert.equal(overview.mode, 'echo');
    const notWebSocket = await client.get('/ws');
    assert.equal(notWebSocket.status, 426);
    assert.match(notWebSocket.body, /extended CONNECT/);
    assert.equal((await client.get('/nothing')).status, 404);
  });

  it('mixes HTTP/1.1 and HTTP/2 clients in one room', async () => {
    const s = await start(['--mode=broadcast']);
    const http1 = await TestClient.open(`${s.url}/lobby`);
    cleanups.push(() => http1.ws.terminate());
    const client = await h2(s);
    const first = await client.openOk('/ws/lobby');
    const second = await client.openOk('/ws/lobby');
    const elsewhere = await client.openOk('/ws/other');
    await waitForMetric(s.metricsUrl, 'websocket_connected_clients', 4);
    first.sendText('from h2');
    assert.equal(String((await http1.next()).data), 'from h2');
    assert.equal(await first.nextText(), 'from h2');
    assert.equal(await second.nextText(), 'from h2');
    await http1.send('from h1');
    assert.equal(await first.nextText(), 'from h1');
    assert.equal(await second.nextText(), 'from h1');
    assert.equal(String((await http1.next()).data), 'from h1');
    elsewhere.sendText('alone');
    assert.equal(await elsewhere.nextText(), 'alone');
    await assert.rejects(http1.next(300));
  });

  it('answers refusals with the HTTP/1.1 statuses, on the stream, and keeps the connection', async () => {
    const s = await start(['--allowed-origins=https://app.example.com', '--max-connections-per-ip=2']);
    const client = await h2(s);
    assert.equal((await client.open('/nope')).status, 404);
    assert.equal((await client.open('/ws/bad%20room')).status, 400);
    const origin = await client.open('/ws', { origin: 'https://evil.example.com' });
    assert.equal(origin.status, 403);
    assert.match(origin.body, /origin not allowed/);
    const version = await client.open('/ws', { 'sec-websocket-version': '8' });
    assert.equal(version.status, 400);
    assert.equal(version.headers['sec-websocket-version'], '13');
    // Streams count as connections: two streams of this connection use up the per-address limit.
    await client.openOk('/ws', { origin: 'https://app.example.com' });
    await client.openOk('/ws');
    const limited = await client.open('/ws');
    assert.equal(limited.status, 503);
    assert.equal(limited.headers['retry-after'], '5');
    assert.equal(
      await metricValue(s.metricsUrl, 'websocket_upgrades_rejected_total', {
        reason: 'max_connections_per_ip',
      }),
      1,
    );
    assert.equal(
      await metricValue(s.metricsUrl, 'websocket_upgrades_rejected_total', { reason: 'origin_not_allowed' }),
      1,
    );
    assert.equal(
      await metricValue(s.metricsUrl, 'websocket_upgrades_rejected_total', { reason: 'bad_handshake' }),
      1,
    );
    // A CONNECT that is not for a WebSocket.
    const stream = client.session.request({ ':method': 'CONNECT', ':authority': 'example.com:443' });
    stream.on('error', () => {});
    const [headers] = (await once(stream, 'response')) as [Record<string, unknown>];
    assert.equal(headers[':status'], 400);
    // The HTTP/2 connection is still usable after every refusal.
    assert.equal((await client.get('/stats')).status, 200);
  });

  it('negotiates permessage-deflate from sec-websocket-extensions', async () => {
    const s = await start(['--compression', '--compression-threshold=0']);
    const client = await h2(s);
    const answer = await client.open('/ws', {
      'sec-websocket-extensions': 'permessage-deflate; client_no_context_takeover',
    });
    assert.equal(answer.status, 200);
    assert.match(String(answer.headers['sec-websocket-extensions']), /^permessage-deflate/);
    const ws = answer.ws as NonNullable<typeof answer.ws>;
    ws.sendText('compress me, compress me, compress me');
    const frame = await ws.frames.next();
    assert.equal(frame.rsv & 0x40, 0x40, 'RSV1: the echo is compressed');
    const text = inflateRawSync(Buffer.concat([frame.payload, Buffer.from([0, 0, 0xff, 0xff])]), {
      finishFlush: constants.Z_SYNC_FLUSH,
    }).toString();
    assert.equal(text, 'compress me, compress me, compress me');
  });

  it('keeps many streams of one connection flowing while one reader has stalled; the stalled one is cut as a slow consumer', async () => {
    const s = await start(['--mode=broadcast', '--max-buffered-bytes=256KiB']);
    const client = await h2(s);
    const sender = await client.openOk('/ws/room');
    const readers = await Promise.all(Array.from({ length: 8 }, () => client.openOk('/ws/room')));
    const stalled = readers[0] as (typeof readers)[number];
    // The stalled reader stops consuming its stream: its window closes, the others' stay open.
    stalled.stream.pause();
    stalled.stream.removeAllListeners('data');
    await waitForMetric(s.metricsUrl, 'websocket_connected_clients', 9);
    const payload = 'x'.repeat(32 * 1024);
    let sent = 0;
    while (sent < 200 && s.log.count(/Closing slow consumer/) === 0) {
      sender.sendText(`${sent}:${payload}`);
      for (const reader of [sender, ...readers.slice(1)]) {
        const text = await reader.nextText();
        assert.equal(text.slice(0, text.indexOf(':')), String(sent));
      }
      sent++;
    }
    assert.ok(sent < 200, 'the stalled stream was never cut off');
    await s.log.waitFor(/Closing slow consumer 127\.0\.0\.1:\d+ with 1008/);
    assert.ok(
      ((await metricValue(s.metricsUrl, 'websocket_messages_dropped_total', { reason: 'slow_consumer' })) ??
        0) >= 1,
    );
    // The others go on.
    sender.sendText('after');
    for (const reader of readers.slice(1)) assert.equal(await reader.nextText(), 'after');
  });

  it('--http2-max-streams is advertised (SETTINGS_MAX_CONCURRENT_STREAMS): a third stream waits until one of two ends', async () => {
    const s = await start(['--http2-max-streams=2']);
    const client = await h2(s);
    assert.equal(client.session.remoteSettings.maxConcurrentStreams, 2);
    const first = await client.openOk('/ws');
    await client.openOk('/ws');
    let answered = false;
    const third = client.open('/ws').then((answer) => {
      answered = true;
      return answer;
    });
    // The client may not open it yet (RFC 9113 §5.1.2): nothing is answered while two are open.
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.equal(answered, false);
    first.close(1000);
    await first.frames.nextClose();
    first.stream.end();
    assert.equal((await third).status, 200);
  });

  it('keepalive: pings the stream, and a client that never answers is cut at the ping timeout', async () => {
    const s = await start(['--ping-interval=100ms', '--ping-timeout=300ms']);
    const ws = await (await h2(s)).openOk('/ws');
    const ping = await ws.frames.next();
    assert.equal(ping.opcode, 0x9);
    // No pong: the server gives up on this stream alone.
    assert.equal(
      await waitForMetric(s.metricsUrl, 'websocket_server_disconnects_total', 1, { reason: 'ping_timeout' }),
      1,
    );
    await ws.frames.waitForEnd();
  });

  it('fault injection: ?close=CODE&immediately and ?hello work on a stream', async () => {
    const s = await start(['--allow-fault-injection']);
    const client = await h2(s);
    const closing = await client.openOk('/ws?close=4000&reason=bye&immediately');
    const close = await closing.frames.nextClose();
    assert.equal(close.payload.readUInt16BE(0), 4000);
    assert.equal(close.payload.subarray(2).toString(), 'bye');
    const hello = await client.openOk('/ws/r?hello');
    const message = JSON.parse(await hello.nextText()) as { type: string; room: string };
    assert.equal(message.type, 'hello');
    assert.equal(message.room, 'r');
    assert.equal((await client.open('/ws?delay=forever')).status, 400);
  });

  it('shutdown sends GOAWAY, then 1001 on every stream, within the deadline', async () => {
    const s = await start();
    const client = await h2(s);
    const streams = await Promise.all([client.openOk('/ws'), client.openOk('/ws/a'), client.openOk('/ws/b')]);
    const goaway = once(client.session, 'goaway');
    const stopped = s.app.stop();
    await goaway;
    for (const ws of streams) {
      const close = await ws.frames.nextClose();
      assert.equal(close.payload.readUInt16BE(0), 1001);
      ws.close(1001);
      ws.stream.end();
    }
    const started = performance.now();
    await stopped;
    assert.ok(performance.now() - started < 4000, 'closed before the 5 s deadline');
    await s.log.waitFor(/Sent GOAWAY to 1 HTTP\/2 connection/);
    await s.log.waitFor(/All connections closed/);
    server = undefined;
  });

  it('while it drains, a new HTTP/2 connection is refused as over HTTP/1.1: 503 + retry-after on the stream, counted', async () => {
    const s = await start(['--shutdown-timeout=5s']);
    const lingering = await (await h2(s)).openOk('/ws');
    const stopped = s.app.stop();
    // The server sent its 1001; this client has not answered yet, so the server waits for the close handshake.
    assert.equal((await lingering.frames.nextClose()).payload.readUInt16BE(0), 1001);
    const late = await h2(s);
    const goaway = once(late.session, 'goaway');
    const refused = await late.open('/ws');
    assert.equal(refused.status, 503);
    // Then GOAWAY: no further stream on this connection.
    await goaway;
    assert.ok(Number(refused.headers['retry-after']) > 0, `retry-after ${refused.headers['retry-after']}`);
    assert.equal(
      await metricValue(s.metricsUrl, 'websocket_upgrades_rejected_total', { reason: 'shutting_down' }),
      1,
    );
    lingering.close(1001);
    lingering.stream.end();
    await stopped;
    server = undefined;
  });
});

describe('WebSockets over HTTP/2 with TLS (h2 by ALPN)', () => {
  it('negotiates h2 by ALPN, http/1.1 for other clients, on one port', async () => {
    requireOpenssl();
    const { dir, cleanup } = makeTempDir();
    cleanups.push(cleanup);
    const cert = makeCertificate(dir, 'server');
    const s = await start(['--tls', `--tls-cert-file=${cert.certFile}`, `--tls-key-file=${cert.keyFile}`]);
    const ca = [readFileSync(cert.certFile)];
    const client = await H2Client.connect(`https://127.0.0.1:${s.app.port}`, {
      ca,
    });
    cleanups.push(() => client.close());
    assert.equal(client.session.alpnProtocol, 'h2');
    const ws = await client.openOk('/ws');
    ws.sendText('secure h2');
    assert.equal(await ws.nextText(), 'secure h2');
    const http1 = await TestClient.open(`wss://127.0.0.1:${s.app.port}/ws`, {
      ca,
    });
    cleanups.push(() => http1.ws.terminate());
    await http1.send('secure 1.1');
    assert.equal(String((await http1.next()).data), 'secure 1.1');
  });
});

describe('independent HTTP/2 clients', () => {
  it('nghttp (nghttp2, C) speaks h2c with prior knowledge to the WebSocket port', async () => {
    const s = await start();
    const { stdout } = await run('nghttp', ['-v', `http://127.0.0.1:${s.app.port}/stats`]);
    assert.match(stdout, /ENABLE_CONNECT_PROTOCOL\(0x08\):1/);
    assert.match(stdout, /:status: 200/);
    assert.match(stdout, /"connections":0/);
  });

  it('python h2 opens a WebSocket with an extended CONNECT and gets its echo', async () => {
    const s = await start();
    const { stdout } = await run('/usr/bin/python3', [
      new URL('../../test/helpers/h2ws.py', import.meta.url).pathname,
      String(s.app.port),
      '/ws',
      'from python',
    ]);
    assert.equal(stdout.trim(), 'status 200\necho from python\nclose 1000');
  });
});
