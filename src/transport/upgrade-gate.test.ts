import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { describe, it } from 'node:test';
import { UpgradeGate } from './upgrade-gate.js';

const request = (remoteAddress: string): IncomingMessage =>
  ({
    method: 'GET',
    url: '/ws',
    socket: { remoteAddress },
    headers: {
      upgrade: 'websocket',
      'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==',
      'sec-websocket-version': '13',
    },
  }) as unknown as IncomingMessage;

describe('UpgradeGate counts', () => {
  it('removes an address from its map when its last connection closes', () => {
    const gate = new UpgradeGate({
      maxConnections: 3,
      maxConnectionsPerIp: 2,
      allowedOrigins: [],
      trustProxyHops: 0,
    });
    gate.opened('10.0.0.1');
    gate.opened('10.0.0.1');
    gate.opened('10.0.0.2');
    assert.equal(gate.trackedAddresses, 2);
    assert.deepEqual(gate.admit(request('10.0.0.3')), {
      ok: false,
      reason: 'max_connections',
      status: 503,
      detail: 'server connection limit reached',
      headers: { 'Retry-After': '5' },
      clientAddress: '10.0.0.3',
    });
    gate.closed('10.0.0.2');
    assert.equal(gate.trackedAddresses, 1);
    assert.equal(gate.admit(request('10.0.0.1')).ok, false, 'per-address limit');
    assert.equal(gate.admit(request('::ffff:10.0.0.3')).ok, true);
    gate.closed('10.0.0.1');
    gate.closed('10.0.0.1');
    gate.closed('10.0.0.1');
    assert.equal(gate.trackedAddresses, 0);
    gate.opened('10.0.0.4');
    gate.opened('10.0.0.5');
    gate.opened('10.0.0.6');
    assert.equal(gate.admit(request('10.0.0.7')).ok, false, 'a spurious close() must not free a slot');
  });
});

describe('UpgradeGate per-address key', () => {
  it('counts IPv6 clients by /64, so one host cannot rotate through its addresses', () => {
    const gate = new UpgradeGate({
      maxConnections: 0,
      maxConnectionsPerIp: 1,
      allowedOrigins: [],
      trustProxyHops: 0,
    });
    const first = gate.admit(request('2001:db8:1:2::10'));
    assert.equal(first.ok, true);
    gate.opened(first.clientAddress);
    assert.equal(gate.admit(request('2001:db8:1:2:ffff::99')).ok, false, 'same /64');
    assert.equal(gate.admit(request('2001:db8:1:3::10')).ok, true, 'another /64');
    gate.closed(first.clientAddress);
    assert.equal(gate.trackedAddresses, 0);
  });
});
