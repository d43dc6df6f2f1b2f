/**
 * Micro-benchmark of the log formats (issue 8: logging must not slow the hot path).
 * Formats N connect-style lines with their fields as text, as JSON, and with the
 * level set above info (the no-op a silenced logger costs), into a sink that only
 * counts bytes and into /dev/null through a real write(2). Prints ns per line.
 *
 *   npm run bench:log [-- LINES]
 */
import { closeSync, openSync, writeSync } from 'node:fs';
import { createLogger, type Fields, type LoggerOptions } from '../src/log.js';

const lines = Number(process.argv[2] ?? 200_000);
if (!Number.isInteger(lines) || lines < 1 || lines > 10_000_000) {
  process.stderr.write('usage: log-format.js [LINES from 1 to 10000000]\n');
  process.exit(2);
}

interface Variant {
  readonly name: string;
  readonly options: Pick<LoggerOptions, 'format' | 'level'>;
}
const VARIANTS: readonly Variant[] = [
  { name: 'text', options: { format: 'text' } },
  { name: 'json', options: { format: 'json' } },
  { name: 'silent (level=warn)', options: { format: 'json', level: 'warn' } },
];

function run(variant: Variant, write: (line: string) => void): number {
  const logger = createLogger({ ...variant.options, write });
  const fields: Fields = { remote_addr: '192.168.1.100:54321', conn_id: 0, room: 'lobby', close_code: 1000 };
  const start = process.hrtime.bigint();
  for (let i = 0; i < lines; i++) {
    logger.info('WebSocket disconnected: 192.168.1.100:54321', { ...fields, conn_id: i });
  }
  return Number(process.hrtime.bigint() - start) / lines;
}

function best(variant: Variant, write: (line: string) => void): number {
  let fastest = Number.POSITIVE_INFINITY;
  for (let round = 0; round < 3; round++) fastest = Math.min(fastest, run(variant, write));
  return fastest;
}

let bytes = 0;
const countBytes = (line: string): void => {
  bytes += line.length;
};
const devNull = openSync('/dev/null', 'w');
const writeDevNull = (line: string): void => {
  writeSync(devNull, line);
};

process.stdout.write(`log formats, ${lines} lines each, best of 3 (ns per line)\n`);
process.stdout.write(
  `${'variant'.padEnd(22)}${'format only'.padStart(14)}${'write(2) /dev/null'.padStart(22)}\n`,
);
for (const variant of VARIANTS) {
  const formatOnly = best(variant, countBytes);
  const withWrite = best(variant, writeDevNull);
  process.stdout.write(
    `${variant.name.padEnd(22)}${formatOnly.toFixed(0).padStart(14)}${withWrite.toFixed(0).padStart(22)}\n`,
  );
}
closeSync(devNull);
if (bytes === 0) process.stdout.write('(no bytes formatted)\n');
