import { flag, flagsHelp, parseFlags } from '../src/config/args.js';
import { boolean, decimal, integer, list, text } from '../src/config/kinds.js';
import { SECTIONS } from './sections/index.js';

/** The suite's options, from `npm run bench -- …`. */
export interface SuiteOptions {
  readonly quick: boolean;
  readonly json: boolean;
  readonly runs: number;
  readonly seconds: number;
  readonly warmup: number;
  readonly only: ReadonlySet<string> | undefined;
  /** --report=FILE.html: the results as an HTML file with bar charts (bench/report-html.ts). */
  readonly report: string | undefined;
}

const SECTION_NAMES = SECTIONS.map((section) => section.name);

/** `npm run bench -- …`: the flags, parsed by the shared parser (src/config/args.ts). */
export const BENCH_SUITE_FLAGS = {
  quick: flag({
    kind: boolean(),
    default: false,
    doc: 'One 1-second run per case (0.5 s warm-up), for a quick look',
  }),
  json: flag({ kind: boolean(), default: false, doc: 'Print the results as one JSON document on stdout' }),
  runs: flag({ kind: integer(1, 99), default: 3, doc: 'Runs per case (medians and spread)' }),
  seconds: flag({ kind: decimal(0.1, 60), default: 2, doc: 'Seconds per run' }),
  report: flag({
    kind: { ...text({ expected: 'a file name ending in .html', pattern: /\.html?$/i }), hint: '<FILE.html>' },
    default: '',
    doc: 'Also write the results as an HTML file with bar charts',
  }),
  only: flag({
    kind: list({
      pattern: new RegExp(`^(${SECTION_NAMES.join('|')})$`),
      expected: `a comma-separated list of ${SECTION_NAMES.join(', ')}`,
    }),
    default: [] as readonly string[],
    doc: `Sections to run (${SECTION_NAMES.join(',')}; default: all)`,
  }),
} as const;

/** The usage text of `npm run bench -- --help`. */
export const suiteHelp = (): string =>
  ['Usage: npm run bench -- [flags]', '', 'Flags:', ...flagsHelp(BENCH_SUITE_FLAGS), ''].join('\n');

/** Parses the suite's flags: the options, or `help` when --help was given. Throws a `UsageError`. */
export function parseSuiteOptions(argv: readonly string[]): SuiteOptions | 'help' {
  const { values, given, help } = parseFlags(argv, BENCH_SUITE_FLAGS, 'npm run bench');
  if (help) return 'help';
  return {
    quick: values.quick,
    json: values.json,
    runs: values.quick && !given.has('runs') ? 1 : values.runs,
    seconds: values.quick && !given.has('seconds') ? 1 : values.seconds,
    warmup: values.quick ? 0.5 : 1,
    only: values.only.length === 0 ? undefined : new Set(values.only),
    report: values.report === '' ? undefined : values.report,
  };
}
