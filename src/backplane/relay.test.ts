import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RateLimitedLog, silentLogger } from '../log.js';
import { BackplaneStats } from '../stats.js';
import { encodeEnvelope } from './envelope.js';
import { MemoryBackplane, MemoryBus } from './memory.js';
import { BackplaneRelay } from './relay.js';

interface Delivered {
  room: string;
  text: string;
  isBinary: boolean;
}

function node(bus: MemoryBus, clock = { now: 1000 }, roomLingerMs = 0) {
  const stats = new BackplaneStats();
  const delivered: Delivered[] = [];
  const warnings: string[] = [];
  const logger = { ...silentLogger, warn: (line: string) => warnings.push(line) };
  const backplane = new MemoryBackplane(bus, stats);
  const relay = new BackplaneRelay({
    backplane,
    channel: 'cluster',
    stats,
    limitedLog: new RateLimitedLog(logger),
    deliverLocally: (room, data, isBinary) => delivered.push({ room, text: data.toString(), isBinary }),
    now: () => clock.now,
    roomLingerMs,
  });
  return { stats, delivered, warnings, backplane, relay };
}

const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe('BackplaneRelay', () => {
  it('delivers to the other nodes with room and type, never back to the sender', async () => {
    const bus = new MemoryBus();
    const [a, b, c] = [node(bus), node(bus), node(bus)];
    await Promise.all([a, b, c].flatMap((n) => [n.relay.roomOpened('lobby'), n.relay.roomOpened('')]));
    a.relay.publish('lobby', Buffer.from('hi'), false);
    a.relay.publish('', Buffer.from([1, 2]), true);
    await settle();
    assert.deepEqual(a.delivered, []);
    for (const other of [b, c]) {
      assert.deepEqual(other.delivered, [
        { room: 'lobby', text: 'hi', isBinary: false },
        { room: '', text: '\x01\x02', isBinary: true },
      ]);
      assert.equal(other.stats.receivedFromOtherNodes, 2);
    }
    assert.equal(a.stats.receivedFromOtherNodes, 0);
    assert.equal(a.stats.received, 2, 'the driver still saw its own messages come back');
  });

  it('measures publish-to-delivery latency from the envelope time', async () => {
    const bus = new MemoryBus();
    const clock = { now: 5000 };
    const [a, b] = [node(bus, clock), node(bus, clock)];
    await Promise.all([a.relay.roomOpened('r'), b.relay.roomOpened('r')]);
    a.relay.publish('r', Buffer.from('x'), false);
    clock.now += 3; // 3 ms in transit
    await settle();
    assert.equal(b.stats.deliveryLatency.count, 1);
    assert.equal(b.stats.deliveryLatency.sum, 0.003);
    // 0.003 s falls in the (0.0025, 0.005] bucket.
    assert.equal(b.stats.deliveryLatency.counts[3], 1);
  });

  it('counts and logs gaps in a sender’s sequence, not the messages the sender knew it dropped', async () => {
    const bus = new MemoryBus();
    const [a, b] = [node(bus), node(bus)];
    await Promise.all([a.relay.roomOpened('r'), b.relay.roomOpened('r')]);
    a.relay.publish('r', Buffer.from('1'), false);
    await settle();
    // Refused at once by a's driver: counted there, and no gap for others.
    a.backplane.busChanged(false);
    a.relay.publish('r', Buffer.from('refused'), false);
    a.backplane.busChanged(true);
    a.relay.publish('r', Buffer.from('2'), false);
    await settle();
    assert.equal(a.stats.publishFailures, 1);
    assert.equal(b.stats.missed, 0);

    // Lost on the way to b (b is cut off while a publishes): a gap of 2 when the next one arrives.
    b.backplane.busChanged(false);
    a.relay.publish('r', Buffer.from('3'), false);
    a.relay.publish('r', Buffer.from('4'), false);
    await settle();
    b.backplane.busChanged(true);
    a.relay.publish('r', Buffer.from('5'), false);
    await settle();
    assert.deepEqual(
      b.delivered.map((d) => d.text),
      ['1', '2', '5'],
    );
    assert.equal(b.stats.missed, 2);
    assert.match(b.warnings.join('\n'), /Missed 2 messages of room "r" from node [0-9a-f]{16}/);
  });

  it('ignores, counts and logs what is not an envelope', async () => {
    const bus = new MemoryBus();
    const b = node(bus);
    await b.relay.roomOpened('ok');
    const stranger = new MemoryBackplane(bus);
    stranger.publish('cluster:{ok}', Buffer.from('{"hello":"world","room":"lobby"}'));
    const envelopeFor = (room: string) =>
      encodeEnvelope({
        nodeId: Buffer.alloc(8, 7),
        sequence: 1,
        sentAt: 0,
        isBinary: false,
        room,
        payload: Buffer.from('wrong room'),
      });
    stranger.publish('cluster:{ok}', envelopeFor('elsewhere'));
    stranger.publish(
      'cluster:{ok}',
      encodeEnvelope({
        nodeId: Buffer.alloc(8, 7),
        sequence: 1,
        sentAt: 0,
        isBinary: false,
        room: 'ok',
        payload: Buffer.from('valid'),
      }),
    );
    await settle();
    assert.equal(b.stats.invalid, 2);
    assert.deepEqual(b.delivered, [{ room: 'ok', text: 'valid', isBinary: false }]);
    assert.match(
      b.warnings.join('\n'),
      /invalid message on backplane channel cluster:\{ok\}: unsupported envelope version 123/,
    );
    assert.match(b.warnings.join('\n'), /names another room than its channel/);
  });

  it('receives a room only while subscribed to it; one channel per room, the default room as {~}', async () => {
    const bus = new MemoryBus();
    const [a, b] = [node(bus), node(bus)];
    const channels: string[] = [];
    const publish = a.backplane.publish.bind(a.backplane);
    a.backplane.publish = (channel, message) => {
      channels.push(channel);
      return publish(channel, message);
    };
    await b.relay.roomOpened('mine');
    a.relay.publish('mine', Buffer.from('1'), false);
    a.relay.publish('other', Buffer.from('not for b'), false);
    a.relay.publish('', Buffer.from('default'), false);
    await settle();
    assert.deepEqual(channels, ['cluster:{mine}', 'cluster:{other}', 'cluster:{~}']);
    assert.deepEqual(
      b.delivered.map((d) => d.text),
      ['1'],
    );
    assert.equal(b.stats.received, 1, 'the driver never saw the other rooms');
    assert.equal(b.relay.subscribedRooms, 1);
    b.relay.roomClosed('mine');
    assert.equal(b.relay.subscribedRooms, 0);
    assert.equal(b.stats.roomSubscribes, 1);
    assert.equal(b.stats.roomUnsubscribes, 1);
    a.relay.publish('mine', Buffer.from('2'), false);
    await settle();
    assert.equal(b.stats.received, 1);
    // Subscribed again later: the sequence moved on meanwhile, and that is not a gap.
    await b.relay.roomOpened('mine');
    a.relay.publish('mine', Buffer.from('3'), false);
    await settle();
    assert.deepEqual(
      b.delivered.map((d) => d.text),
      ['1', '3'],
    );
    assert.equal(b.stats.missed, 0);
  });

  it('keeps a room subscribed for the linger after its last member left, and a return cancels it', async () => {
    const bus = new MemoryBus();
    const b = node(bus, undefined, 100);
    await b.relay.roomOpened('r');
    b.relay.roomClosed('r');
    await b.relay.roomOpened('r');
    await new Promise((resolve) => setTimeout(resolve, 250));
    assert.equal(b.relay.subscribedRooms, 1, 'the member came back within the linger');
    assert.equal(b.stats.roomSubscribes, 1);
    assert.equal(b.stats.roomUnsubscribes, 0);
    const closedAt = performance.now();
    b.relay.roomClosed('r');
    assert.equal(b.relay.subscribedRooms, 1);
    while (b.relay.subscribedRooms === 1 && performance.now() - closedAt < 5000) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    assert.ok(performance.now() - closedAt >= 100, 'not before the linger ended');
    assert.equal(b.relay.subscribedRooms, 0);
    assert.equal(b.stats.roomUnsubscribes, 1);
    b.relay.close();
  });
});
