/**
 * A preload (`node --import …/unguarded-ws.js`) for tests that must show what wshub does
 * WITHOUT the ws receiver guard (issue 14): it marks ws's Receiver prototype as already
 * guarded, so `installReceiverGuard` leaves the original `_write` in place. Only tests load it.
 */
import * as wsModule from 'ws';
import { RECEIVER_GUARD_MARK } from '../../src/transport/ws-adapter.js';

const { Receiver } = wsModule as unknown as { Receiver: { prototype: Record<symbol, unknown> } };
Receiver.prototype[RECEIVER_GUARD_MARK] = 'disabled-by-test';
