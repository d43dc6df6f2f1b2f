import { writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { checkReportWritable, runScript } from '../src/config/args.js';
import { buildLoadgen, RESULTS_DIR } from './loadgen.js';
import { parseSuiteOptions, suiteHelp } from './options.js';
import { writeSuiteReport } from './report-html.js';
import { SECTIONS } from './sections/index.js';
import { detectMachine, runConditions, Suite } from './suite.js';

/**
 * `npm run bench`: wshub against the minimal `ws` baseline, alternating in the
 * same run, medians of several runs with their spread. See bench/README.md.
 * This runner parses the flags, runs the chosen sections (bench/sections/, one
 * module each) and writes the report; the sections share bench/suite.ts.
 */
async function main(argv: readonly string[]): Promise<number> {
  const options = parseSuiteOptions(argv);
  if (options === 'help') {
    process.stdout.write(suiteHelp());
    return 0;
  }
  // A report that cannot be written is found out now, not after the whole suite has run.
  if (options.report) checkReportWritable(options.report);
  const machine = detectMachine();
  const conditions = runConditions(machine, options);
  const suite = new Suite(options, machine, buildLoadgen());
  const { say, warnings, rows } = suite;

  const started = Date.now();
  say(`wshub benchmark — ${conditions.date}`);
  say(
    `machine: ${conditions.cpu}, ${conditions.cores} cores, Linux ${conditions.kernel}, Node ${conditions.node}`,
  );
  say(`pinning: ${conditions.pinning}`);
  say(`bufferutil: ${conditions.bufferutil}`);
  say(`load average at start: ${conditions.loadAverageAtStart.join(' ')}`);
  if ((conditions.loadAverageAtStart[0] ?? 0) > 1.5) {
    warnings.push(
      `load average was ${conditions.loadAverageAtStart[0]} at start: other processes compete for the CPUs, figures are noisy`,
    );
  }
  say();

  try {
    for (const section of SECTIONS) {
      if (options.only === undefined || options.only.has(section.name)) await section.run(suite);
    }
  } catch (error) {
    process.stderr.write(`bench: ${(error as Error).message}\n`);
    return 1;
  }

  conditions.loadAverageAtEnd = loadavg().map((n) => Number(n.toFixed(2)));
  for (const warning of warnings) say(`WARNING: ${warning}`);
  say(
    `done in ${((Date.now() - started) / 1000).toFixed(0)} s; load average at end: ${conditions.loadAverageAtEnd.join(' ')}`,
  );

  const document = { conditions, warnings, results: rows };
  writeFileSync(`${RESULTS_DIR}/latest.json`, `${JSON.stringify(document, null, 2)}\n`);
  if (options.json) process.stdout.write(`${JSON.stringify(document, null, 2)}\n`);
  if (options.report) {
    writeSuiteReport(options.report, document);
    say(`HTML report written to ${options.report}`);
  }
  return 0;
}

await runScript('bench', () => main(process.argv.slice(2)));
