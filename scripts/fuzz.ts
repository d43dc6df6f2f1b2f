import { randomInt } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { flag, flagsHelp, parseFlags, runScript } from '../src/config/args.js';
import { boolean, bytes, integer, oneOf, text } from '../src/config/kinds.js';
import { ErrorCode, UsageError } from '../src/errors.js';
import { type SpawnedServer, spawnServer } from '../test/helpers/server.js';
import {
  type FailureRecord,
  type FuzzReport,
  type FuzzTarget,
  failureRecord,
  fuzz,
  type PlanOptions,
  plansOf,
  runPlans,
  type SessionPlan,
  transcriptOfPlans,
} from './fuzz-engine.js';

/** `npm run fuzz -- …`: the flags, parsed by the shared parser (src/config/args.ts). */
export const FUZZ_FLAGS = {
  seed: flag({
    kind: integer(-1, 2 ** 32 - 1, 'an integer from 0 to 4294967295, or -1 for a random seed'),
    default: -1,
    doc: 'Fixes every byte sent (-1: a random seed, printed)',
  }),
  sessions: flag({
    kind: integer(1, 10_000_000),
    default: 2000,
    doc: 'Sessions to run (the run is bounded by this count)',
  }),
  concurrency: flag({ kind: integer(1, 256), default: 8, doc: 'Sessions in flight at once' }),
  mode: flag({
    kind: oneOf(['echo', 'broadcast']),
    default: 'echo' as 'echo' | 'broadcast',
    doc: "The server's --mode",
  }),
  compression: flag({
    kind: boolean(),
    default: false,
    doc: 'Run the server with --compression and send compressed frames',
  }),
  'max-message-size': flag({
    kind: bytes(1024, 64 * 1024 * 1024),
    default: 4 * 1024 * 1024,
    doc: "The server's --max-message-size (also the largest message sent)",
  }),
  'max-fragments': flag({ kind: integer(2, 100_000), default: 64, doc: "The server's --max-fragments" }),
  'failure-file': flag({
    kind: text({ allowEmpty: true }),
    default: '',
    doc: 'Where a failure is written (default: fuzz-failure-<seed>.json here)',
  }),
  replay: flag({
    kind: text({ allowEmpty: true }),
    default: '',
    doc: 'Send the sessions of a failure file again (its own seed and server flags)',
  }),
} as const;

export interface SpawnedFuzzOptions extends PlanOptions {
  readonly seed: number;
  readonly sessions: number;
  readonly concurrency: number;
  readonly mode: 'echo' | 'broadcast';
  /** Where a failure is written; undefined: not written. */
  readonly failureFile?: string | undefined;
  /** Environment of the spawned server (tests: a preload that disables the receiver guard). */
  readonly serverEnv?: Record<string, string>;
  readonly log?: (line: string) => void;
}

export const serverFlagsOf = (
  options: Omit<SpawnedFuzzOptions, 'seed' | 'sessions' | 'concurrency'>,
): string[] => [
  `--mode=${options.mode}`,
  ...(options.compression ? ['--compression'] : []),
  `--max-message-size=${options.maxMessageSize}`,
  `--max-fragments=${options.maxFragments}`,
  // Room for a few of the largest messages per client: a session that echoes or receives its own
  // --max-message-size broadcast is not a slow consumer.
  `--max-buffered-bytes=${Math.max(16 * 1024 * 1024, 4 * options.maxMessageSize)}`,
];

/** Spawns wshub on 127.0.0.1 (ephemeral ports), runs `work` against it, and stops it. */
async function withSpawnedServer<T>(
  serverFlags: readonly string[],
  env: Record<string, string> | undefined,
  work: (target: FuzzTarget, server: SpawnedServer) => Promise<T>,
): Promise<{ result: T; stderr: string[] }> {
  const server = await spawnServer(['--stats-interval=0', ...serverFlags], env);
  // Connect/disconnect lines are not needed: keep the captured log bounded on long runs.
  const trimLog = setInterval(() => server.stdout.lines.splice(0), 1000);
  try {
    const result = await work(
      {
        port: server.port,
        metricsUrl: server.metricsUrl,
        alive: () => server.child.exitCode === null && server.child.signalCode === null,
      },
      server,
    );
    await new Promise((resolveSoon) => setTimeout(resolveSoon, 50));
    return { result, stderr: server.stderr.lines.filter((line) => line.trim() !== '') };
  } finally {
    clearInterval(trimLog);
    server.kill('SIGTERM');
    await Promise.race([server.exited, new Promise((resolveLater) => setTimeout(resolveLater, 10_000))]);
    if (server.child.exitCode === null) server.kill('SIGKILL');
  }
}

function withStderr(failures: readonly string[], stderr: readonly string[]): string[] {
  return stderr.length === 0
    ? [...failures]
    : [...failures, `the server wrote to stderr:\n${stderr.slice(0, 20).join('\n')}`];
}

/** A fuzz run against a spawned server; a failure is written to `failureFile`. */
export async function fuzzSpawnedServer(
  options: SpawnedFuzzOptions,
): Promise<FuzzReport & { failing: readonly SessionPlan[] }> {
  const serverFlags = serverFlagsOf(options);
  const { result, stderr } = await withSpawnedServer(serverFlags, options.serverEnv, (target) =>
    fuzz(target, options),
  );
  const failures = withStderr(result.failures, stderr);
  let failureFile: string | undefined;
  if (failures.length > 0 && options.failureFile !== undefined) {
    failureFile = resolve(options.failureFile);
    const record = failureRecord(
      options.seed,
      {
        compression: options.compression,
        maxMessageSize: options.maxMessageSize,
        maxFragments: options.maxFragments,
        sessions: options.sessions,
        concurrency: options.concurrency,
      },
      serverFlags,
      failures,
      result.failing,
    );
    writeFileSync(failureFile, `${JSON.stringify(record, null, 1)}\n`);
  }
  return { ...result, failures, ...(failureFile === undefined ? {} : { failureFile }) };
}

/** Sends the sessions of a failure file again, all at once as they were in flight; the same checks. */
export async function replayFailure(
  file: string,
  options: { serverEnv?: Record<string, string>; log?: (line: string) => void } = {},
): Promise<{ record: FailureRecord; failures: string[]; transcript: string }> {
  let record: FailureRecord;
  try {
    record = JSON.parse(readFileSync(file, 'utf8')) as FailureRecord;
  } catch (error) {
    throw new UsageError(
      ErrorCode.INVALID_VALUE,
      `--replay: cannot read ${file}: ${(error as Error).message}`,
    );
  }
  if (record.wshubFuzz !== 1 || !Array.isArray(record.sessions)) {
    throw new UsageError(ErrorCode.INVALID_VALUE, `--replay: ${file} is not a failure file of npm run fuzz`);
  }
  const plans = plansOf(record);
  const byIndex = new Map(plans.map((plan) => [plan.index, plan]));
  const { result, stderr } = await withSpawnedServer(record.serverFlags, options.serverEnv, (target) =>
    runPlans(
      target,
      (index) => byIndex.get(index) as SessionPlan,
      plans.map((plan) => plan.index),
      Math.max(1, plans.length),
      options.log,
    ),
  );
  return {
    record,
    failures: withStderr(result.failures, stderr),
    transcript: transcriptOfPlans(record.seed, record.options, plans),
  };
}

const say = (line: string): void => {
  process.stdout.write(`${line}\n`);
};

async function main(argv: readonly string[]): Promise<number> {
  const { values, help } = parseFlags(argv, FUZZ_FLAGS, 'npm run fuzz');
  if (help) {
    say(
      [
        'Usage: npm run fuzz -- [flags]',
        '',
        'Spawns wshub on 127.0.0.1 and sends it random, mutated and refused frames, broken',
        'handshakes and early disconnects, one planned session after another. A seed fixes every',
        'byte; the last line is `transcript sha256=<hex>`, the digest of everything planned (the',
        'same for the same flags on any machine). A failure (the server died, no answer in time,',
        'a wrong close code) is written to a file that --replay sends again; exit 1.',
        '',
        'Flags:',
        ...flagsHelp(FUZZ_FLAGS),
      ].join('\n'),
    );
    return 0;
  }
  if (values.replay !== '') {
    const replay = await replayFailure(values.replay, { log: say });
    say(
      `fuzz: replayed ${replay.record.sessions.length} session(s) of seed ${replay.record.seed} against wshub ${replay.record.serverFlags.join(' ')}`,
    );
    if (replay.failures.length > 0) say(`fuzz: the failure reproduced:\n- ${replay.failures.join('\n- ')}`);
    else say('fuzz: the failure did not reproduce');
    say(`transcript sha256=${replay.transcript}`);
    return replay.failures.length > 0 ? 1 : 0;
  }
  const seed = values.seed === -1 ? randomInt(2 ** 31) : values.seed;
  const options: SpawnedFuzzOptions = {
    seed,
    sessions: values.sessions,
    concurrency: values.concurrency,
    mode: values.mode,
    compression: values.compression,
    maxMessageSize: values['max-message-size'],
    maxFragments: values['max-fragments'],
    failureFile: values['failure-file'] === '' ? `fuzz-failure-${seed}.json` : values['failure-file'],
    log: say,
  };
  say(`fuzz: seed ${seed}, ${options.sessions} sessions, wshub ${serverFlagsOf(options).join(' ')}`);
  const report = await fuzzSpawnedServer(options);
  const { failing: _failing, transcript, ...shown } = report;
  say(JSON.stringify(shown, null, 2));
  if (report.failures.length > 0) {
    say(`fuzz: FAILED (seed ${seed}):\n- ${report.failures.join('\n- ')}`);
    if (report.failureFile)
      say(`fuzz: wrote ${report.failureFile}; replay with npm run fuzz -- --replay=${report.failureFile}`);
  } else {
    say(`fuzz: passed, ${report.sessions} sessions (seed ${seed})`);
  }
  say(`transcript sha256=${transcript}`);
  return report.failures.length > 0 ? 1 : 0;
}

if (process.argv[1] !== undefined && import.meta.url === new URL(`file://${process.argv[1]}`).href) {
  await runScript('fuzz', () => main(process.argv.slice(2)));
}
