import { startBenchServer, wshubHasBroadcast } from '../servers.js';
import {
  cpuOf,
  fmtStat,
  latencyOf,
  ratioText,
  type Section,
  type Suite,
  usPerOp,
  withServers,
} from '../suite.js';

async function run(suite: Suite): Promise<void> {
  const { options, warnings, say, SERVER_CORE, measureCase, commonArgs, printTable } = suite;
  const hasBroadcast = wshubHasBroadcast();
  if (!hasBroadcast) {
    warnings.push('broadcast: this wshub build has no --mode=broadcast; only the naive ws loop was measured');
  }
  // Compression on: wshub --compression (a broadcast compressed once per window) against the naive
  // loop with ws's perMessageDeflate: true (compressed once per receiver), JSON-like 2 KiB messages.
  const cases = [
    ...(options.quick ? [100, 1000] : [100, 1000, 10_000]).map((subscribers) => ({
      subscribers,
      deflate: false,
    })),
    { subscribers: 1000, deflate: true },
  ];
  const lines: string[][] = [];
  for (const { subscribers, deflate } of cases) {
    const nofile = subscribers + 1024;
    const mode = deflate ? 'broadcast-deflate' : 'broadcast';
    const size = deflate ? 2048 : 20;
    const starts = [startBenchServer('ws', mode, { core: SERVER_CORE, nofile })];
    if (hasBroadcast) {
      starts.push(
        startBenchServer('wshub', mode, {
          core: SERVER_CORE,
          nofile,
          wshubFlags: ['--mode=broadcast', ...(deflate ? ['--compression'] : [])],
        }),
      );
    }
    await withServers(starts, async (servers) => {
      for (const window of [1, 16]) {
        const label = `1 → ${subscribers.toLocaleString('en-US')} subs, window ${window}${deflate ? ', 2 KiB deflate' : ''}`;
        const { row, results, serverCpuUs } = await measureCase(
          'broadcast',
          label,
          'deliveries/s',
          servers,
          (server) => [
            'fanout',
            ...commonArgs(server),
            '-n',
            String(subscribers),
            '-s',
            String(size),
            '-W',
            String(window),
            '-z',
            deflate ? '1' : '0',
          ],
        );
        for (const name of ['wshub', 'ws'] as const) {
          // The publisher negotiates too: subscribers + 1 connections.
          if (deflate && results[name].some((r) => r.deflate_conns !== subscribers + 1)) {
            warnings.push(
              `broadcast ${label} (${name}): permessage-deflate was not negotiated on every connection`,
            );
          }
        }
        lines.push([
          label,
          fmtStat(row.wshub),
          latencyOf(results.wshub),
          fmtStat(row.ws),
          latencyOf(results.ws),
          ratioText(row),
          usPerOp(serverCpuUs),
          `${cpuOf(results.wshub)} / ${cpuOf(results.ws)}`,
        ]);
      }
    });
  }
  say(
    `broadcast — 1 publisher, 20 B binary messages ("2 KiB deflate": JSON-like, permessage-deflate negotiated by every client), deliveries/s and publish-to-receive latency p50/p99 in µs; server CPU µs per delivery (median [min–max] of ${options.runs})`,
  );
  printTable(
    [
      'case',
      'wshub',
      'wshub p50/p99',
      'naive ws loop',
      'ws p50/p99',
      'ratio',
      'server CPU µs/op wshub / ws',
      'loadgen CPU (max)',
    ],
    lines,
  );
}

export const broadcastSection: Section = { name: 'broadcast', run };
