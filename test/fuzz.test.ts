import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { fuzzSpawnedServer, replayFailure, type SpawnedFuzzOptions } from '../scripts/fuzz.js';
import { planSession, SCENARIOS, transcriptOf } from '../scripts/fuzz-engine.js';
import { assertUsageError, runScriptToExit } from './helpers/cli.js';

const FUZZ_SCRIPT = fileURLToPath(new URL('../scripts/fuzz.js', import.meta.url));
const UNGUARDED = {
  NODE_OPTIONS: `--import=${pathToFileURL(fileURLToPath(new URL('./helpers/unguarded-ws.js', import.meta.url))).href}`,
};
const scratch = mkdtempSync(join(tmpdir(), 'wshub-fuzz-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

const PLAN = { compression: true, maxMessageSize: 4 * 1024 * 1024, maxFragments: 64 };
/** The size kept in npm test: with the receiver guard disabled it kills the server (test below). */
const BROADCAST: SpawnedFuzzOptions = {
  ...PLAN,
  seed: 14,
  sessions: 240,
  concurrency: 8,
  mode: 'broadcast',
};

describe('the fuzzer is replayable (issue 14)', () => {
  it('a seed fixes every byte: the same plans and transcript each time, another seed another transcript', () => {
    assert.equal(transcriptOf(7, 200, PLAN), transcriptOf(7, 200, PLAN));
    assert.notEqual(transcriptOf(7, 200, PLAN), transcriptOf(8, 200, PLAN));
    assert.notEqual(transcriptOf(7, 200, PLAN), transcriptOf(7, 200, { ...PLAN, compression: false }));
    const first = planSession(7, 123, PLAN);
    const again = planSession(7, 123, PLAN);
    assert.deepEqual(again, first);
    const scenarios = new Set(Array.from({ length: 200 }, (_, i) => planSession(7, i, PLAN).scenario));
    assert.deepEqual([...scenarios].sort(), [...SCENARIOS].sort());
  });
});

describe('fuzzing a spawned server (bounded by session counts)', () => {
  it('echo with compression: stays up, right close codes, websocket_connections back to exactly 0', async (t) => {
    const options: SpawnedFuzzOptions = { ...PLAN, seed: 4242, sessions: 160, concurrency: 8, mode: 'echo' };
    const report = await fuzzSpawnedServer(options);
    t.diagnostic(JSON.stringify({ ...report, failing: undefined }));
    assert.deepEqual(report.failures, [], `seed ${options.seed}`);
    assert.equal(report.sessions, options.sessions);
    assert.ok(
      report.canaryRoundTrips >= 2,
      `${report.canaryRoundTrips} round trips for the well-behaved client`,
    );
    for (const code of ['1000', '1002', '1007'])
      assert.ok((report.closeCodes[code] ?? 0) > 0, `no ${code} seen`);
    // The digest depends on the plans only, never on what the server answered.
    assert.equal(report.transcript, transcriptOf(options.seed, options.sessions, options));
  });

  let guardedTranscript = '';
  it(`broadcast with compression, ${BROADCAST.sessions} sessions: stays up (the receiver guard holds)`, async (t) => {
    const report = await fuzzSpawnedServer({ ...BROADCAST, failureFile: join(scratch, 'guarded.json') });
    t.diagnostic(JSON.stringify({ ...report, failing: undefined }));
    assert.deepEqual(report.failures, [], `seed ${BROADCAST.seed}`);
    assert.equal(report.sessions, BROADCAST.sessions);
    guardedTranscript = report.transcript;
  });

  it('the same run kills a server without the guard; the failure file replays it', async (t) => {
    const failureFile = join(scratch, 'unguarded.json');
    const report = await fuzzSpawnedServer({ ...BROADCAST, failureFile, serverEnv: UNGUARDED });
    t.diagnostic(JSON.stringify({ ...report, failing: undefined }));
    assert.ok(
      report.failures.some((failure) => failure.startsWith('the server died')),
      `expected a crash: ${report.failures.join('; ')}`,
    );
    assert.ok(
      report.failures.some((failure) => /reading '0'/.test(failure)),
      'the TypeError on the server stderr',
    );
    // Same seed and options, different answers from the server: the same transcript.
    assert.equal(
      report.transcript,
      guardedTranscript || transcriptOf(BROADCAST.seed, BROADCAST.sessions, BROADCAST),
    );
    const record = JSON.parse(readFileSync(failureFile, 'utf8'));
    assert.equal(record.seed, BROADCAST.seed);
    assert.ok(record.sessions.length >= 1);
    // Replaying sends the same bytes again (the pacing is in the plan; bounded retries for timing).
    let reproduced = false;
    for (let attempt = 0; attempt < 12 && !reproduced; attempt++) {
      const replay = await replayFailure(failureFile, { serverEnv: UNGUARDED });
      reproduced = replay.failures.some((failure) => failure.startsWith('the server died'));
    }
    assert.ok(reproduced, 'the replay killed the unguarded server again');
    // ...and against the guarded server the same bytes pass.
    const fixed = await replayFailure(failureFile);
    assert.deepEqual(fixed.failures, []);
  });
});

describe('npm run fuzz: arguments (the shared parser)', () => {
  for (const [args, code] of [
    [['--sessions=0'], 'WSHUB_INVALID_VALUE'],
    [['--sesions=5'], 'WSHUB_UNKNOWN_FLAG'],
    [['--seed'], 'WSHUB_MISSING_VALUE'],
    [['--replay=/nonexistent/file.json'], 'WSHUB_INVALID_VALUE'],
  ] as const) {
    it(`${args.join(' ')}: ${code}, exit 2`, async () => {
      assertUsageError(await runScriptToExit(FUZZ_SCRIPT, [...args]), code, /^fuzz: /);
    });
  }
});
