import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { describeAccelerators } from '../src/transport/accelerators.js';
import { spawnServer } from './helpers/server.js';

describe('native accelerators (issue 5)', () => {
  it('bufferutil loads natively in the installed package, and the startup log says so', async () => {
    const server = await spawnServer(['--stats-interval=0']);
    try {
      const line = await server.stdout.waitFor(/Native accelerators:/);
      assert.match(line, /Native accelerators: bufferutil \(frame masking\) active, UTF-8 validation native/);
    } finally {
      server.kill();
      await server.exited;
    }
  });

  it('names the problem when bufferutil is missing or falls back to JavaScript', () => {
    assert.match(
      describeAccelerators({ bufferutil: 'missing', utf8Validation: 'native' }),
      /bufferutil NOT active \(the optional bufferutil package is not installed\)/,
    );
    assert.match(
      describeAccelerators({ bufferutil: 'javascript-fallback', utf8Validation: 'native' }),
      /bufferutil NOT active \(bufferutil's native binding did not load/,
    );
  });
});
