import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseBytes } from './bytes.js';
import { formatDuration, parseDuration } from './duration.js';

describe('parseDuration', () => {
  it('reads Go-style durations into milliseconds', () => {
    assert.equal(parseDuration('30s'), 30_000);
    assert.equal(parseDuration('250ms'), 250);
    assert.equal(parseDuration('1m30s'), 90_000);
    assert.equal(parseDuration('1.5h'), 5_400_000);
    assert.equal(parseDuration('0'), 0);
  });

  it('refuses numbers without a unit and garbage', () => {
    for (const text of ['5', '', 's', '1d', '-1s', '1 s', 'abc', '1s2'])
      assert.equal(parseDuration(text), undefined, text);
  });

  it('formats back to the shortest exact unit', () => {
    assert.deepEqual([30_000, 250, 90_000, 0, 3_600_000].map(formatDuration), [
      '30s',
      '250ms',
      '90s',
      '0s',
      '1h',
    ]);
  });
});

describe('parseBytes', () => {
  it('reads plain numbers and binary/decimal units', () => {
    assert.equal(parseBytes('1048576'), 1_048_576);
    assert.equal(parseBytes('1MiB'), 1_048_576);
    assert.equal(parseBytes('64KiB'), 65_536);
    assert.equal(parseBytes('1mb'), 1_000_000);
    assert.equal(parseBytes('2 KB'), 2000);
  });

  it('refuses unknown units and garbage', () => {
    for (const text of ['', 'MiB', '1XB', '-1', '1e3']) assert.equal(parseBytes(text), undefined, text);
  });
});
