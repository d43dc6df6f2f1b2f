import { buildCeilingServer } from '../loadgen.js';
import { type ServerName, startBenchServer } from '../servers.js';
import {
  cpuOf,
  fmt,
  fmtStat,
  LOADGEN_SATURATED_PCT,
  median,
  ratioText,
  type Section,
  type Suite,
  usPerOp,
  withServers,
} from '../suite.js';

async function run(suite: Suite): Promise<void> {
  const { options, warnings, say, SERVER_CORE, measureCase, commonArgs, printTable } = suite;
  const cases = [
    { conns: 100, size: 20, deflate: false },
    { conns: 100, size: 16 * 1024, deflate: false },
    { conns: 1000, size: 20, deflate: false },
    { conns: 1000, size: 16 * 1024, deflate: false },
    { conns: 100, size: 20, deflate: true },
    { conns: 100, size: 16 * 1024, deflate: true },
  ];
  // The C reference server: what this machine and this client allow any echo server (no compression).
  const ceilingBinary = buildCeilingServer();
  const lines: string[][] = [];
  const saturatedCeiling: string[] = [];
  for (const deflate of [false, true]) {
    // Compression on: wshub --compression (its defaults), the baseline with ws's perMessageDeflate: true.
    const start = (name: ServerName) =>
      startBenchServer(name, deflate ? 'echo-deflate' : 'echo', {
        core: SERVER_CORE,
        nofile: 4096,
        wshubFlags: deflate ? ['--compression'] : [],
        ceilingBinary,
      });
    const starts = [start('wshub'), start('ws')];
    if (!deflate) starts.push(start('ceiling'));
    await withServers(starts, async (servers) => {
      for (const { conns, size } of cases.filter((c) => c.deflate === deflate)) {
        const label = `${conns} conns × ${size >= 1024 ? `${size / 1024} KiB` : `${size} B`}${deflate ? ', deflate' : ''}`;
        const { row, results, serverCpuUs } = await measureCase(
          'echo',
          label,
          'msgs/s',
          servers,
          (server) => [
            'echo',
            ...commonArgs(server),
            '-n',
            String(conns),
            '-s',
            String(size),
            '-z',
            deflate ? '1' : '0',
          ],
        );
        for (const name of ['wshub', 'ws'] as const) {
          if (deflate && results[name].some((r) => r.deflate_conns !== conns)) {
            warnings.push(
              `echo ${label} (${name}): permessage-deflate was not negotiated on every connection`,
            );
          }
        }
        const ceilingSaturated = results.ceiling.some((r) => r.client_cpu_pct > LOADGEN_SATURATED_PCT);
        if (ceilingSaturated) saturatedCeiling.push(label);
        lines.push([
          label,
          fmtStat(row.wshub),
          fmtStat(row.ws),
          ratioText(row),
          row.ceiling ? `${fmtStat(row.ceiling)}${ceilingSaturated ? ' *' : ''}` : 'n/a',
          row.ceilingRatio === undefined ? 'n/a' : `${row.ceilingRatio.toFixed(2)}×`,
          serverCpuUs.ceiling.length && serverCpuUs.ws.length
            ? `${(median(serverCpuUs.ws) / median(serverCpuUs.ceiling)).toFixed(2)}×`
            : 'n/a',
          `${usPerOp(serverCpuUs)}${serverCpuUs.ceiling.length ? ` / ${fmt(median(serverCpuUs.ceiling))}` : ''}`,
          `${cpuOf(results.wshub)} / ${cpuOf(results.ws)}${results.ceiling.length ? ` / ${cpuOf(results.ceiling)}` : ''}`,
        ]);
      }
    });
  }
  say(
    `echo — msgs/s, one message in flight per connection, binary; "deflate": permessage-deflate negotiated, messages ≥ 1 KiB compressed by the server (median [min–max] of ${options.runs})`,
  );
  printTable(
    [
      'case',
      'wshub',
      'ws baseline',
      'ratio',
      'C reference',
      'C / ws',
      'C / ws per CPU',
      'server CPU µs/op wshub / ws / C',
      'loadgen CPU (max) wshub / ws / C',
    ],
    lines,
  );
  say(
    'C reference: bench/ceiling-server.c, a one-thread epoll echo server in C (no compression), same pinning and client —',
  );
  say(
    'what the kernel and this machine allow any server; "C / ws" is the most any Node server could gain over ws.',
  );
  say(
    '"C / ws per CPU": ws\'s server CPU µs/op divided by the C server\'s — messages per core-second, robust under load.',
  );
  if (saturatedCeiling.length) {
    say(
      `* load generator above ${LOADGEN_SATURATED_PCT}% of a core against the C reference (${saturatedCeiling.join('; ')}): there the client is the limit, the true ceiling is higher`,
    );
  }
  say();
}

export const echoSection: Section = { name: 'echo', run };
