import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { TestClient } from './helpers/clients.js';
import { type InProcessServer, startServer } from './helpers/server.js';

describe('echo endpoint /ws', () => {
  let server: InProcessServer;
  before(async () => {
    server = await startServer(['--stats-interval=0']);
  });
  after(() => server.app.stop());

  it('echoes text as text', async () => {
    const client = await TestClient.open(server.url);
    await client.send('hello wshub');
    const reply = await client.next();
    assert.equal(reply.isBinary, false);
    assert.equal(reply.data.toString('utf8'), 'hello wshub');
    await client.close();
  });

  it('echoes binary as binary, byte for byte', async () => {
    const client = await TestClient.open(server.url);
    const payload = Buffer.from([0, 1, 2, 253, 254, 255]);
    await client.send(payload, { binary: true });
    const reply = await client.next();
    assert.equal(reply.isBinary, true);
    assert.deepEqual(reply.data, payload);
    await client.close();
  });

  it('echoes empty text and empty binary messages', async () => {
    const client = await TestClient.open(server.url);
    await client.send('');
    await client.send(Buffer.alloc(0), { binary: true });
    const text = await client.next();
    const binary = await client.next();
    assert.deepEqual([text.isBinary, text.data.length], [false, 0]);
    assert.deepEqual([binary.isBinary, binary.data.length], [true, 0]);
    await client.close();
  });

  it('echoes a large (900 KiB) message intact', async () => {
    const client = await TestClient.open(server.url);
    const payload = Buffer.alloc(900 * 1024);
    for (let i = 0; i < payload.length; i++) payload[i] = (i * 31) & 0xff;
    await client.send(payload, { binary: true });
    const reply = await client.next();
    assert.ok(reply.data.equals(payload));
    await client.close();
  });

  it('reassembles a fragmented message and echoes it as one', async () => {
    const client = await TestClient.open(server.url);
    await client.send('frag', { fin: false });
    await client.send('men', { fin: false });
    await client.send('ted', { fin: true });
    const reply = await client.next();
    assert.equal(reply.data.toString(), 'fragmented');
    assert.equal(reply.isBinary, false);
    await client.close();
  });

  it('answers a ping with a pong carrying the same payload', async () => {
    const client = await TestClient.open(server.url);
    const pong = new Promise<Buffer>((resolve) => client.ws.once('pong', resolve));
    client.ws.ping(Buffer.from('are you there'));
    assert.equal((await pong).toString(), 'are you there');
    await client.close();
  });

  it('keeps messages from one client in order', async () => {
    const client = await TestClient.open(server.url);
    for (let i = 0; i < 200; i++) void client.send(`m${i}`);
    for (let i = 0; i < 200; i++) assert.equal((await client.next()).data.toString(), `m${i}`);
    await client.close();
  });
});
