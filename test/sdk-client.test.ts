import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { WebSocket } from 'ws';
import {
  connect,
  type Message,
  type ResetInfo,
  type WebSocketConstructor,
  type WshubClient,
} from 'wshub/client';
import { TestClient } from './helpers/clients.js';
import { type InProcessServer, startServer } from './helpers/server.js';

let server: InProcessServer | undefined;
const closers: Array<() => void> = [];

afterEach(async () => {
  for (const close of closers.splice(0)) close();
  await server?.app.stop();
  server = undefined;
});

/** `ws`, recording every socket and URL the library opens, so a test can cut one. */
function recordingWebSocket(): { Socket: WebSocketConstructor; sockets: WebSocket[]; urls: string[] } {
  const sockets: WebSocket[] = [];
  const urls: string[] = [];
  class Recording extends WebSocket {
    constructor(url: string, protocols?: string | string[]) {
      super(url, protocols);
      sockets.push(this);
      urls.push(url);
    }
  }
  return { Socket: Recording as unknown as WebSocketConstructor, sockets, urls };
}

async function until(condition: () => boolean, what: string, timeoutMs = 15_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!condition()) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

const series = (prefix: string, from: number, to: number): string[] =>
  Array.from({ length: to - from + 1 }, (_, i) => `${prefix}${from + i}`);

function track(client: WshubClient): WshubClient {
  closers.push(() => client.close());
  return client;
}

describe("wshub/client in Node (import { connect } from 'wshub/client')", () => {
  it('a connection cut mid-stream is resumed from the last position: every message once, in order', async () => {
    server = await startServer(['--mode=broadcast', '--stats-interval=0', '--history-size=10000']);
    const url = `ws://127.0.0.1:${server.app.port}/ws/stream`;
    const { Socket, sockets, urls } = recordingWebSocket();
    const got: Message[] = [];
    const opens: Array<{ resumed: boolean }> = [];
    const closes: Array<number | undefined> = [];
    const client = track(
      connect(url, {
        WebSocket: Socket,
        minDelayMs: 50,
        token: 'secret-token-1234',
        onMessage: (message) => got.push(message),
        onOpen: (info) => opens.push(info),
        onClose: (info) => closes.push(info.retryInMs),
      }),
    );
    await until(() => opens.length === 1, 'the first welcome');
    assert.equal(client.state, 'open');
    const producer = await TestClient.open(url);
    closers.push(() => producer.ws.terminate());
    const total = 400;
    const sending = (async () => {
      for (let i = 1; i <= total; i++) {
        producer.ws.send(`m${i}`);
        await new Promise((resolve) => setTimeout(resolve, 3));
      }
    })();
    await until(() => got.length >= 100, '100 messages');
    // A network cut: the socket dies without a close frame.
    sockets[0]?.terminate();
    await sending;
    await until(() => got.length >= total, `${total} messages`);
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.deepEqual(
      got.map((m) => m.data),
      series('m', 1, total),
    );
    assert.deepEqual(
      got.map((m) => m.position?.offset),
      Array.from({ length: total }, (_, i) => i + 1),
    );
    assert.equal(opens.length, 2);
    assert.equal(opens[1]?.resumed, true);
    assert.equal(closes.length, 1);
    assert.ok(
      (closes[0] ?? -1) >= 0 && (closes[0] ?? 100) < 50,
      `first retry within the 50 ms cap: ${closes[0]}`,
    );
    // The token rides on every connection; the resume names the position.
    assert.match(urls[0] ?? '', /[?&]access_token=secret-token-1234(&|$)/);
    assert.match(urls[1] ?? '', /[?&]since=[0-9a-f]{12}%3A\d+/);
    assert.match(urls[1] ?? '', /[?&]access_token=secret-token-1234(&|$)/);
    assert.equal(client.position?.offset, total);
  });

  it('a position too old to resume is surfaced as onReset, then messages continue', async () => {
    server = await startServer(['--mode=broadcast', '--stats-interval=0', '--history-size=5']);
    const url = `ws://127.0.0.1:${server.app.port}/ws/old`;
    const { Socket, sockets } = recordingWebSocket();
    let release: () => void = () => {};
    let connections = 0;
    const got: string[] = [];
    const resets: ResetInfo[] = [];
    track(
      connect(url, {
        WebSocket: Socket,
        minDelayMs: 10,
        // The second connection waits for the token until the test lets it go.
        token: () => {
          connections++;
          return connections === 1 ? 't' : new Promise<string>((resolve) => (release = () => resolve('t')));
        },
        onMessage: (message) => got.push(String(message.data)),
        onReset: (info) => resets.push(info),
      }),
    );
    const producer = await TestClient.open(url);
    closers.push(() => producer.ws.terminate());
    await until(() => sockets[0]?.readyState === WebSocket.OPEN, 'open');
    await producer.send('first');
    await until(() => got.length === 1, 'the first message');
    sockets[0]?.terminate();
    await until(() => connections === 2, 'the reconnection');
    for (const text of series('missed', 1, 20)) await producer.send(text);
    await new Promise((resolve) => setTimeout(resolve, 100));
    release();
    await until(() => resets.length === 1, 'the reset');
    assert.equal(resets[0]?.previous?.offset, 1);
    assert.equal(resets[0]?.position.offset, 21);
    assert.equal(resets[0]?.position.epoch, resets[0]?.previous?.epoch);
    await producer.send('after');
    await until(() => got.length === 2, 'the message after the reset');
    assert.deepEqual(got, ['first', 'after']);
  });

  it('backs off with full jitter while the server is down, and falls back to raw frames without history', async () => {
    server = await startServer(['--mode=broadcast', '--stats-interval=0']);
    const port = server.app.port;
    await server.app.stop();
    server = undefined;
    const delays: number[] = [];
    const client = track(
      connect(`ws://127.0.0.1:${port}/ws`, {
        minDelayMs: 20,
        maxDelayMs: 200,
        onClose: (info) => {
          if (info.retryInMs !== undefined) delays.push(info.retryInMs);
        },
      }),
    );
    await until(() => delays.length >= 6, '6 attempts');
    client.close();
    // Attempt n waits a uniform random time below min(200, 20 * 2^n).
    delays.slice(0, 6).forEach((delay, n) => {
      assert.ok(delay >= 0 && delay < Math.min(200, 20 * 2 ** n), `attempt ${n}: ${delay} ms`);
    });

    // A server without --history-size does not speak wshub.v1: plain messages, no positions.
    server = await startServer(['--mode=broadcast', '--stats-interval=0']);
    const got: Message[] = [];
    const opened: boolean[] = [];
    track(
      connect(`ws://127.0.0.1:${server.app.port}/ws/plain`, {
        minDelayMs: 10,
        onOpen: () => opened.push(true),
        onMessage: (message) => got.push(message),
      }),
    );
    await until(() => opened.length === 1, 'the raw open');
    const producer = await TestClient.open(`ws://127.0.0.1:${server.app.port}/ws/plain`);
    closers.push(() => producer.ws.terminate());
    await producer.send('plain');
    await producer.send(Buffer.from([1, 2, 3]), { binary: true });
    await until(() => got.length === 2, 'two messages');
    assert.deepEqual(got[0], { room: 'plain', data: 'plain' });
    assert.deepEqual(got[1], { room: 'plain', data: new Uint8Array([1, 2, 3]) });
  });
});
