import { writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { resolve } from 'node:path';
import { checkHttp2ClientShape } from '../client/http2.js';
import { checkReportWritable } from '../config/args.js';
import { benchReportHtml } from './html-report.js';
import { benchHelpText, parseBenchArgs } from './options.js';
import { formatProgress, formatReport } from './report.js';
import { runBench } from './run.js';

export interface Output {
  write(text: string): unknown;
  readonly isTTY?: boolean;
}

export interface CommandIO {
  readonly stdout: Output;
  readonly stderr: Output;
  /** Registers what the first Ctrl-C does; a second one exits at once. */
  readonly onInterrupt: (handler: () => void) => void;
}

/** `wshub bench URL [flags]`: returns the exit status. Usage errors are thrown (exit 2). */
export async function benchCommand(argv: readonly string[], io: CommandIO): Promise<number> {
  const options = parseBenchArgs(argv, availableParallelism());
  if (options.action === 'help') {
    io.stdout.write(benchHelpText());
    return 0;
  }
  // A report that cannot be written is found out before the run, not after it.
  if (options.report !== '') checkReportWritable(options.report);
  if (options.http2) checkHttp2ClientShape();
  const live = io.stderr.isTTY === true;
  const run = runBench(options, {
    onProgress: live
      ? (counts, elapsedMs) =>
          io.stderr.write(`\r\x1b[K${formatProgress(counts, elapsedMs, options.durationMs)}`)
      : undefined,
  });
  io.onInterrupt(() => run.stop());
  const report = await run.done;
  if (live) io.stderr.write('\r\x1b[K');
  io.stdout.write(options.json ? `${JSON.stringify(report)}\n` : formatReport(report));
  if (options.report !== '') {
    writeFileSync(options.report, benchReportHtml(report));
    // With --json, stdout stays one JSON object; the note goes to stderr.
    (options.json ? io.stderr : io.stdout).write(`HTML report written to ${resolve(options.report)}\n`);
  }
  return report.passed ? 0 : 1;
}
