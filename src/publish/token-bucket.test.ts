import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { TokenBucket } from './token-bucket.js';

describe('TokenBucket', () => {
  it('lets a burst of `capacity` through, then refills at the rate', () => {
    let now = 0;
    const bucket = new TokenBucket(2, 3, () => now);
    assert.deepEqual([bucket.take(), bucket.take(), bucket.take(), bucket.take()], [true, true, true, false]);
    assert.equal(bucket.secondsUntilNext(), 1);
    now = 499;
    assert.equal(bucket.take(), false);
    now = 500;
    assert.equal(bucket.take(), true);
    now = 60_000;
    assert.deepEqual([bucket.take(), bucket.take(), bucket.take(), bucket.take()], [true, true, true, false]);
  });

  it('asks a slow bucket to wait as long as a token takes', () => {
    const now = 0;
    const bucket = new TokenBucket(0.25, 1, () => now);
    assert.equal(bucket.take(), true);
    assert.equal(bucket.secondsUntilNext(), 4);
  });
});
