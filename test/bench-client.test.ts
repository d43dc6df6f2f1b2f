import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { after, before, describe, it } from 'node:test';
import { buildLoadgen, runLoadgen } from '../bench/loadgen.js';
import { type InProcessServer, startServer } from './helpers/server.js';

// The benchmark client must build with the system compiler and speak correct WebSocket to wshub.
// Correctness only: speed is measured by `npm run bench`, never asserted here.
describe('benchmark client (bench/loadgen.c)', () => {
  let server: InProcessServer;
  let binary: string;
  let dir: string;
  before(async () => {
    dir = mkdtempSync(`${tmpdir()}/wshub-loadgen-`);
    binary = buildLoadgen(dir);
    server = await startServer(['--stats-interval=0']);
  });
  after(async () => {
    await server.app.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('runs a closed-loop echo against wshub and checks every echo', async () => {
    const result = await runLoadgen({
      binary,
      timeoutMs: 20_000,
      args: [
        'echo',
        '-p',
        String(server.app.port),
        '-P',
        '/ws',
        '-n',
        '4',
        '-s',
        '300',
        '-d',
        '1',
        '-w',
        '0.2',
      ],
    });
    assert.equal(result.mode, 'echo');
    assert.equal(result.failed, 0);
    assert.ok(result.count > 0, 'at least one echo was measured');
    assert.equal(result.unclean_close, 0, 'every connection ended with a close handshake');
    assert.ok(server.app.stats.messagesReceived >= result.count, 'the server saw every measured message');
  });

  it('opens, holds and cleanly closes idle connections', async () => {
    const result = await runLoadgen({
      binary,
      timeoutMs: 20_000,
      args: ['hold', '-p', String(server.app.port), '-P', '/ws', '-n', '20', '-t', '0.3'],
    });
    assert.equal(result.mode, 'hold');
    assert.equal(result.established, 20);
    assert.equal(result.unclean_close, 0);
  });

  it('negotiates permessage-deflate when asked and accepts compressed echoes', async () => {
    const compressing = await startServer(['--stats-interval=0', '--compression']);
    try {
      const result = await runLoadgen({
        binary,
        timeoutMs: 20_000,
        args: [
          'echo',
          '-p',
          String(compressing.app.port),
          '-n',
          '3',
          '-s',
          '4000',
          '-d',
          '0.5',
          '-w',
          '0.1',
          '-z',
          '1',
        ],
      });
      assert.equal(result.deflate_conns, 3);
      assert.ok(result.count > 0);
    } finally {
      await compressing.app.stop();
    }
  });

  it('refuses a non-loopback target', async () => {
    await assert.rejects(
      runLoadgen({ binary, timeoutMs: 5_000, args: ['echo', '-H', '10.0.0.1', '-p', '80'] }),
      /loopback/,
    );
  });
});
