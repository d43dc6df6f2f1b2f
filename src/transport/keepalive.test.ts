import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { LIFETIME_JITTER, lifetimeDeadline, sweepIntervalMs } from './keepalive.js';

describe('lifetimeDeadline', () => {
  it('spreads deadlines over lifetime ±10%', () => {
    assert.equal(LIFETIME_JITTER, 0.1);
    assert.equal(
      lifetimeDeadline(1000, 60_000, () => 0),
      1000 + 54_000,
    );
    assert.equal(
      lifetimeDeadline(1000, 60_000, () => 0.5),
      1000 + 60_000,
    );
    assert.ok(Math.abs(lifetimeDeadline(1000, 60_000, () => 0.999_999) - (1000 + 66_000)) < 1);
    const deadlines = Array.from({ length: 1000 }, () => lifetimeDeadline(0, 1000));
    assert.ok(deadlines.every((deadline) => deadline >= 900 && deadline < 1100));
    assert.ok(new Set(deadlines).size > 900, 'deadlines differ between connections');
  });
});

describe('sweepIntervalMs', () => {
  const options = { pingIntervalMs: 25_000, pingTimeoutMs: 20_000, idleTimeoutMs: 0, maxLifetimeMs: 0 };
  it('runs once a second for default settings, faster for short periods, never below 25 ms', () => {
    assert.equal(sweepIntervalMs(options), 1000);
    assert.equal(sweepIntervalMs({ ...options, pingTimeoutMs: 200 }), 50);
    assert.equal(sweepIntervalMs({ ...options, idleTimeoutMs: 40 }), 25);
  });

  it('ignores the ping timeout when pings are off, and needs no timer when nothing is on', () => {
    assert.equal(sweepIntervalMs({ ...options, pingIntervalMs: 0, maxLifetimeMs: 2000 }), 500);
    assert.equal(sweepIntervalMs({ ...options, pingIntervalMs: 0 }), 0);
  });
});
