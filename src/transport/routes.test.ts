import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isValidRoomName, matchWebSocketPath, pathOf } from './routes.js';

describe('matchWebSocketPath', () => {
  it('maps /ws and /ws/ to the default room', () => {
    assert.deepEqual(matchWebSocketPath('/ws'), { kind: 'websocket', route: { room: '' } });
    assert.deepEqual(matchWebSocketPath('/ws/'), { kind: 'websocket', route: { room: '' } });
  });

  it('maps /ws/<room> to that room', () => {
    assert.deepEqual(matchWebSocketPath('/ws/chat-1.eu_west'), {
      kind: 'websocket',
      route: { room: 'chat-1.eu_west' },
    });
    assert.deepEqual(matchWebSocketPath(pathOf('/ws/news?token=x')), {
      kind: 'websocket',
      route: { room: 'news' },
    });
  });

  it('calls a malformed room name invalid and anything else not found', () => {
    for (const path of ['/ws/a/b', '/ws/a%20b', '/ws/ä', `/ws/${'r'.repeat(65)}`, '/ws/..', '/ws//']) {
      assert.deepEqual(matchWebSocketPath(path), { kind: 'invalid_room' }, path);
    }
    for (const path of ['/', '/wsx', '/metrics', '/WS']) {
      assert.deepEqual(matchWebSocketPath(path), { kind: 'not_found' }, path);
    }
  });
});

describe('isValidRoomName', () => {
  it('allows 1 to 64 characters of A-Z a-z 0-9 . _ -', () => {
    assert.equal(isValidRoomName('a'), true);
    assert.equal(isValidRoomName('r'.repeat(64)), true);
    assert.equal(isValidRoomName('Room_1.2-3'), true);
    assert.equal(isValidRoomName(''), false);
    assert.equal(isValidRoomName('r'.repeat(65)), false);
    assert.equal(isValidRoomName('a b'), false);
    assert.equal(isValidRoomName('a:b'), false);
    assert.equal(isValidRoomName('.'), false);
  });
});
