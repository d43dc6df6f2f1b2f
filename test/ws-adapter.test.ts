import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import * as wsModule from 'ws';
import {
  guardReceiverClass,
  installReceiverGuard,
  RECEIVER_GUARD_MARK,
  type ReceiverClass,
} from '../src/transport/ws-adapter.js';
import {
  ERROR_CODE_OF,
  feedBareReceiver,
  KINDS,
  MASKED_REJECTIONS,
  type ReceiverCtor,
} from './helpers/receiver-attack.js';

const ATTACK_SCRIPT = fileURLToPath(new URL('./helpers/receiver-attack.js', import.meta.url));
const { Receiver } = wsModule as unknown as { Receiver: ReceiverClass & ReceiverCtor };
const silent = { warn: () => {}, error: () => {} };

/** Runs one attack against the UNPATCHED receiver in a fresh process. */
function unguarded(kind: string): { status: number | null; stdout: string; stderr: string } {
  const run = spawnSync(process.execPath, [ATTACK_SCRIPT, kind], { encoding: 'utf8', timeout: 30_000 });
  return { status: run.status, stdout: run.stdout, stderr: run.stderr };
}

describe('ws adapter: the receiver guard (issue 14)', () => {
  it("guards with ws's own _errored flag, once per process (the shape ws 8.23 has)", () => {
    assert.equal(installReceiverGuard(silent), 'errored-flag');
    const guarded = Receiver.prototype._write;
    assert.equal(guarded?.name, 'guardedWrite');
    assert.equal(installReceiverGuard(silent), 'errored-flag');
    assert.equal(Receiver.prototype._write, guarded, 'a second install wraps nothing again');
    assert.equal(Receiver.prototype[RECEIVER_GUARD_MARK], 'errored-flag');
  });

  for (const kind of KINDS) {
    it(`${kind}: an errored receiver drops W3; no throw, no 'message' after the error`, async () => {
      installReceiverGuard(silent);
      const events = await feedBareReceiver(kind);
      assert.deepEqual(events, ['message 1048576', `error ${ERROR_CODE_OF[kind]}`]);
    });
  }

  for (const kind of MASKED_REJECTIONS) {
    it(`${kind}: without the guard the same frames crash the process (TypeError in getData)`, () => {
      const run = unguarded(kind);
      assert.notEqual(run.status, 0, `the unpatched receiver survived: ${run.stdout}`);
      assert.match(run.stderr, /TypeError: Cannot read properties of undefined \(reading '0'\)/);
      assert.match(run.stderr, /at Receiver\.getData/);
    });
  }

  it("unmasked-frame: without the guard the frame after the rejected one is emitted as a 'message'", () => {
    const run = unguarded('unmasked-frame');
    assert.equal(run.status, 0, run.stderr);
    assert.deepEqual(run.stdout.trim().split('\n'), [
      'message 1048576',
      'message 64',
      'error WS_ERR_EXPECTED_MASK',
    ]);
  });

  it('falls back to recording failures through the write callback when _errored is not the boolean it was, and says so once', async () => {
    // A ws whose failure flag changed shape (a number instead of the boolean `_errored`):
    // ws's own `if (!this._errored)` still works, wshub's `=== true` check would not.
    class NoFlagReceiver extends (Receiver as unknown as new (options?: object) => object) {
      constructor(options?: object) {
        super(options);
        let failed = 0;
        Object.defineProperty(this, '_errored', {
          get: () => failed,
          set: (value: boolean) => {
            failed = value ? 1 : 0;
          },
        });
      }
    }
    const warnings: string[] = [];
    const logger = {
      warn: (line: string) => warnings.push(line),
      error: (line: string) => warnings.push(line),
    };
    const NoFlag = NoFlagReceiver as unknown as ReceiverClass & ReceiverCtor;
    assert.equal(guardReceiverClass(NoFlag, logger), 'callback-fallback');
    assert.equal(guardReceiverClass(NoFlag, logger), 'callback-fallback');
    assert.equal(warnings.length, 1);
    assert.match(warnings[0] ?? '', /^ws adapter: .*_errored.*write callback/);
    for (const kind of KINDS) {
      assert.deepEqual(
        await feedBareReceiver(kind, NoFlag),
        ['message 1048576', `error ${ERROR_CODE_OF[kind]}`],
        kind,
      );
    }
  });

  it('logs one error line and reports "unguarded" when ws has no Receiver._write to wrap', () => {
    const lines: string[] = [];
    const logger = { warn: (line: string) => lines.push(line), error: (line: string) => lines.push(line) };
    const Shapeless = function Shapeless() {} as unknown as ReceiverClass;
    assert.equal(guardReceiverClass(Shapeless, logger), 'unguarded');
    assert.equal(guardReceiverClass(undefined, logger), 'unguarded');
    assert.equal(lines.length, 1);
    assert.match(lines[0] ?? '', /NOT installed/);
  });
});
