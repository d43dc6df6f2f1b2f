import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { clientAddressOf, formatPeer, limitKey } from './address.js';

describe('clientAddressOf', () => {
  it('is the TCP peer (IPv4-mapped shown as IPv4) when no proxy is trusted', () => {
    assert.equal(clientAddressOf('::ffff:10.0.0.1', '203.0.113.9', 0), '10.0.0.1');
    assert.equal(clientAddressOf('::1', undefined, 0), '::1');
  });

  it('takes the entry each trusted proxy appended, right to left', () => {
    const header = '198.51.100.1, 203.0.113.5, 10.0.0.7';
    assert.equal(clientAddressOf('10.0.0.9', header, 1), '10.0.0.7');
    assert.equal(clientAddressOf('10.0.0.9', header, 2), '203.0.113.5');
    assert.equal(clientAddressOf('10.0.0.9', header, 3), '198.51.100.1');
    assert.equal(
      clientAddressOf('10.0.0.9', header, 5),
      '198.51.100.1',
      'fewer entries than hops: the leftmost',
    );
    assert.equal(clientAddressOf('10.0.0.9', ['198.51.100.1', '2001:db8::1'], 1), '2001:db8::1');
  });

  it('stops at a malformed entry and falls back to the TCP peer without a header', () => {
    assert.equal(clientAddressOf('10.0.0.9', 'garbage', 1), '10.0.0.9');
    assert.equal(clientAddressOf('10.0.0.9', '198.51.100.1, bogus, 10.0.0.7', 3), '10.0.0.7');
    assert.equal(clientAddressOf('10.0.0.9', undefined, 1), '10.0.0.9');
  });
});

describe('formatPeer', () => {
  it('prints IPv4, IPv4-mapped and IPv6 peers as the seed logs do', () => {
    assert.equal(formatPeer('::ffff:127.0.0.1', 5000), '127.0.0.1:5000');
    assert.equal(formatPeer('::1', 5000), '[::1]:5000');
    assert.equal(formatPeer(undefined, undefined), 'unknown');
  });
});

describe('limitKey', () => {
  it('keeps IPv4 addresses and groups IPv6 addresses by /64', () => {
    assert.equal(limitKey('203.0.113.9'), '203.0.113.9');
    assert.equal(limitKey('2001:db8:1:2:aaaa:bbbb:cccc:dddd'), '2001:db8:1:2::/64');
    assert.equal(limitKey('2001:0DB8:0001:0002::1'), '2001:db8:1:2::/64');
    assert.equal(limitKey('2001:db8::1'), '2001:db8:0:0::/64');
    assert.equal(limitKey('2001:db8:1::'), '2001:db8:1:0::/64');
    assert.equal(limitKey('::1'), '0:0:0:0::/64');
    assert.equal(limitKey('fe80::1%eth0'), 'fe80:0:0:0::/64');
    assert.equal(limitKey('64:ff9b::198.51.100.7'), '64:ff9b:0:0::/64');
    assert.equal(limitKey('unknown'), 'unknown');
  });
});
