import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ErrorCode, UsageError } from '../errors.js';
import { formatClose, formatMessage } from './client.js';
import { DEFAULT_URL, parseClientArgs } from './options.js';

describe('wshub client arguments', () => {
  it('defaults to the server defaults', () => {
    assert.equal(DEFAULT_URL, 'ws://127.0.0.1:3003/ws');
    assert.deepEqual(parseClientArgs([]), {
      action: 'run',
      url: DEFAULT_URL,
      insecure: false,
      caFile: '',
      http2: false,
      token: '',
    });
  });

  it('takes a URL and flags in any order', () => {
    assert.deepEqual(parseClientArgs(['--insecure', 'wss://h:1/ws/room', '--ca-file=ca.pem']), {
      action: 'run',
      url: 'wss://h:1/ws/room',
      insecure: true,
      caFile: 'ca.pem',
      http2: false,
      token: '',
    });
    assert.equal(parseClientArgs(['--http2', 'ws://h:1/ws']).http2, true);
    assert.equal(parseClientArgs(['--token=a.b.c']).token, 'a.b.c');
  });

  it('rejects what it cannot use, with stable codes', () => {
    const codeOf = (argv: string[]): string => {
      try {
        parseClientArgs(argv);
      } catch (error) {
        assert.ok(error instanceof UsageError);
        return error.code;
      }
      return 'none';
    };
    assert.equal(codeOf(['ftp://x/']), ErrorCode.INVALID_URL);
    assert.equal(codeOf(['::']), ErrorCode.INVALID_URL);
    assert.equal(codeOf(['--insecure=yes']), ErrorCode.INVALID_VALUE);
    assert.equal(codeOf(['--port=1']), ErrorCode.UNKNOWN_FLAG);
  });

  it('prints text as is and binary marked, in base64', () => {
    assert.equal(formatMessage(Buffer.from('héllo'), false), 'héllo\n');
    assert.equal(formatMessage(Buffer.from([255, 0]), true), '[binary 2 bytes, base64] /wA=\n');
    assert.equal(formatMessage(Buffer.alloc(0), true), '[binary 0 bytes, base64] \n');
  });

  it('names close codes', () => {
    assert.equal(formatClose(1009, ''), 'closed: 1009 (message too big)\n');
    assert.equal(formatClose(1006, ''), 'closed: 1006 (abnormal closure, no close frame)\n');
    assert.equal(formatClose(3000, 'x'), 'closed: 3000 (unknown code) reason: "x"\n');
  });
});
