import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { TestClient } from './helpers/clients.js';
import { waitForMetric } from './helpers/metrics.js';
import { openRaw } from './helpers/raw.js';
import {
  type AttackKind,
  anyMasked,
  CLOSE_CODE_OF,
  KINDS,
  rejected,
  slowToInflate,
} from './helpers/receiver-attack.js';
import { type SpawnedServer, spawnServer } from './helpers/server.js';

/**
 * Issue 14: the ws receiver crash, over TCP against the spawned server. W1 (8 MiB of text,
 * compressed, several event-loop turns to inflate), W2 (a frame ws rejects after reading its
 * mask) and W3 (any masked frame) go out as separate TCP writes a few ms apart, so the server
 * reads them one by one while W1 inflates and Node queues W2 and W3 behind it.
 */
const MAX_FRAGMENTS = 16;
const FLAGS = [
  '--compression',
  '--mode=broadcast',
  '--max-message-size=8MiB',
  `--max-fragments=${MAX_FRAGMENTS}`,
];
const OFFER = 'Sec-WebSocket-Extensions: permessage-deflate';
const W1 = slowToInflate(8 * 1024 * 1024);
const UNGUARDED_PRELOAD = pathToFileURL(
  fileURLToPath(new URL('./helpers/unguarded-ws.js', import.meta.url)),
).href;

/** One attack; resolves with the close code the server sent (or 'none' when the connection just died). */
async function attack(port: number, kind: AttackKind): Promise<number | 'none'> {
  const client = await openRaw(port, '/ws/attack', [OFFER]);
  client.reader.socket.setNoDelay(true);
  client.send(W1);
  await sleep(5);
  client.send(rejected(kind, MAX_FRAGMENTS));
  await sleep(5);
  client.send(anyMasked());
  try {
    const { code } = await client.reader.untilClose(10_000);
    return code;
  } catch {
    return 'none';
  } finally {
    client.reader.socket.destroy();
  }
}

describe('the ws receiver crash over TCP (issue 14)', () => {
  let server: SpawnedServer;
  let sender: TestClient;
  let listener: TestClient;
  before(async () => {
    server = await spawnServer(FLAGS);
    sender = await TestClient.open(`${server.url}/lobby`);
    listener = await TestClient.open(`${server.url}/lobby`);
  });
  after(async () => {
    server.kill();
    await server.exited;
  });

  for (const kind of KINDS) {
    it(`${kind}: the attacker gets ${CLOSE_CODE_OF[kind]}, the server lives and still relays broadcasts`, async () => {
      for (let attempt = 0; attempt < 3; attempt++) {
        assert.equal(await attack(server.port, kind), CLOSE_CODE_OF[kind], `attempt ${attempt}`);
      }
      await sender.send(`still here after ${kind}`);
      const { data } = await listener.next();
      assert.equal(String(data), `still here after ${kind}`);
      assert.equal(await waitForMetric(server.metricsUrl, 'websocket_connected_clients', 2), 2);
    });
  }
});

describe('the same attack without the guard (shows the test above can fail)', () => {
  it('kills an unguarded server (TypeError in ws Receiver.getData) within 10 attempts', async () => {
    const server = await spawnServer(FLAGS, { NODE_OPTIONS: `--import=${UNGUARDED_PRELOAD}` });
    try {
      let exited = false;
      void server.exited.then(() => {
        exited = true;
      });
      for (let attempt = 0; attempt < 10 && !exited; attempt++) {
        await attack(server.port, 'invalid-utf8-text');
        await sleep(50);
      }
      const { code } = await server.exited;
      assert.notEqual(code, 0);
      await sleep(50);
      assert.ok(
        server.stderr.lines.some((line) =>
          /TypeError: Cannot read properties of undefined \(reading '0'\)/.test(line),
        ),
        server.stderr.lines.join('\n'),
      );
    } finally {
      server.kill('SIGKILL');
    }
  });
});
