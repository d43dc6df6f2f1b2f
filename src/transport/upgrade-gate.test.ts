import assert from 'node:assert/strict';
import { createSecretKey } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { describe, it } from 'node:test';
import { SignJWT } from 'jose';
import { TokenVerifier } from '../auth/verifier.js';
import { type SharedUserLimit, UpgradeGate } from './upgrade-gate.js';

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

describe('UpgradeGate with a per-user limit the primary counts (--workers)', () => {
  const secret = new TextEncoder().encode('a-secret-of-at-least-thirty-two-bytes-for-hs256');
  const verifier = new TokenVerifier({
    secret: () => ({ key: createSecretKey(secret), algorithms: ['HS256'] }),
    keySets: [],
  });
  const token = (sub: string, rooms: string[]) =>
    new SignJWT({ sub, rooms, exp: Math.floor(Date.now() / 1000) + 3600 })
      .setProtectedHeader({ alg: 'HS256' })
      .sign(secret);
  const withToken = (jwt: string, query = ''): IncomingMessage => {
    const base = request('10.0.0.1');
    return { ...base, url: `/ws/lobby?access_token=${jwt}${query}` } as unknown as IncomingMessage;
  };

  /** A SharedUserLimit that answers `next` and records every call. */
  function shared(next: 'granted' | 'full' | 'unavailable') {
    const calls: string[] = [];
    const limit: SharedUserLimit = {
      limit: 1,
      acquire: async (user) => {
        calls.push(`acquire ${user}`);
        return next;
      },
      release: (user) => {
        calls.push(`release ${user}`);
      },
    };
    const gate = new UpgradeGate({
      maxConnections: 0,
      maxConnectionsPerIp: 0,
      allowedOrigins: [],
      trustProxyHops: 0,
      allowFaultInjection: true,
      verifier,
      sharedUserLimit: limit,
    });
    return { gate, calls };
  }

  async function admitted(gate: UpgradeGate, incoming: IncomingMessage) {
    const admission = gate.admit(incoming);
    assert.ok(admission.ok);
    return { admission, authentication: await gate.authenticate(admission) };
  }

  it('a granted slot is held by the connection and given back when it closes', async () => {
    const { gate, calls } = shared('granted');
    const { admission, authentication } = await admitted(gate, withToken(await token('alice', ['*'])));
    const decided = gate.admitAuthenticated(admission, authentication);
    assert.ok(decided.ok);
    gate.opened(decided.clientAddress, decided.identity?.user);
    assert.deepEqual(calls, ['acquire alice']);
    gate.closed(decided.clientAddress, 'alice');
    gate.closed(decided.clientAddress, 'alice');
    assert.deepEqual(calls, ['acquire alice', 'release alice'], 'released once');
  });

  it('full: 429 with Retry-After; unavailable: 429 too, never over the limit', async () => {
    for (const [answer, detail] of [
      ['full', 'more than 1 connections for this user'],
      ['unavailable', 'cannot check the per-user connection limit now'],
    ] as const) {
      const { gate, calls } = shared(answer);
      const { admission, authentication } = await admitted(gate, withToken(await token('bob', ['*'])));
      const decided = gate.admitAuthenticated(admission, authentication);
      assert.deepEqual(decided, {
        ok: false,
        reason: 'max_connections_per_user',
        status: 429,
        detail,
        headers: { 'Retry-After': '5' },
        clientAddress: '10.0.0.1',
        authFailure: 'user_limit',
      });
      assert.deepEqual(calls, ['acquire bob'], 'nothing to give back');
    }
  });

  it('a token without the room takes no slot; a slot is given back when the handshake is refused or abandoned', async () => {
    const { gate, calls } = shared('granted');
    const narrow = await admitted(gate, withToken(await token('carol', ['news'])));
    assert.equal(gate.admitAuthenticated(narrow.admission, narrow.authentication).ok, false);
    assert.deepEqual(calls, [], 'a 403 asks for no slot');

    // Refused after the slot was granted (here: ?status=503, the last check): the slot goes back.
    const injected = await admitted(gate, withToken(await token('carol', ['*']), '&status=503'));
    const refused = gate.admitAuthenticated(injected.admission, injected.authentication);
    assert.equal(refused.ok, false);
    assert.deepEqual(calls, ['acquire carol', 'release carol']);

    // The client went away while its token was verified.
    const gone = await admitted(gate, withToken(await token('dave', ['*'])));
    gate.abandon(gone.authentication);
    // ws refused an admitted upgrade: no connection, the slot goes back.
    const notOpened = await admitted(gate, withToken(await token('erin', ['*'])));
    const decided = gate.admitAuthenticated(notOpened.admission, notOpened.authentication);
    assert.ok(decided.ok);
    gate.notOpened(decided);
    assert.deepEqual(calls.slice(2), ['acquire dave', 'release dave', 'acquire erin', 'release erin']);
  });
});
