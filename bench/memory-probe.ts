import { writeSync } from 'node:fs';
import { getHeapSpaceStatistics } from 'node:v8';

/**
 * Loaded by the memory section into BOTH bench servers (`node --expose-gc
 * --import=…/memory-probe.js`), so wshub and the baseline are measured the same
 * way; never part of wshub itself. On SIGUSR2 it collects garbage and prints one
 * line on stderr: `memory-probe {json}`.
 *
 * Why two collections 5 s apart: V8 shrinks its young generation (grown to tens of
 * MB by a burst of connections) only after a collection that sees a low allocation
 * rate, and it measures that rate over about 5 s. One collection right after the
 * burst frees the garbage but keeps the young generation's pages; the second one
 * gives them back. Freed pages return to the OS on a background thread, hence the
 * last short wait before reading RSS.
 */
const SHRINK_WAIT_MS = 5500;
const RELEASE_WAIT_MS = 500;

const gc = (globalThis as { gc?: () => void }).gc;

process.on('SIGUSR2', function probeMemory() {
  if (gc === undefined) {
    report(false);
    return;
  }
  gc();
  setTimeout(function collectAgain() {
    gc();
    setTimeout(report, RELEASE_WAIT_MS, true);
  }, SHRINK_WAIT_MS);
});

function report(collected: boolean): void {
  const memory = process.memoryUsage();
  const youngGeneration = getHeapSpaceStatistics().find((space) => space.space_name === 'new_space');
  const figures = {
    collected,
    rss: memory.rss,
    heapTotal: memory.heapTotal,
    heapUsed: memory.heapUsed,
    external: memory.external,
    arrayBuffers: memory.arrayBuffers,
    youngGeneration: youngGeneration?.physical_space_size ?? 0,
  };
  writeSync(2, `memory-probe ${JSON.stringify(figures)}\n`);
}
