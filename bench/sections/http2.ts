import { execFile } from 'node:child_process';
import { ROOT } from '../loadgen.js';
import { type BenchServer, startBenchServer } from '../servers.js';
import { fmt, fmtStat, median, ratioText, type Section, type Stat, type Suite } from '../suite.js';

/** The JSON report of `wshub bench --json` (src/bench/report.ts), the fields this section reads. */
interface WshubBenchReport {
  readonly connections: {
    readonly established: number;
    readonly http2: { readonly connections: number; readonly streamsPerConnection: number } | null;
  };
  readonly messages: { readonly received: number; readonly receivedPerSecond: number; readonly lost: number };
  readonly latencyMs: { readonly p50: number | null; readonly p99: number | null };
  readonly errors: number;
}

/** Runs `wshub bench` (the Node load generator: the C one speaks HTTP/1.1 only) against `server`; CPU of the server over the whole run. */
async function runWshubBench(
  server: BenchServer,
  args: string[],
): Promise<{ report: WshubBenchReport; cpuUsPerMessage: number | undefined }> {
  const cpuAtStart = server.cpuSeconds();
  const stdout = await new Promise<string>((resolve, reject) => {
    execFile(
      process.execPath,
      [`${ROOT}bin/wshub.js`, 'bench', `ws://127.0.0.1:${server.port}/ws`, '--json', ...args],
      { timeout: 120_000, maxBuffer: 16 * 1024 * 1024 },
      (error, out) => (error && out === '' ? reject(error) : resolve(out)),
    );
  });
  const cpuUsed = server.cpuSeconds() - cpuAtStart;
  const report = JSON.parse(stdout) as WshubBenchReport;
  const received = report.messages.received;
  return { report, cpuUsPerMessage: received > 0 ? (cpuUsed * 1e6) / received : undefined };
}

/**
 * Issue 17: WebSockets over HTTP/2 against HTTP/1.1 on the same wshub (--http2 serves both on one
 * port), alternating, the same Node load generator (`wshub bench`) for both: HTTP/1.1 = one TCP
 * connection per WebSocket, HTTP/2 = 100 WebSocket streams per connection.
 */
async function run(suite: Suite): Promise<void> {
  const { options, warnings, say, SERVER_CORE, addRow, printTable } = suite;
  const seconds = Math.max(2, options.seconds);
  const cases = [
    {
      label: 'echo 100 conns × 64 B, closed loop',
      mode: 'echo' as const,
      unit: 'msgs/s',
      args: ['--connections=100', '--size=64', '--workers=1'],
    },
    {
      label: 'broadcast 50 conns × 20 msg/s → 50 each',
      mode: 'broadcast' as const,
      unit: 'deliveries/s',
      args: ['--mode=broadcast', '--connections=50', '--rate=20', '--size=64', '--workers=1'],
    },
  ];
  const lines: string[][] = [];
  for (const mode of ['echo', 'broadcast'] as const) {
    const server = await startBenchServer('wshub', mode, {
      core: SERVER_CORE,
      nofile: 4096,
      wshubFlags: ['--http2', ...(mode === 'broadcast' ? ['--mode=broadcast'] : [])],
      logName: `wshub-${mode}-http2`,
    });
    try {
      for (const { label, unit, args } of cases.filter((c) => c.mode === mode)) {
        const runs: { h1: WshubBenchReport[]; h2: WshubBenchReport[] } = { h1: [], h2: [] };
        const cpuUs: { h1: number[]; h2: number[] } = { h1: [], h2: [] };
        for (let run = 0; run < options.runs; run++) {
          const order = run % 2 === 0 ? (['h2', 'h1'] as const) : (['h1', 'h2'] as const);
          for (const variant of order) {
            const { report, cpuUsPerMessage } = await runWshubBench(server, [
              ...args,
              `--duration=${seconds}s`,
              ...(variant === 'h2' ? ['--http2', '--streams-per-connection=100'] : []),
            ]);
            if (report.errors > 0) warnings.push(`http2 ${label} (${variant}): ${report.errors} errors`);
            runs[variant].push(report);
            if (cpuUsPerMessage !== undefined) cpuUs[variant].push(cpuUsPerMessage);
          }
        }
        const perSecond = (reports: WshubBenchReport[]): number[] =>
          reports.map((report) => report.messages.receivedPerSecond);
        const p = (reports: WshubBenchReport[], key: 'p50' | 'p99'): number =>
          median(reports.map((report) => (report.latencyMs[key] ?? 0) * 1000));
        const streams = runs.h2[0]?.connections.http2;
        const row = addRow(
          'http2',
          label,
          unit,
          true,
          { wshub: perSecond(runs.h2), ws: perSecond(runs.h1) },
          {
            comparison:
              'wshub = WebSockets over HTTP/2 (RFC 8441), ws = over HTTP/1.1; the same wshub --http2, the same load generator',
            http2: streams,
            serverCpuUsPerMessage: { http2: median(cpuUs.h2), http1: median(cpuUs.h1) },
            p50_us: { http2: p(runs.h2, 'p50'), http1: p(runs.h1, 'p50') },
            p99_us: { http2: p(runs.h2, 'p99'), http1: p(runs.h1, 'p99') },
          },
        );
        lines.push([
          label,
          fmtStat(row.ws),
          fmtStat(row.wshub as Stat),
          ratioText(row),
          `${fmt(median(cpuUs.h1))} / ${fmt(median(cpuUs.h2))}`,
          `${fmt(p(runs.h1, 'p50'))} / ${fmt(p(runs.h2, 'p50'))}`,
          streams ? `${streams.connections} × ${streams.streamsPerConnection}` : '–',
        ]);
      }
    } finally {
      await server.stop();
    }
  }
  say(
    `http2 — WebSockets over HTTP/1.1 against over HTTP/2 (RFC 8441) on the same wshub --http2, alternating (median [min–max] of ${options.runs}); load generator: wshub bench (Node), server CPU over the whole run incl. connecting`,
  );
  printTable(
    [
      'case',
      'HTTP/1.1',
      'HTTP/2',
      'ratio 2/1.1',
      'server CPU µs/msg 1.1 / 2',
      'p50 µs 1.1 / 2',
      'h2 connections × streams',
    ],
    lines,
  );
}

export const http2Section: Section = { name: 'http2', run };
