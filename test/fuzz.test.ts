import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { fuzzSpawnedServer } from '../scripts/fuzz.js';

// A short run of `npm run fuzz` (fixed seeds, so a failure replays with the same traffic).
describe('fuzzing a spawned server (short run)', () => {
  for (const run of [
    { flags: ['--mode=echo', '--compression'], compression: true, seed: 4242, durationMs: 6000 },
    { flags: ['--mode=broadcast'], compression: false, seed: 1717, durationMs: 4000 },
  ]) {
    it(`${run.flags.join(' ')}: stays up, keeps serving, websocket_connections back to exactly 0`, async (t) => {
      const { report } = await fuzzSpawnedServer(run.flags, {
        durationMs: run.durationMs,
        seed: run.seed,
        concurrency: 8,
        compression: run.compression,
        log: (line) => t.diagnostic(line),
      });
      t.diagnostic(JSON.stringify(report));
      assert.deepEqual(report.failures, [], `seed ${run.seed}`);
      assert.equal(report.fuzzerErrors, 0, 'the fuzzer itself must not throw');
      assert.ok(report.sessions >= 20, `only ${report.sessions} sessions ran`);
      assert.ok(
        report.canaryRoundTrips >= 5,
        `only ${report.canaryRoundTrips} round trips for the well-behaved client`,
      );
      assert.ok(
        Object.keys(report.closeCodes).length >= 2,
        'the server refused the bad traffic with close codes',
      );
    });
  }
});
