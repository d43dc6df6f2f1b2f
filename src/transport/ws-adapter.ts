import * as wsModule from 'ws';
import type { Logger } from '../log.js';

/**
 * The one module that reads private members of `ws` (and of Node objects ws hands out).
 * `ws` is pinned to an exact version in package.json; every private shape used here is
 * checked once at startup, and when one is missing the module logs one line naming it and
 * takes the fallback documented beside the check, never a silent slow path or a crash.
 * test/ws-adapter.test.ts has a test per private dependency, named for what it guards.
 */

/** The parts of ws's (undocumented) `Receiver` the guard relies on. */
export interface ReceiverInstance {
  /** Set by `Receiver.createError` the moment a frame is rejected (ws lib/receiver.js). */
  _errored?: unknown;
  write(chunk: Buffer): boolean;
  on(event: 'error', listener: (error: Error) => void): unknown;
  destroy(): unknown;
}
type WriteCallback = (error?: Error | null) => void;
type ReceiverWrite = (
  this: ReceiverInstance,
  chunk: Buffer,
  encoding: BufferEncoding,
  cb: WriteCallback,
) => void;
/** ws exports `Receiver` (lib/receiver.js) but @types/ws does not declare it. */
const Receiver = (wsModule as unknown as { Receiver?: ReceiverClass }).Receiver;

/**
 * Marks `Receiver.prototype` once the guard is on it, so installing is idempotent across the
 * transports of one process (tests build several). A global symbol, so a test preload
 * (test/helpers/unguarded-ws.ts) can mark the prototype first and show what happens without it.
 */
export const RECEIVER_GUARD_MARK = Symbol.for('wshub.wsReceiverGuard');
/** The fallback's own record that a receiver failed (used only when `_errored` is missing). */
const FAILED = Symbol('wshub.receiverFailed');

export interface ReceiverClass {
  new (options?: { isServer?: boolean }): ReceiverInstance;
  prototype: { _write?: ReceiverWrite } & Record<symbol, unknown>;
}

export type ReceiverGuardState =
  /** `_write` is wrapped and reads ws's own `_errored` flag (no cost per write beyond one check). */
  | 'errored-flag'
  /** `_errored` is missing, not a boolean or not set synchronously: the wrapper records failures itself. */
  | 'callback-fallback'
  /** ws has no `Receiver` or no `Receiver.prototype._write`: nothing to wrap, the server is exposed. */
  | 'unguarded'
  /** Something else (a test preload) marked the prototype first. */
  | 'preset';

/**
 * The remote crash of issue 14 (ws 8.23.0 and 8.23.1): with permessage-deflate, a client sends a
 * compressed frame that takes a few event-loop turns to inflate (W1), then a frame ws rejects only
 * after reading its mask (invalid UTF-8, invalid close code or reason, too many fragments: W2),
 * then any masked frame (W3). While W1 inflates, Node's Writable queues W2 and W3; when inflation
 * ends, `clearBuffer` calls `_write(W2)`, which fails synchronously and leaves the receiver in
 * GET_DATA with the mask cleared, and in the same loop calls `_write(W3)`: `_write` never checks
 * that the receiver already failed, so `getData` reads `this._mask[0]` of undefined and the
 * TypeError, thrown from a zlib callback, ends the process. The quieter symptom: a frame after a
 * rejected one can be emitted as a 'message' before the error. An errored receiver must drop all
 * further data; this wraps `_write` once per process (never per connection) to do that.
 */
export function installReceiverGuard(logger: Pick<Logger, 'warn' | 'error'>): ReceiverGuardState {
  return guardReceiverClass(Receiver, logger);
}

/** `installReceiverGuard` for a given class (tests pass subclasses whose shapes differ). */
export function guardReceiverClass(
  ReceiverCtor: ReceiverClass | undefined,
  logger: Pick<Logger, 'warn' | 'error'>,
): ReceiverGuardState {
  const proto = ReceiverCtor?.prototype;
  const original = proto?._write;
  if (ReceiverCtor === undefined || proto === undefined || typeof original !== 'function') {
    if (!unguardedLogged) {
      unguardedLogged = true;
      logger.error(
        'ws adapter: ws no longer exports Receiver with a _write method; the guard against the permessage-deflate receiver crash (issue 14) is NOT installed: pin ws to the version in package.json',
      );
    }
    return 'unguarded';
  }
  if (Object.hasOwn(proto, RECEIVER_GUARD_MARK)) {
    const state = proto[RECEIVER_GUARD_MARK];
    return state === 'errored-flag' || state === 'callback-fallback' ? state : 'preset';
  }
  let installed: ReceiverGuardState;
  if (erroredFlagWorks(ReceiverCtor)) {
    proto._write = function guardedWrite(this: ReceiverInstance, chunk, encoding, cb): void {
      if (this._errored === true) {
        cb();
        return;
      }
      original.call(this, chunk, encoding, cb);
    };
    installed = 'errored-flag';
  } else {
    // Fallback: every receiver error reaches the `_write` callback (synchronous rejections and
    // the inflate callback's alike), so the wrapper records it there. Costs one closure per
    // chunk the socket reads.
    proto._write = function guardedWrite(this: ReceiverInstance, chunk, encoding, cb): void {
      const self = this as ReceiverInstance & { [FAILED]?: true };
      if (self[FAILED]) {
        cb();
        return;
      }
      original.call(this, chunk, encoding, (error) => {
        if (error) self[FAILED] = true;
        cb(error);
      });
    };
    installed = 'callback-fallback';
    logger.warn(
      "ws adapter: ws's Receiver no longer sets _errored when it rejects a frame; the receiver guard (issue 14) records failures through the write callback instead (one closure per socket read)",
    );
  }
  proto[RECEIVER_GUARD_MARK] = installed;
  return installed;
}

let unguardedLogged = false;

/** Whether a bare receiver that rejects a frame sets `_errored` synchronously, as ws 8.23 does. */
function erroredFlagWorks(ReceiverCtor: ReceiverClass): boolean {
  try {
    const receiver = new ReceiverCtor({ isServer: true });
    if (receiver._errored !== false) return false;
    receiver.on('error', ignore);
    // An unmasked client frame: rejected synchronously ("MASK must be set", RFC 6455 §5.1).
    receiver.write(Buffer.from([0x82, 0x00]));
    const flagged = erroredOf(receiver) === true;
    receiver.destroy();
    return flagged;
  } catch {
    return false;
  }
}

function ignore(): void {}
const erroredOf = (receiver: ReceiverInstance): unknown => receiver._errored;
