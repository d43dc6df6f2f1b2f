import type { LoadgenResult } from '../loadgen.js';
import { type BenchServer, startBenchServer } from '../servers.js';
import { cpuOf, fmt, fmtStat, median, ratioText, type Section, type Suite } from '../suite.js';

/**
 * Multi-core (issue 5): wshub --workers=2 against --workers=1 in the same run, alternating. Nothing
 * is pinned: the load generator, the primary and the workers share the machine's cores, so on a
 * 2-core box 2 workers compete with the client for the second core and cannot reach 2×.
 */
async function run(suite: Suite): Promise<void> {
  const { options, warnings, say, cores, addRow, commonArgs, printTable, runMeasuringServerCpu } = suite;
  const cases = [
    { label: 'echo 100 conns × 20 B', mode: 'echo' as const, args: ['echo', '-n', '100', '-s', '20'] },
    {
      label: 'broadcast 1 → 1,000 subs, window 1',
      mode: 'broadcast' as const,
      args: ['fanout', '-n', '1000', '-s', '20', '-W', '1'],
    },
    {
      label: 'broadcast 1 → 1,000 subs, window 16',
      mode: 'broadcast' as const,
      args: ['fanout', '-n', '1000', '-s', '20', '-W', '16'],
    },
  ];
  const lines: string[][] = [];
  for (const mode of ['echo', 'broadcast'] as const) {
    const start = (workers: number) =>
      startBenchServer('wshub', mode, {
        core: undefined,
        nofile: 4096,
        wshubFlags: [`--workers=${workers}`, ...(mode === 'broadcast' ? ['--mode=broadcast'] : [])],
        logName: `wshub-${mode}-workers-${workers}`,
        childrenCpu: true,
      });
    const servers = await Promise.all([start(1), start(2)]);
    const [one, two] = servers as [BenchServer, BenchServer];
    try {
      for (const { label, args } of cases.filter((c) => c.mode === mode)) {
        const results: { one: LoadgenResult[]; two: LoadgenResult[] } = { one: [], two: [] };
        const cpuUs: { one: number[]; two: number[] } = { one: [], two: [] };
        for (let run = 0; run < options.runs; run++) {
          const order = run % 2 === 0 ? (['two', 'one'] as const) : (['one', 'two'] as const);
          for (const variant of order) {
            const server = variant === 'one' ? one : two;
            const { result, cpuUsPerOp } = await runMeasuringServerCpu(
              server,
              [args[0] as string, ...commonArgs(server), ...args.slice(1)],
              undefined,
            );
            if (result.lost > 0 || result.dups > 0) {
              warnings.push(
                `workers ${label} (${variant === 'one' ? 1 : 2} workers): ${result.lost} lost, ${result.dups} duplicated`,
              );
            }
            if (cpuUsPerOp !== undefined) cpuUs[variant].push(cpuUsPerOp);
            results[variant].push(result);
          }
        }
        const row = addRow(
          'workers',
          label,
          mode === 'echo' ? 'msgs/s' : 'deliveries/s',
          true,
          { wshub: results.two.map((r) => r.per_s), ws: results.one.map((r) => r.per_s) },
          {
            comparison: 'wshub = --workers=2, ws = --workers=1 (both wshub; nothing pinned)',
            serverCpuUsPerOp: { workers2: median(cpuUs.two), workers1: median(cpuUs.one) },
            loadgenCpuPct: {
              workers2: results.two.map((r) => r.client_cpu_pct),
              workers1: results.one.map((r) => r.client_cpu_pct),
            },
          },
        );
        lines.push([
          label,
          fmtStat(row.ws),
          fmtStat(row.wshub),
          ratioText(row),
          `${fmt(median(cpuUs.one))} / ${fmt(median(cpuUs.two))}`,
          `${cpuOf(results.one)} / ${cpuOf(results.two)}`,
        ]);
      }
    } finally {
      await Promise.all(servers.map((server) => server.stop()));
    }
  }
  say(
    `workers — wshub --workers=1 against --workers=2, alternating (median [min–max] of ${options.runs}). Nothing pinned: the load generator shares the ${cores} cores with the server's processes, so the ratio is what ${cores} cores give with the client on them, not the server's scaling alone`,
  );
  printTable(
    [
      'case',
      '1 worker',
      '2 workers',
      'ratio 2/1',
      'server CPU µs/op 1 / 2 (all processes)',
      'loadgen CPU (max) 1 / 2',
    ],
    lines,
  );
}

export const workersSection: Section = { name: 'workers', run };
