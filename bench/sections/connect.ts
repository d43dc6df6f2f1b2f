import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SignJWT } from 'jose';
import type { LoadgenResult } from '../loadgen.js';
import { type ServerName, startBenchServer } from '../servers.js';
import {
  cpuOf,
  fmt,
  fmtStat,
  median,
  ratioText,
  type Section,
  type Suite,
  usPerOp,
  withServers,
} from '../suite.js';

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
  await connectWithAuth(suite);
}

/**
 * Issue 15: the handshake rate of wshub with --auth=jwt (an HS256 token in the Authorization
 * header of every upgrade, verified with jose) against the same wshub without auth, alternately
 * in one run. The row's "wshub" figures are auth on, its "ws" figures auth off: the ratio is on / off.
 */
async function connectWithAuth(suite: Suite): Promise<void> {
  const { options, say, SERVER_CORE, CLIENT_CORE, addRow, commonArgs, printTable, runMeasuringServerCpu } =
    suite;
  const dir = mkdtempSync(join(tmpdir(), 'wshub-bench-auth-'));
  const secret = randomBytes(48);
  writeFileSync(join(dir, 'secret'), secret);
  const token = await new SignJWT({ sub: 'bench', rooms: ['*'] })
    .setProtectedHeader({ alg: 'HS256' })
    .setExpirationTime('6h')
    .sign(secret);
  const startWshub = (auth: boolean) =>
    startBenchServer('wshub', 'echo', {
      core: SERVER_CORE,
      nofile: 4096,
      logName: `wshub-echo-auth-${auth ? 'on' : 'off'}`,
      wshubFlags: auth ? ['--auth=jwt', `--auth-jwt-secret-file=${join(dir, 'secret')}`] : [],
    });
  const measured = { on: [] as LoadgenResult[], off: [] as LoadgenResult[] };
  const cpuUs = { on: [] as number[], off: [] as number[] };
  try {
    const [on, off] = await Promise.all([startWshub(true), startWshub(false)]);
    try {
      for (let run = 0; run < options.runs; run++) {
        const order = run % 2 === 0 ? (['on', 'off'] as const) : (['off', 'on'] as const);
        for (const which of order) {
          const server = which === 'on' ? on : off;
          const args = [
            'connect',
            ...commonArgs(server),
            '-c',
            '64',
            ...(which === 'on' ? ['-A', token] : []),
          ];
          const { result, cpuUsPerOp } = await runMeasuringServerCpu(server, args, CLIENT_CORE);
          measured[which].push(result);
          if (cpuUsPerOp !== undefined) cpuUs[which].push(cpuUsPerOp);
        }
      }
    } finally {
      await Promise.all([on.stop(), off.stop()]);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const row = addRow(
    'connect',
    '64 in parallel, --auth=jwt (HS256) vs no auth',
    'connections/s',
    true,
    { wshub: measured.on.map((r) => r.per_s), ws: measured.off.map((r) => r.per_s) },
    {
      compared: 'wshub --auth=jwt (the "wshub" figures) against wshub without auth (the "ws" figures)',
      serverCpuUsPerOp: {
        authOn: cpuUs.on.length ? median(cpuUs.on) : undefined,
        authOff: cpuUs.off.length ? median(cpuUs.off) : undefined,
      },
    },
  );
  say(
    `connection rate with authentication — wshub --auth=jwt, an HS256 token in every upgrade's Authorization header, against wshub without auth, alternately (median [min–max] of ${options.runs})`,
  );
  printTable(
    ['case', 'auth on', 'auth off', 'ratio', 'server CPU µs/op on / off', 'loadgen CPU (max)'],
    [
      [
        '64 in parallel, HS256',
        fmtStat(row.wshub),
        fmtStat(row.ws),
        ratioText(row),
        `${cpuUs.on.length ? fmt(median(cpuUs.on)) : '–'} / ${cpuUs.off.length ? fmt(median(cpuUs.off)) : '–'}`,
        `${cpuOf(measured.on)} / ${cpuOf(measured.off)}`,
      ],
    ],
  );
}

export const connectSection: Section = { name: 'connect', run };
