/**
 * Micro-benchmark of the log formats (issue 8: logging must not slow the hot path).
 * Formats N connect-style lines with their fields as text, as JSON, and with the
 * level set above info (the no-op a silenced logger costs), into a sink that only
 * counts bytes and into /dev/null through a real write(2). Prints ns per line.
 *
 *   npm run bench:log [-- --lines=N]
 */
import { closeSync, openSync, writeSync } from 'node:fs';
import { flag, flagsHelp, parseFlags, runScript } from '../src/config/args.js';
import { integer } from '../src/config/kinds.js';
import { createLogger, type Fields, type LoggerOptions } from '../src/log.js';

const FLAGS = {
  lines: flag({
    kind: integer(1, 10_000_000),
    default: 200_000,
    doc: 'Lines formatted per variant and round',
  }),
} as const;

interface Variant {
  readonly name: string;
  readonly options: Pick<LoggerOptions, 'format' | 'level'>;
}
const VARIANTS: readonly Variant[] = [
  { name: 'text', options: { format: 'text' } },
  { name: 'json', options: { format: 'json' } },
  { name: 'silent (level=warn)', options: { format: 'json', level: 'warn' } },
];

function run(variant: Variant, write: (line: string) => void, lines: number): number {
  const logger = createLogger({ ...variant.options, write });
  const fields: Fields = { remote_addr: '192.168.1.100:54321', conn_id: 0, room: 'lobby', close_code: 1000 };
  const start = process.hrtime.bigint();
  for (let i = 0; i < lines; i++) {
    logger.info('WebSocket disconnected: 192.168.1.100:54321', { ...fields, conn_id: i });
  }
  return Number(process.hrtime.bigint() - start) / lines;
}

function best(variant: Variant, write: (line: string) => void, lines: number): number {
  let fastest = Number.POSITIVE_INFINITY;
  for (let round = 0; round < 3; round++) fastest = Math.min(fastest, run(variant, write, lines));
  return fastest;
}

async function main(argv: readonly string[]): Promise<number> {
  const { values, help } = parseFlags(argv, FLAGS, 'npm run bench:log');
  if (help) {
    process.stdout.write(
      ['Usage: npm run bench:log -- [flags]', '', 'Flags:', ...flagsHelp(FLAGS), ''].join('\n'),
    );
    return 0;
  }
  const { lines } = values;
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
    const formatOnly = best(variant, countBytes, lines);
    const withWrite = best(variant, writeDevNull, lines);
    process.stdout.write(
      `${variant.name.padEnd(22)}${formatOnly.toFixed(0).padStart(14)}${withWrite.toFixed(0).padStart(22)}\n`,
    );
  }
  closeSync(devNull);
  if (bytes === 0) process.stdout.write('(no bytes formatted)\n');
  return 0;
}

await runScript('bench:log', () => main(process.argv.slice(2)));
