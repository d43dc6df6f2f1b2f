import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { HistoryStats } from '../stats.js';
import { BroadcastHub } from './broadcast.js';
import type { Peer } from './hub.js';
import type { OutboundMessage } from './message.js';

class RecordingPeer implements Peer {
  readonly got: OutboundMessage[] = [];
  constructor(
    readonly id: number,
    readonly room: string,
  ) {}
  deliver(message: OutboundMessage): void {
    this.got.push(message);
  }
}

describe('BroadcastHub', () => {
  it('hands one message object to every peer of the room, sender included', () => {
    const hub = new BroadcastHub({ excludeSender: false });
    const peers = [new RecordingPeer(1, ''), new RecordingPeer(2, ''), new RecordingPeer(3, 'other')];
    for (const peer of peers) hub.join(peer);
    hub.receive(peers[0] as Peer, Buffer.from('hi'), false);
    const [a, b, c] = peers as [RecordingPeer, RecordingPeer, RecordingPeer];
    assert.equal(a.got.length, 1);
    assert.equal(b.got.length, 1);
    assert.equal(c.got.length, 0);
    assert.equal(a.got[0], b.got[0], 'the same message (framed once) goes to every receiver');
    assert.equal(a.got[0]?.isBinary, false);
  });

  it('leaves the sender out when asked, and forgets peers that left', () => {
    const hub = new BroadcastHub({ excludeSender: true });
    const [a, b] = [new RecordingPeer(1, 'r'), new RecordingPeer(2, 'r')];
    hub.join(a);
    hub.join(b);
    hub.receive(a, Buffer.from([1]), true);
    assert.deepEqual([a.got.length, b.got.length], [0, 1]);
    hub.leave(b);
    hub.leave(b);
    assert.equal(hub.roomCount, 1);
    hub.receive(a, Buffer.from([2]), true);
    assert.equal(b.got.length, 1);
    hub.leave(a);
    assert.equal(hub.roomCount, 0);
  });

  it('relays a client broadcast after local delivery, and delivers relayed ones locally only', () => {
    const hub = new BroadcastHub({ excludeSender: false });
    const peer = new RecordingPeer(1, 'r');
    hub.join(peer);
    const relayed: Array<[string, string, boolean]> = [];
    hub.attachRelay({
      publish: (room, data, isBinary) => {
        assert.equal(peer.got.length, relayed.length + 1, 'local delivery comes first');
        relayed.push([room, data.toString(), isBinary]);
        return undefined;
      },
      roomOpened: () => {},
      roomClosed: () => {},
    });
    hub.receive(peer, Buffer.from('x'), false);
    assert.deepEqual(relayed, [['r', 'x', false]]);
    assert.equal(hub.broadcast('r', Buffer.from('from elsewhere'), false), 1);
    assert.equal(hub.broadcast('empty', Buffer.from('nobody'), false), 0);
    assert.equal(relayed.length, 1);
    assert.equal(peer.got[1]?.data.toString(), 'from elsewhere');
  });

  it('busiestRooms: the rooms with the most messages since the previous look, at most `limit`', () => {
    const hub = new BroadcastHub({ excludeSender: false });
    const peers = ['a', 'a', 'b', 'c', 'c', 'c'].map((room, i) => new RecordingPeer(i, room));
    for (const peer of peers) hub.join(peer);
    const send = (peer: RecordingPeer, times: number) => {
      for (let i = 0; i < times; i++) hub.receive(peer, Buffer.from('m'), false);
    };
    send(peers[0] as RecordingPeer, 3);
    send(peers[2] as RecordingPeer, 5);
    assert.deepEqual(hub.busiestRooms(2), [
      { room: 'b', members: 1, messages: 5, delivered: 5 },
      { room: 'a', members: 2, messages: 3, delivered: 6 },
    ]);
    // Counted since the previous look; a tie goes to the room with more members.
    send(peers[3] as RecordingPeer, 1);
    assert.equal(hub.broadcast('a', Buffer.from('x'), false), 2);
    assert.deepEqual(hub.busiestRooms(3), [
      { room: 'c', members: 3, messages: 1, delivered: 3 },
      { room: 'a', members: 2, messages: 1, delivered: 2 },
      { room: 'b', members: 1, messages: 0, delivered: 0 },
    ]);
    assert.deepEqual(hub.busiestRooms(0), []);
  });

  it('tells the relay when a room gets its first local peer and loses its last (issue 18)', () => {
    const hub = new BroadcastHub({ excludeSender: false });
    const early = new RecordingPeer(1, 'early');
    hub.join(early);
    const events: string[] = [];
    hub.attachRelay({
      publish: () => undefined,
      roomOpened: (room) => events.push(`open ${room}`),
      roomClosed: (room) => events.push(`close ${room}`),
    });
    assert.deepEqual(events, ['open early'], 'rooms that existed before the relay are opened too');
    const [a, b] = [new RecordingPeer(2, 'r'), new RecordingPeer(3, 'r')];
    hub.join(a);
    hub.join(b);
    hub.leave(a);
    hub.leave(a);
    assert.deepEqual(events, ['open early', 'open r']);
    hub.leave(b);
    hub.join(new RecordingPeer(4, ''));
    assert.deepEqual(events, ['open early', 'open r', 'close r', 'open ']);
  });
});

describe('BroadcastHub with history in Redis: pending frames (issue 16)', () => {
  const nodeId = Buffer.from('0011223344556677', 'hex');
  class V1Peer extends RecordingPeer {
    readonly protocol = 'wshub.v1';
    texts(): string[] {
      return this.got.map((m) => m.data.toString());
    }
  }
  function setup() {
    const state = { up: true, sequence: 0, clock: 0 };
    const stats = new HistoryStats();
    const logs: string[] = [];
    const hub = new BroadcastHub({
      excludeSender: false,
      history: {
        reader: { read: async () => ({ epoch: 'e1', offset: 0, messages: [] }) },
        stats,
        limitedLog: { log: (_key: string, _level: string, text: string) => logs.push(text) } as never,
        maxBufferedBytes: 1 << 20,
        nodeId,
        storeReachable: () => state.up,
        now: () => state.clock,
        isLocal: (entry) => entry.node?.equals(nodeId) === true,
      },
    });
    hub.attachRelay({ publish: () => ++state.sequence, roomOpened: () => {}, roomClosed: () => {} });
    /** The positioned copy of this node's message `sequence` comes back from Redis. */
    const positioned = (offset: number, sequence: number, text: string) =>
      hub.positioned('r', 'e1', { offset, sequence, node: nodeId, data: Buffer.from(text), isBinary: false });
    return { state, stats, logs, hub, positioned };
  }
  const settle = () => new Promise((resolve) => setImmediate(resolve));

  it('while the store is unreachable, v1 peers get this node’s messages at once as pending, then the positioned copies with the same id', async () => {
    const { state, stats, logs, hub, positioned } = setup();
    const [sender, v1a, v1b] = [new RecordingPeer(1, 'r'), new V1Peer(2, 'r'), new V1Peer(3, 'r')];
    for (const peer of [sender, v1a, v1b]) hub.join(peer);
    await settle();
    assert.deepEqual(v1a.texts(), ['{"type":"welcome","room":"r","epoch":"e1","offset":0}']);
    hub.receive(sender, Buffer.from('m1'), false);
    positioned(1, 1, 'm1');
    state.up = false;
    hub.receive(sender, Buffer.from('m2'), false);
    hub.receive(sender, Buffer.from('m3'), false);
    // A v1 peer that arrives now never saw the earlier pending messages: it waits for positions.
    const late = new V1Peer(4, 'r');
    hub.join(late);
    hub.receive(sender, Buffer.from('m4'), false);
    const id = (sequence: number) => `0011223344556677.${sequence}`;
    const message = (offset: number, text: string) =>
      `{"type":"message","room":"r","epoch":"e1","offset":${offset},"id":"${id(offset)}","data":"${text}"}`;
    const pending = (sequence: number, text: string) =>
      `{"type":"pending","room":"r","id":"${id(sequence)}","data":"${text}"}`;
    assert.deepEqual(v1a.texts().slice(1), [
      message(1, 'm1'),
      pending(2, 'm2'),
      pending(3, 'm3'),
      pending(4, 'm4'),
    ]);
    assert.equal(v1a.got[1], v1b.got[1], 'a message frame is built once and shared');
    assert.equal(v1a.got[2], v1b.got[2], 'a pending frame is built once and shared');
    assert.deepEqual(late.texts(), ['{"type":"welcome","room":"r","epoch":"e1","offset":1}']);
    assert.equal(stats.pending, 3);
    assert.match(
      logs.join('\n'),
      /Room r: Redis has positioned nothing for 250 ms \(or the connection dropped\)/,
    );
    // Redis is back: the positioned copies (same ids) go to every v1 peer; then live messages wait for positions again.
    state.up = true;
    for (const [offset, text] of [
      [2, 'm2'],
      [3, 'm3'],
      [4, 'm4'],
    ] as const)
      positioned(offset, offset, text);
    hub.receive(sender, Buffer.from('m5'), false);
    assert.equal(v1a.got.length, 8, 'm5 waits for its position');
    positioned(5, 5, 'm5');
    assert.deepEqual(v1a.texts().slice(5), [
      message(2, 'm2'),
      message(3, 'm3'),
      message(4, 'm4'),
      message(5, 'm5'),
    ]);
    assert.deepEqual(late.texts().slice(1), [
      message(2, 'm2'),
      message(3, 'm3'),
      message(4, 'm4'),
      message(5, 'm5'),
    ]);
    assert.equal(sender.got.length, 5, 'raw peers got each message once, at once');
  });

  it('a store that stops answering: messages waiting longer than PENDING_AFTER_MS are handed out as pending, in order', async () => {
    const { state, hub, positioned } = setup();
    const [sender, v1] = [new RecordingPeer(1, 'r'), new V1Peer(2, 'r')];
    hub.join(sender);
    hub.join(v1);
    await settle();
    hub.receive(sender, Buffer.from('m1'), false);
    hub.receive(sender, Buffer.from('m2'), false);
    positioned(1, 1, 'm1');
    assert.equal(v1.got.length, 2);
    state.clock += 300;
    const deadline = performance.now() + 10_000;
    while (v1.got.length < 3 && performance.now() < deadline)
      await new Promise((resolve) => setTimeout(resolve, 20));
    assert.deepEqual(v1.texts().slice(2), [
      '{"type":"pending","room":"r","id":"0011223344556677.2","data":"m2"}',
    ]);
    hub.receive(sender, Buffer.from('m3'), false);
    assert.equal(v1.got.length, 4, 'while Redis is late, at once');
    positioned(2, 2, 'm2');
    positioned(3, 3, 'm3');
    assert.equal(v1.got.length, 6);
    hub.leave(v1);
    hub.leave(sender);
  });

  it('a store that is behind but answering (a burst queued up) is no outage: frames stay positioned', async () => {
    const { state, hub, positioned } = setup();
    const [sender, v1] = [new RecordingPeer(1, 'r'), new V1Peer(2, 'r')];
    hub.join(sender);
    hub.join(v1);
    await settle();
    for (let i = 1; i <= 20; i++) hub.receive(sender, Buffer.from(`m${i}`), false);
    // One position every 50 ms of the hub's clock: the last waits a second, yet Redis never stops
    // answering. The real time between them lets the hub's check run (PENDING_CHECK_MS).
    for (let i = 1; i <= 20; i++) {
      state.clock += 50;
      await new Promise((resolve) => setTimeout(resolve, 60));
      positioned(i, i, `m${i}`);
    }
    assert.equal(v1.got.length, 21);
    assert.ok(v1.texts().every((text) => !text.includes('"pending"')));
    hub.leave(v1);
    hub.leave(sender);
  });
});
