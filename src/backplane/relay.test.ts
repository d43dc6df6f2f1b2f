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

function node(bus: MemoryBus, clock = { now: 1000 }) {
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
  });
  return { stats, delivered, warnings, backplane, relay };
}

const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe('BackplaneRelay', () => {
  it('delivers to the other nodes with room and type, never back to the sender', async () => {
    const bus = new MemoryBus();
    const [a, b, c] = [node(bus), node(bus), node(bus)];
    await Promise.all([a.relay.start(), b.relay.start(), c.relay.start()]);
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
    await Promise.all([a.relay.start(), b.relay.start()]);
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
    await Promise.all([a.relay.start(), b.relay.start()]);
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
    assert.match(b.warnings.join('\n'), /Missed 2 messages from node [0-9a-f]{16}/);
  });

  it('ignores, counts and logs what is not an envelope', async () => {
    const bus = new MemoryBus();
    const b = node(bus);
    await b.relay.start();
    const stranger = new MemoryBackplane(bus);
    stranger.publish('cluster', Buffer.from('{"hello":"world","room":"lobby"}'));
    stranger.publish(
      'cluster',
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
    assert.equal(b.stats.invalid, 1);
    assert.deepEqual(b.delivered, [{ room: 'ok', text: 'valid', isBinary: false }]);
    assert.match(
      b.warnings.join('\n'),
      /invalid message on backplane channel cluster: unsupported envelope version 123/,
    );
  });
});
