import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { describe, it } from 'node:test';
import { endUnlessEnded } from './end-once.js';

/** A Writable whose class counts the calls that reach its end(). */
class CountingWritable extends Writable {
  ends = 0;
  constructor() {
    super({ write: (_chunk, _encoding, done) => done() });
  }
}
Object.defineProperty(CountingWritable.prototype, 'end', {
  writable: true,
  value: function countingEnd(this: CountingWritable, ...args: unknown[]) {
    this.ends++;
    return (Writable.prototype.end as (...a: unknown[]) => Writable).apply(this, args);
  },
});

/** The stream with endUnlessEnded as its own end(), as quietRepeatedEnds installs it. */
function quiet(stream: CountingWritable): {
  stream: CountingWritable;
  end: (...args: unknown[]) => Writable;
} {
  (stream as unknown as { end: typeof endUnlessEnded }).end = endUnlessEnded;
  return { stream, end: (...args) => (endUnlessEnded as (...a: unknown[]) => Writable).apply(stream, args) };
}

describe('endUnlessEnded', () => {
  it('ends an open stream with its own end()', () => {
    const { stream, end } = quiet(new CountingWritable());
    end();
    assert.equal(stream.ends, 1);
    assert.equal(stream.writableEnded, true);
  });

  it('skips a bare end() of an ended stream (ws repeats it on every close)', async () => {
    const { stream, end } = quiet(new CountingWritable());
    end();
    await new Promise((resolve) => stream.once('finish', resolve));
    assert.equal(end(), stream);
    assert.equal(stream.ends, 1);
  });

  it('passes data and callbacks on, so their errors and completions still arrive', async () => {
    const { stream, end } = quiet(new CountingWritable());
    end();
    await new Promise((resolve) => stream.once('finish', resolve));
    const error = await new Promise<unknown>((resolve) => end(resolve));
    assert.equal(stream.ends, 2);
    assert.equal((error as NodeJS.ErrnoException | null)?.code, 'ERR_STREAM_ALREADY_FINISHED');
  });
});
