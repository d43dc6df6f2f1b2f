import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { after, before, describe, it } from 'node:test';
import { buildCeilingServer, buildLoadgen, runLoadgen } from '../bench/loadgen.js';
import { clientFrame, rawHttp, TestClient } from './helpers/clients.js';
import { closeCodeOf } from './helpers/frames.js';
import { clientClose, openRaw } from './helpers/raw.js';

// The C reference echo server of the benchmark (bench/ceiling-server.c) must build with the system
// compiler and be a correct RFC 6455 echo server, or its figures mean nothing. Correctness only.
describe('C reference echo server (bench/ceiling-server.c)', () => {
  let dir: string;
  let server: ChildProcess;
  let port: number;
  before(async () => {
    dir = mkdtempSync(`${tmpdir()}/wshub-ceiling-`);
    server = spawn(buildCeilingServer(dir), ['-H', '127.0.0.1', '-p', '0'], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const [line] = (await once(server.stdout as NodeJS.ReadableStream, 'data')) as [Buffer];
    port = Number(/listening (\d+)/.exec(String(line))?.[1]);
    assert.ok(port > 0, `no port in ${String(line)}`);
  });
  after(async () => {
    if (server.exitCode === null) {
      server.kill('SIGTERM');
      await once(server, 'exit');
    }
    rmSync(dir, { recursive: true, force: true });
  });

  it('answers the RFC 6455 §1.3 sample key with its Sec-WebSocket-Accept, and refuses a plain GET', async () => {
    const raw = await openRaw(port, '/chat');
    assert.match(raw.response, /^HTTP\/1\.1 101 /);
    assert.match(raw.response, /\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK\+xOo=\r\n/);
    raw.reader.socket.destroy();
    const plain = await rawHttp(port, 'GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
    assert.match(plain, /^HTTP\/1\.1 400 /);
    const oldVersion = await rawHttp(
      port,
      'GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n',
    );
    assert.match(oldVersion, /^HTTP\/1\.1 426 [\s\S]*Sec-WebSocket-Version: 13/);
  });

  it('echoes text, binary, large and fragmented messages with their type, answers ping, and closes with the same code', async () => {
    const client = await TestClient.open(`ws://127.0.0.1:${port}/ws`, { perMessageDeflate: true });
    assert.equal(client.ws.extensions, '', 'no extension is negotiated');
    const large = Buffer.alloc(70_000, 7);
    await client.send('héllo');
    await client.send(Buffer.from([1, 2, 3]));
    await client.send(large);
    await client.send('frag-', { fin: false });
    await client.send('ment', { fin: true });
    const pong = once(client.ws, 'pong');
    client.ws.ping('are you there');
    const [first, second, third, fourth] = await client.take(4);
    assert.deepEqual([first?.isBinary, String(first?.data)], [false, 'héllo']);
    assert.deepEqual([second?.isBinary, second?.data], [true, Buffer.from([1, 2, 3])]);
    assert.deepEqual([third?.isBinary, third?.data.equals(large)], [true, true]);
    assert.deepEqual([fourth?.isBinary, String(fourth?.data)], [false, 'frag-ment']);
    assert.equal(String((await pong)[0]), 'are you there');
    assert.deepEqual(await client.close(4001), { code: 4001, reason: '' });
  });

  it('closes with 1002 on an unmasked client frame and ends the TCP connection after the close frame', async () => {
    const raw = await openRaw(port);
    raw.send(Buffer.from([0x82, 0x01, 0x05]));
    const frame = await raw.reader.next();
    assert.deepEqual([frame.opcode, closeCodeOf(frame)], [0x8, 1002]);
    await raw.reader.ended;
  });

  it('echoes a frame sent in the same write as the upgrade request', async () => {
    const socket = connect(port, '127.0.0.1');
    await once(socket, 'connect');
    const request =
      'GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n';
    socket.write(Buffer.concat([Buffer.from(request), clientFrame(0x1, Buffer.from('right behind'))]));
    let response = '';
    const expected = '\r\n\r\n\x81\x0cright behind';
    const deadline = performance.now() + 5000;
    while (!response.endsWith(expected) && performance.now() < deadline) {
      const [chunk] = (await Promise.race([
        once(socket, 'data'),
        new Promise((resolve) => setTimeout(resolve, 1000, [Buffer.alloc(0)])),
      ])) as [Buffer];
      response += chunk.toString('latin1');
    }
    socket.destroy();
    assert.match(response, /^HTTP\/1\.1 101 /);
    assert.ok(response.endsWith(expected), `101 head then the echo, got ${JSON.stringify(response)}`);
  });

  it('handles a frame split across writes', async () => {
    const raw = await openRaw(port);
    const frame = clientFrame(0x2, Buffer.from('split'));
    raw.send(frame.subarray(0, 3));
    await new Promise((resolve) => setTimeout(resolve, 20));
    raw.send(frame.subarray(3), clientClose(1000));
    const echo = await raw.reader.next();
    assert.deepEqual([echo.opcode, String(echo.payload), echo.masked], [0x2, 'split', false]);
    const close = await raw.reader.next();
    assert.deepEqual([close.opcode, closeCodeOf(close)], [0x8, 1000]);
    await raw.reader.ended;
  });

  it('keeps up with the benchmark client: every echo checked, every connection closed cleanly', async () => {
    const result = await runLoadgen({
      binary: buildLoadgen(dir),
      timeoutMs: 20_000,
      args: ['echo', '-p', String(port), '-n', '8', '-s', '16384', '-d', '0.5', '-w', '0.1'],
    });
    assert.equal(result.failed, 0);
    assert.ok(result.count > 0);
    assert.equal(result.unclean_close, 0);
  });
});
