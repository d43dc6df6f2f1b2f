import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { describe, it } from 'node:test';

// Each case runs in a fresh process: glibc's thresholds only ever move up, so the
// test runner's own state would hide the difference.
const PROBE = `
import { readFileSync } from 'node:fs';
const heapMiB = () => {
  const m = /^([0-9a-f]+)-([0-9a-f]+) .*\\[heap\\]$/m.exec(readFileSync('/proc/self/maps', 'utf8'));
  return m ? (parseInt(m[2], 16) - parseInt(m[1], 16)) / 1048576 : 0;
};
if (process.argv[1] === 'tuned') {
  const { keepFreedMemoryForReuse } = await import(${JSON.stringify(new URL('./heap-reuse.js', import.meta.url).href)});
  keepFreedMemoryForReuse();
  globalThis.gc();
  // V8 frees large backing stores on a background thread, so glibc may raise its
  // thresholds a few milliseconds after gc() returns (seen in CI: the heap grew by
  // 0 MiB). Wait, bounded, until one 1 MiB buffer comes from the heap.
  for (let waited = 0; waited < 5000; waited += 20) {
    const start = heapMiB();
    const one = Buffer.allocUnsafeSlow(1024 * 1024).fill(1);
    if (heapMiB() > start) break;
    void one;
    globalThis.gc();
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  globalThis.gc();
}
const before = heapMiB();
let held = [];
for (let i = 0; i < 16; i++) held.push(Buffer.allocUnsafeSlow(1024 * 1024).fill(1));
const loaded = heapMiB();
held = undefined;
globalThis.gc();
const freed = heapMiB();
process.stdout.write(JSON.stringify({ grown: loaded - before, kept: freed - before }));
`;

function probe(variant: 'tuned' | 'default'): { grown: number; kept: number } {
  const out = execFileSync(process.execPath, ['--expose-gc', '--input-type=module', '-e', PROBE, variant], {
    encoding: 'utf8',
    timeout: 20_000,
  });
  return JSON.parse(out) as { grown: number; kept: number };
}

const glibc = (process.report.getReport() as { header?: { glibcVersionRuntime?: string } }).header
  ?.glibcVersionRuntime;

describe('keepFreedMemoryForReuse (glibc malloc thresholds)', () => {
  it('makes 1 MiB buffers come from the heap and keeps them mapped after they are freed', {
    skip: glibc === undefined ? 'the C library is not glibc: its malloc has no such thresholds' : false,
  }, () => {
    const untouched = probe('default');
    // The premise: by default glibc maps blocks this large on their own and unmaps them when freed.
    assert.ok(
      untouched.grown < 4,
      `default: the heap grew by ${untouched.grown} MiB for 16 MiB of 1 MiB buffers`,
    );
    const tuned = probe('tuned');
    assert.ok(tuned.grown >= 4, `tuned: 1 MiB buffers come from the heap (it grew by ${tuned.grown} MiB)`);
    assert.ok(
      tuned.kept >= tuned.grown - 1,
      `tuned: freed memory stays mapped for reuse (${tuned.kept} of ${tuned.grown} MiB kept)`,
    );
  });
});
