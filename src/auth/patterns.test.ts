import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { compileRoomPatterns, isValidRoomPattern } from './patterns.js';

describe('room patterns', () => {
  it('* covers every room, the default room ("") included', () => {
    const every = compileRoomPatterns(['*']);
    for (const room of ['', 'chat', 'chat.en', 'a-b_c']) assert.equal(every(room), true, room);
  });

  it('a wildcard is any run of room characters, never the default room', () => {
    const chat = compileRoomPatterns(['chat.*', 'news']);
    assert.equal(chat('chat.en'), true);
    assert.equal(chat('chat.'), true);
    assert.equal(chat('chat'), false);
    assert.equal(chat('chatXen'), false, 'the dot is literal');
    assert.equal(chat('news'), true);
    assert.equal(chat('news.eu'), false);
    assert.equal(chat(''), false);
    assert.equal(compileRoomPatterns(['*.eu'])('news.eu'), true);
    assert.equal(compileRoomPatterns(['*x'])(''), false);
  });

  it('"" names the default room alone; no patterns cover nothing', () => {
    const home = compileRoomPatterns(['']);
    assert.equal(home(''), true);
    assert.equal(home('chat'), false);
    assert.equal(compileRoomPatterns([])(''), false);
  });

  it('accepts room characters and * only, up to 64', () => {
    for (const ok of ['', '*', 'chat.*', 'a-b_c.9']) assert.equal(isValidRoomPattern(ok), true, ok);
    for (const bad of ['chat/x', 'a b', 'x'.repeat(65), '(.*)', 'chat?'])
      assert.equal(isValidRoomPattern(bad), false, bad);
  });
});
