import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import { type Backplane, BackplaneCounters } from '../../src/backplane/backplane.js';
import { waitUntil } from './wait.js';

/** What the contract needs from a driver's test setup. */
export interface BackplaneHarness {
  /** A new backplane instance ("a node") on the shared medium. */
  create(counters: BackplaneCounters): Backplane;
  /** Cuts the medium for every instance (e.g. kills redis-server). */
  outage(): Promise<void>;
  /** Brings the medium back (on the same address); absent when the medium never comes back (see below). */
  recover?(): Promise<void>;
  teardown(): Promise<void>;
}

export interface ContractOptions {
  /**
   * false for a medium that does not come back once lost: the IPC driver's is
   * the primary process, whose end also ends the workers. The outage cases then
   * check that the loss is reported and publishing fails fast, not a recovery.
   */
  readonly mediumRecovers?: boolean;
}

interface Node {
  readonly backplane: Backplane;
  readonly counters: BackplaneCounters;
  readonly received: Map<string, Buffer[]>;
}

/**
 * The delivery guarantees documented in src/backplane/backplane.ts, run
 * against every driver (one describe() per driver), so a new driver (e.g. IPC
 * for --workers) proves the same behaviour by adding one file.
 */
export function backplaneContract(
  driver: string,
  makeHarness: () => Promise<BackplaneHarness>,
  { mediumRecovers = true }: ContractOptions = {},
): void {
  describe(`backplane contract: ${driver}`, () => {
    let harness: BackplaneHarness;
    let nodes: Node[] = [];

    before(async () => {
      harness = await makeHarness();
    });
    afterEach(async () => {
      await Promise.all(nodes.map((node) => node.backplane.close()));
      nodes = [];
    });
    after(async () => {
      await harness.teardown();
    });

    async function node(...channels: string[]): Promise<Node> {
      const counters = new BackplaneCounters();
      const created: Node = { backplane: harness.create(counters), counters, received: new Map() };
      nodes.push(created);
      await Promise.all(
        channels.map((channel) => {
          const messages: Buffer[] = [];
          created.received.set(channel, messages);
          return created.backplane.subscribe(channel, (message) => messages.push(Buffer.from(message)));
        }),
      );
      await waitUntil(() => created.backplane.health().state === 'connected', 'the node is connected');
      return created;
    }

    // A medium of several parts (Redis Cluster shards) is down once every part is seen down.
    const isDown = (backplane: Backplane): boolean => {
      const health = backplane.health();
      return health.state === 'disconnected' && (health.shards ?? []).every((s) => s.state !== 'connected');
    };

    const got = (n: Node, channel: string): string[] =>
      (n.received.get(channel) ?? []).map((message) => message.toString());

    it('delivers to every subscriber of the channel, the publisher included, once', async () => {
      const [a, b, c] = [await node('news'), await node('news'), await node('news')];
      assert.equal(a.backplane.health().state, 'connected');
      assert.equal(a.backplane.publish('news', Buffer.from('hello')), true);
      await waitUntil(() => [a, b, c].every((n) => got(n, 'news').length === 1), 'all three received it');
      // Anything extra would have arrived along with the first message on the same connection.
      await new Promise((resolve) => setTimeout(resolve, 50));
      for (const n of [a, b, c]) assert.deepEqual(got(n, 'news'), ['hello']);
      await waitUntil(() => a.counters.published === 1, 'the publish is acknowledged');
      assert.equal(b.counters.received, 1);
      assert.equal(a.counters.publishFailures, 0);
    });

    it('keeps channels apart', async () => {
      const a = await node('one');
      const b = await node('two');
      const both = await node('one', 'two');
      a.backplane.publish('one', Buffer.from('for one'));
      a.backplane.publish('two', Buffer.from('for two'));
      await waitUntil(() => got(both, 'two').length === 1 && got(b, 'two').length === 1, 'delivery');
      await waitUntil(() => got(a, 'one').length === 1, 'loopback');
      assert.deepEqual(got(a, 'one'), ['for one']);
      assert.deepEqual(got(b, 'two'), ['for two']);
      assert.equal(b.received.has('one'), false);
      assert.deepEqual(got(both, 'one'), ['for one']);
    });

    it('keeps each publisher’s order', async () => {
      const a = await node('ordered');
      const b = await node('ordered');
      const watcher = await node('ordered');
      const count = 2000;
      for (let i = 0; i < count; i++) {
        assert.equal(a.backplane.publish('ordered', Buffer.from(`a${i}`)), true);
        assert.equal(b.backplane.publish('ordered', Buffer.from(`b${i}`)), true);
      }
      await waitUntil(() => got(watcher, 'ordered').length === 2 * count, 'all messages arrive');
      const seen = got(watcher, 'ordered');
      const expected = Array.from({ length: count }, (_, i) => i);
      assert.deepEqual(
        seen.filter((m) => m.startsWith('a')).map((m) => Number(m.slice(1))),
        expected,
      );
      assert.deepEqual(
        seen.filter((m) => m.startsWith('b')).map((m) => Number(m.slice(1))),
        expected,
      );
    });

    it('carries any bytes unchanged: every byte value, empty, and 1 MiB', async () => {
      const a = await node('bytes');
      const b = await node('bytes');
      const everyByte = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
      const large = Buffer.alloc(1024 * 1024, 0xa5);
      for (const message of [everyByte, Buffer.alloc(0), large]) a.backplane.publish('bytes', message);
      await waitUntil(() => (b.received.get('bytes') ?? []).length === 3, 'three messages');
      const [first, second, third] = b.received.get('bytes') ?? [];
      assert.deepEqual(first, everyByte);
      assert.equal(second?.length, 0);
      assert.equal(third?.equals(large), true);
    });

    it('unsubscribes one channel: nothing more of it arrives, others go on, subscribing again works', async () => {
      const a = await node('stay', 'leave');
      const b = await node('stay', 'leave');
      a.backplane.publish('leave', Buffer.from('1'));
      await waitUntil(() => got(b, 'leave').length === 1, 'the first message');
      await b.backplane.unsubscribe('leave');
      await b.backplane.unsubscribe('never-subscribed');
      a.backplane.publish('leave', Buffer.from('2'));
      a.backplane.publish('stay', Buffer.from('still here'));
      await waitUntil(() => got(b, 'stay').length === 1 && got(a, 'leave').length === 2, 'delivery');
      await new Promise((resolve) => setTimeout(resolve, 50));
      assert.deepEqual(got(b, 'leave'), ['1']);
      assert.equal(b.counters.received, 2, 'the unsubscribed channel never reached the driver');
      // Unsubscribe and subscribe again without waiting: the subscription wins (it came last).
      void b.backplane.unsubscribe('leave');
      await b.backplane.subscribe('leave', (message) => b.received.get('leave')?.push(Buffer.from(message)));
      a.backplane.publish('leave', Buffer.from('3'));
      await waitUntil(() => got(b, 'leave').length === 2, 'the message after subscribing again');
      assert.deepEqual(got(b, 'leave'), ['1', '3']);
    });

    it('holds thousands of channels (one per room) and delivers each only to its subscribers', async () => {
      const rooms = Array.from({ length: 3000 }, (_, i) => `room-${i}`);
      const a = await node();
      const b = await node(...rooms.filter((_, i) => i % 2 === 0));
      for (const room of rooms) a.backplane.publish(room, Buffer.from(room));
      await waitUntil(() => b.counters.received === rooms.length / 2, 'the even rooms');
      await new Promise((resolve) => setTimeout(resolve, 50));
      assert.equal(b.counters.received, rooms.length / 2);
      assert.deepEqual(got(b, 'room-2'), ['room-2']);
      assert.equal(b.received.has('room-1'), false);
    });

    const recover = (): Promise<void> => {
      if (harness.recover === undefined) throw new Error(`${driver}: the harness cannot recover the medium`);
      return harness.recover();
    };

    if (!mediumRecovers) {
      it('reports the loss of the medium, fails fast and never delivers again', async () => {
        const a = await node('lost');
        const b = await node('lost');
        a.backplane.publish('lost', Buffer.from('before'));
        await waitUntil(() => got(b, 'lost').length === 1, 'the first message');
        await harness.outage();
        await waitUntil(() => [a, b].every((n) => isDown(n.backplane)), 'both notice the loss');
        assert.notEqual(a.backplane.health().detail, '');
        assert.equal(a.backplane.publish('lost', Buffer.from('lost')), false);
        assert.equal(a.counters.publishFailures, 1);
        let active = false;
        void a.backplane
          .subscribe('late', () => {})
          .then(() => {
            active = true;
          });
        await new Promise((resolve) => setTimeout(resolve, 100));
        assert.equal(active, false, 'a subscription cannot become active without the medium');
        assert.deepEqual(got(b, 'lost'), ['before']);
      });
    }

    if (mediumRecovers)
      it('fails fast during an outage, reconnects by itself and does not replay', async () => {
        const a = await node('outage');
        const b = await node('outage');
        a.backplane.publish('outage', Buffer.from('before'));
        await waitUntil(() => got(b, 'outage').length === 1, 'the first message');

        await harness.outage();
        await waitUntil(() => [a, b].every((n) => isDown(n.backplane)), 'both notice the outage');
        assert.notEqual(a.backplane.health().detail, '');
        assert.equal(a.backplane.publish('outage', Buffer.from('lost')), false);
        assert.equal(a.counters.publishFailures, 1);

        await recover();
        await waitUntil(
          () => [a, b].every((n) => n.backplane.health().state === 'connected'),
          'both reconnect and resubscribe',
        );
        // A medium of parts (cluster shards restarting one by one) may come back in more than one step.
        if (a.backplane.health().shards === undefined) assert.equal(a.counters.reconnects, 1);
        else assert.ok(a.counters.reconnects >= 1);
        assert.equal(a.backplane.health().detail, '');
        assert.equal(a.backplane.publish('outage', Buffer.from('after')), true);
        await waitUntil(() => got(b, 'outage').length === 2, 'the message after the outage');
        assert.deepEqual(got(b, 'outage'), ['before', 'after']);
        assert.deepEqual(got(a, 'outage'), ['before', 'after']);
      });

    if (mediumRecovers)
      it('restores only the channels still subscribed after an outage, thousands of them', async () => {
        const rooms = Array.from({ length: 2500 }, (_, i) => `restored-${i}`);
        const a = await node();
        const b = await node(...rooms, 'dropped');
        await harness.outage();
        await waitUntil(() => isDown(b.backplane), 'the outage is noticed');
        await b.backplane.unsubscribe('dropped');
        await recover();
        await waitUntil(
          () => [a, b].every((n) => n.backplane.health().state === 'connected'),
          'both reconnect and resubscribe',
        );
        for (const room of [...rooms, 'dropped']) a.backplane.publish(room, Buffer.from(room));
        await waitUntil(() => b.counters.received === rooms.length, 'every restored room');
        await new Promise((resolve) => setTimeout(resolve, 50));
        assert.equal(b.counters.received, rooms.length);
        assert.deepEqual(got(b, 'dropped'), []);
      });

    if (mediumRecovers)
      it('subscribes while the medium is down and becomes active once it is back', async () => {
        const a = await node();
        await harness.outage();
        await waitUntil(() => isDown(a.backplane), 'the outage is noticed');
        let active = false;
        const subscribed = a.backplane
          .subscribe('late', () => {})
          .then(() => {
            active = true;
          });
        await new Promise((resolve) => setTimeout(resolve, 100));
        assert.equal(active, false);
        await recover();
        await subscribed;
        assert.equal(a.backplane.health().state, 'connected');
      });

    it('closes: state closed, publish refused, nothing delivered, idempotent', async () => {
      const a = await node('closing');
      const b = await node('closing');
      await b.backplane.close();
      await b.backplane.close();
      assert.equal(b.backplane.health().state, 'closed');
      assert.equal(b.backplane.publish('closing', Buffer.from('x')), false);
      a.backplane.publish('closing', Buffer.from('after close'));
      await waitUntil(() => got(a, 'closing').length === 1, 'loopback delivery');
      assert.deepEqual(got(b, 'closing'), []);
    });
  });
}
