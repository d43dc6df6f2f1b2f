import type { Section } from '../suite.js';
import { backplaneSection } from './backplane.js';
import { broadcastSection } from './broadcast.js';
import { connectSection } from './connect.js';
import { echoSection } from './echo.js';
import { historySection } from './history.js';
import { http2Section } from './http2.js';
import { memorySection } from './memory.js';
import { scaleoutSection } from './scaleout.js';
import { workersSection } from './workers.js';

/**
 * The sections of `npm run bench`, in the order they run; `--only=<name>,…` picks some. Each is a
 * module of its own that does nothing when imported (test/bench-suite.test.ts).
 */
export const SECTIONS: readonly Section[] = [
  echoSection,
  broadcastSection,
  memorySection,
  connectSection,
  backplaneSection,
  scaleoutSection,
  workersSection,
  historySection,
  http2Section,
];
