import { type ServerName, startBenchServer } from '../servers.js';
import { cpuOf, fmtStat, ratioText, type Section, type Suite, usPerOp, withServers } from '../suite.js';

async function run(suite: Suite): Promise<void> {
  const { options, say, SERVER_CORE, measureCase, commonArgs, printTable } = suite;
  const start = (name: ServerName) => startBenchServer(name, 'echo', { core: SERVER_CORE, nofile: 4096 });
  const lines: string[][] = [];
  await withServers([start('wshub'), start('ws')], async (servers) => {
    const { row, results, serverCpuUs } = await measureCase(
      'connect',
      '64 in parallel',
      'connections/s',
      servers,
      (server) => ['connect', ...commonArgs(server), '-c', '64'],
    );
    lines.push([
      row.case,
      fmtStat(row.wshub),
      fmtStat(row.ws),
      ratioText(row),
      usPerOp(serverCpuUs),
      `${cpuOf(results.wshub)} / ${cpuOf(results.ws)}`,
    ]);
  });
  say(
    `connection rate — connect + upgrade + close handshake per second (median [min–max] of ${options.runs})`,
  );
  printTable(
    ['case', 'wshub', 'ws baseline', 'ratio', 'server CPU µs/op wshub / ws', 'loadgen CPU (max)'],
    lines,
  );
}

export const connectSection: Section = { name: 'connect', run };
