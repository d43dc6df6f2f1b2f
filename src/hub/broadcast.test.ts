import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
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
      publish: () => {},
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
