/**
 * Preloaded (`node --import`) into every wshub process the tests spawn: a re-entry into a
 * ws receiver's parse loop throws with a stack instead of corrupting the receiver (issue
 * 14). In-process servers get the same check from startServer(). Never loaded in production.
 */
import { installReceiverReentryCheck } from '../../src/transport/ws-adapter.js';

installReceiverReentryCheck();
