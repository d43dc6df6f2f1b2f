import { writeSync } from 'node:fs';
import { getHeapSpaceStatistics } from 'node:v8';

/**
 * Loaded by the memory section into BOTH bench servers (`node --expose-gc
 * --import=…/memory-probe.js`), so wshub and the baseline are measured the same
 * way; never part of wshub itself. On SIGUSR2 it collects garbage and prints one
 * line on stderr: `memory-probe {json}`.
 *
 * Why collections 5.5 s apart: V8 shrinks its young generation (grown to tens of
 * MB by a burst of connections) only after a collection that sees a low allocation
 * rate, measured over about 5 s. One collection right after the burst frees the
 * garbage but keeps the young generation's pages; a later one gives them back. The
 * probe collects until the young generation is back to its small size (at most
 * MAX_ROUNDS times). Freed pages return to the OS on a background thread, hence
 * the last short wait before reading RSS.
 */
const SHRINK_WAIT_MS = 5500;
const RELEASE_WAIT_MS = 1500;
const MAX_ROUNDS = 4;
/** V8's young generation when it is not grown: 1 MiB here (Node 20, x64); above this it was not shrunk yet. */
const SMALL_YOUNG_GENERATION = 4 * 1024 * 1024;

const gc = (globalThis as { gc?: () => void }).gc;

process.on('SIGUSR2', function probeMemory() {
  if (gc === undefined) {
    report(false, 0);
    return;
  }
  gc();
  let rounds = 1;
  const collectAgain = (): void => {
    gc();
    rounds++;
    if (youngGeneration() > SMALL_YOUNG_GENERATION && rounds < MAX_ROUNDS) {
      setTimeout(collectAgain, SHRINK_WAIT_MS);
      return;
    }
    setTimeout(report, RELEASE_WAIT_MS, true, rounds);
  };
  setTimeout(collectAgain, SHRINK_WAIT_MS);
});

function youngGeneration(): number {
  const space = getHeapSpaceStatistics().find((candidate) => candidate.space_name === 'new_space');
  return space?.physical_space_size ?? 0;
}

function report(collected: boolean, rounds: number): void {
  const memory = process.memoryUsage();
  const figures = {
    collected,
    rounds,
    rss: memory.rss,
    heapTotal: memory.heapTotal,
    heapUsed: memory.heapUsed,
    external: memory.external,
    arrayBuffers: memory.arrayBuffers,
    youngGeneration: youngGeneration(),
  };
  writeSync(2, `memory-probe ${JSON.stringify(figures)}\n`);
}
