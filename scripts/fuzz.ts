import { parseArgs } from 'node:util';
import { parseDuration } from '../src/config/duration.js';
import { type SpawnedServer, spawnServer } from '../test/helpers/server.js';
import { type FuzzReport, fuzz } from './fuzz-engine.js';

/**
 * npm run fuzz -- [--duration=60s] [--seed=N] [--mode=echo|broadcast] [--compression] [--concurrency=8]
 * Spawns wshub on 127.0.0.1 (ephemeral ports), fuzzes it, prints a report and
 * exits 1 if the server crashed, stopped serving, or miscounted its connections.
 */
export async function fuzzSpawnedServer(
  serverFlags: readonly string[],
  options: {
    durationMs: number;
    seed: number;
    concurrency?: number;
    compression?: boolean;
    log?: (line: string) => void;
  },
): Promise<{ report: FuzzReport; server: SpawnedServer }> {
  const server = await spawnServer(['--stats-interval=0', ...serverFlags]);
  // Connect/disconnect lines are not needed: keep the captured log bounded on long runs.
  const trimLog = setInterval(() => server.stdout.lines.splice(0), 1000);
  try {
    const report = await fuzz(
      {
        port: server.port,
        metricsUrl: server.metricsUrl,
        alive: () => server.child.exitCode === null && server.child.signalCode === null,
      },
      options,
    );
    const crashLines = server.stderr.lines.filter((line) => line.trim() !== '');
    if (crashLines.length > 0) {
      (report.failures as string[]).push(
        `the server wrote to stderr:\n${crashLines.slice(0, 20).join('\n')}`,
      );
    }
    return { report, server };
  } finally {
    clearInterval(trimLog);
    const stopping = Date.now();
    server.kill('SIGTERM');
    await Promise.race([server.exited, new Promise((resolve) => setTimeout(resolve, 10_000))]);
    if (server.child.exitCode === null) server.kill('SIGKILL');
    options.log?.(`fuzz: server stopped in ${Date.now() - stopping} ms`);
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      duration: { type: 'string', default: '60s' },
      seed: { type: 'string' },
      mode: { type: 'string', default: 'echo' },
      compression: { type: 'boolean', default: false },
      concurrency: { type: 'string', default: '8' },
    },
  });
  const durationMs = parseDuration(values.duration);
  if (durationMs === undefined || durationMs > 24 * 3600_000) {
    process.stderr.write('fuzz: --duration needs a unit and at most 24h, e.g. 30s or 10m\n');
    process.exit(2);
  }
  const seed = values.seed === undefined ? Math.floor(Math.random() * 2 ** 31) : Number(values.seed);
  const concurrency = Number(values.concurrency);
  if (!Number.isInteger(seed) || !Number.isInteger(concurrency) || concurrency < 1 || concurrency > 256) {
    process.stderr.write('fuzz: --seed must be an integer, --concurrency 1..256\n');
    process.exit(2);
  }
  if (values.mode !== 'echo' && values.mode !== 'broadcast') {
    process.stderr.write('fuzz: --mode must be echo or broadcast\n');
    process.exit(2);
  }
  const serverFlags = [`--mode=${values.mode}`, ...(values.compression ? ['--compression'] : [])];
  console.log(
    `fuzz: seed ${seed}, ${values.duration}, server flags: ${serverFlags.join(' ')} (replay with --seed=${seed})`,
  );
  const { report } = await fuzzSpawnedServer(serverFlags, {
    durationMs,
    seed,
    concurrency,
    compression: values.compression,
    log: (line) => console.log(line),
  });
  console.log(JSON.stringify(report, null, 2));
  if (report.failures.length > 0) {
    console.error(`fuzz: FAILED (seed ${seed}):\n- ${report.failures.join('\n- ')}`);
    process.exit(1);
  }
  console.log(`fuzz: passed (seed ${seed})`);
}

if (process.argv[1] !== undefined && import.meta.url === new URL(`file://${process.argv[1]}`).href) {
  await main();
}
