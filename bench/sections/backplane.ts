import { RedisServer } from '../../test/helpers/redis.js';
import type { LoadgenResult } from '../loadgen.js';
import { type BenchServer, startBenchServer } from '../servers.js';
import { fmtStat, latencyOf, medianOf, ratioText, type Section, type Suite, waitForLog } from '../suite.js';

/**
 * Cross-node fan-out (issue 6): the publisher on wshub node A, every subscriber on node B,
 * relayed through a local redis-server; the baseline, measured alternately in the same run, is the
 * same fan-out on one wshub node without a backplane.
 */
async function run(suite: Suite): Promise<void> {
  const { options, warnings, say, addRow, printTable, fanoutThroughNodes } = suite;
  let redis: RedisServer;
  try {
    redis = await RedisServer.start();
  } catch (error) {
    warnings.push(`backplane: not measured: ${(error as Error).message}`);
    return;
  }
  const subscriberCounts = options.quick ? [100] : [100, 1000];
  // Window 256 only at 1,000 subscribers: where batching through Redis matters; keeps the suite under 10 minutes.
  const windowsFor = (subscribers: number): number[] =>
    options.quick || subscribers < 1000 ? [16] : [16, 256];
  const lines: string[][] = [];
  const node = (logName: string, subscribers: number, extra: string[]) =>
    startBenchServer('wshub', 'broadcast', {
      core: undefined,
      nofile: subscribers + 1024,
      wshubFlags: ['--mode=broadcast', ...extra],
      logName,
    });
  try {
    for (const subscribers of subscriberCounts) {
      const flags = [`--backplane=${redis.url}`];
      const servers = await Promise.all([
        node('wshub-single', subscribers, []),
        node('wshub-node-a', subscribers, flags),
        node('wshub-node-b', subscribers, flags),
      ]);
      const [single, nodeA, nodeB] = servers as [BenchServer, BenchServer, BenchServer];
      try {
        await waitForLog(nodeA, /Backplane connected/);
        await waitForLog(nodeB, /Backplane connected/);
        for (const window of windowsFor(subscribers)) {
          const results: { single: LoadgenResult[]; cross: LoadgenResult[] } = { single: [], cross: [] };
          for (let run = 0; run < options.runs; run++) {
            const order = run % 2 === 0 ? (['cross', 'single'] as const) : (['single', 'cross'] as const);
            for (const variant of order) {
              const target = variant === 'single' ? single : nodeB;
              const result = await fanoutThroughNodes(
                target,
                variant === 'single' ? target : nodeA,
                subscribers,
                window,
                `backplane ${variant} ${subscribers} subs window ${window}`,
              );
              results[variant].push(result);
            }
          }
          const label = `1 → ${subscribers.toLocaleString('en-US')} subs, window ${window}`;
          const row = addRow(
            'backplane',
            label,
            'deliveries/s',
            true,
            { wshub: results.cross.map((r) => r.per_s), ws: results.single.map((r) => r.per_s) },
            {
              comparison: 'wshub = publisher on node A, subscribers on node B via Redis; ws = one wshub node',
              p50_us: {
                crossNode: medianOf(results.cross, 'p50_us'),
                singleNode: medianOf(results.single, 'p50_us'),
              },
              p99_us: {
                crossNode: medianOf(results.cross, 'p99_us'),
                singleNode: medianOf(results.single, 'p99_us'),
              },
            },
          );
          lines.push([
            label,
            fmtStat(row.wshub),
            latencyOf(results.cross),
            fmtStat(row.ws),
            latencyOf(results.single),
            ratioText(row),
          ]);
        }
      } finally {
        await Promise.all(servers.map((server) => server.stop()));
      }
    }
  } finally {
    await redis.stop();
  }
  say(
    `backplane — cross-node fan-out: publisher on node A, subscribers on node B, through redis-server on loopback; baseline: the same on one node (median [min–max] of ${options.runs}; nodes and Redis not pinned)`,
  );
  printTable(['case', 'two nodes', 'p50/p99 µs', 'one node', 'p50/p99 µs', 'ratio'], lines);
}

export const backplaneSection: Section = { name: 'backplane', run };
