import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createTextLogger, goTimestamp, RateLimitedLog } from './log.js';
import { formatPeer } from './transport/address.js';

describe('text logger', () => {
  it('formats like Go log: YYYY/MM/DD HH:MM:SS in local time', () => {
    assert.equal(goTimestamp(new Date(2026, 0, 2, 3, 4, 5)), '2026/01/02 03:04:05');
    const lines: string[] = [];
    createTextLogger((line) => lines.push(line)).info('WebSocket connected: 1.2.3.4:5');
    assert.match(
      lines[0] ?? '',
      /^\d{4}\/\d{2}\/\d{2} \d{2}:\d{2}:\d{2} WebSocket connected: 1\.2\.3\.4:5\n$/,
    );
  });
});

describe('RateLimitedLog', () => {
  it('logs at most the limit per window per key, then reports how many it held back', () => {
    let now = 0;
    const lines: string[] = [];
    const record = (message: string) => lines.push(message);
    const limited = new RateLimitedLog({ info: record, warn: record, error: record }, 2, 1000, () => now);
    for (let i = 0; i < 5; i++) limited.log('slow_consumer', 'warn', `drop ${i}`);
    limited.log('write_error', 'warn', 'other key');
    assert.deepEqual(lines, ['drop 0', 'drop 1', 'other key']);
    now = 1000;
    limited.log('slow_consumer', 'warn', 'drop 5');
    assert.deepEqual(lines.slice(3), ['3 more slow_consumer messages suppressed in the last 1s', 'drop 5']);
  });
});

describe('formatPeer', () => {
  it('prints IPv4, IPv4-mapped and IPv6 peers as the seed shows them', () => {
    assert.equal(formatPeer('192.168.1.100', 54321), '192.168.1.100:54321');
    assert.equal(formatPeer('::ffff:10.0.0.1', 1), '10.0.0.1:1');
    assert.equal(formatPeer('::1', 54321), '[::1]:54321');
  });
});
