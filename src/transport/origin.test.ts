import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { OriginAllowlist } from './origin.js';

describe('OriginAllowlist', () => {
  it('allows everything when empty', () => {
    const list = new OriginAllowlist([]);
    assert.equal(list.allowsAll, true);
    assert.equal(list.allows('https://anything.test'), true);
  });

  it('matches exact origins ignoring case and default ports', () => {
    const list = new OriginAllowlist([
      'https://App.example.com',
      'http://localhost:8080',
      'https://b.test:443',
    ]);
    for (const origin of [
      'https://app.example.com',
      'https://APP.EXAMPLE.COM:443',
      'http://localhost:8080',
      'https://b.test',
    ]) {
      assert.equal(list.allows(origin), true, origin);
    }
    for (const origin of [
      'http://app.example.com',
      'https://app.example.com:8443',
      'http://localhost',
      'null',
      '',
    ]) {
      assert.equal(list.allows(origin), false, origin);
    }
  });

  it('matches subdomains of a wildcard at any depth, never the bare domain or a lookalike', () => {
    const list = new OriginAllowlist(['https://*.example.com', 'http://*.dev.test:3000']);
    for (const origin of ['https://a.example.com', 'https://a.b.example.com', 'http://x.dev.test:3000']) {
      assert.equal(list.allows(origin), true, origin);
    }
    for (const origin of [
      'https://example.com',
      'https://.example.com',
      'https://evilexample.com',
      'https://a.example.com.evil.test',
      'https://evil.test/.example.com',
      'https://a.example.com:8443',
      'http://a.example.com',
      'http://x.dev.test',
    ]) {
      assert.equal(list.allows(origin), false, origin);
    }
  });
});
