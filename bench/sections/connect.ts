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
 * in one run; then, with --workers=2, what --max-connections-per-user adds (the primary counts
 * every user's connections: one IPC round trip per handshake) against the same cluster without
 * the limit. Each row's "wshub" figures are the first configuration, its "ws" figures the second.
 */
async function connectWithAuth(suite: Suite): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'wshub-bench-auth-'));
  const secret = randomBytes(48);
  writeFileSync(join(dir, 'secret'), secret);
  const token = await new SignJWT({ sub: 'bench', rooms: ['*'] })
    .setProtectedHeader({ alg: 'HS256' })
    .setExpirationTime('6h')
    .sign(secret);
  const auth = ['--auth=jwt', `--auth-jwt-secret-file=${join(dir, 'secret')}`];
  // The second runs nothing pinned, as in the workers section: two workers and the primary share the cores.
  const workers = ['--workers=2', ...auth];
  const comparisons: CompareHandshakes[] = [
    {
      label: '64 in parallel, --auth=jwt (HS256) vs no auth',
      shortLabel: '64 in parallel, HS256',
      heading:
        "connection rate with authentication — wshub --auth=jwt, an HS256 token in every upgrade's Authorization header, against wshub without auth",
      names: ['auth on', 'auth off'],
      logNames: ['wshub-echo-auth-on', 'wshub-echo-auth-off'],
      flags: [auth, []],
      tokens: [token, undefined],
      pinned: true,
    },
    {
      label: '64 in parallel, --workers=2 --auth=jwt, --max-connections-per-user vs none',
      shortLabel: '64 in parallel, 2 workers, one user',
      heading:
        "connection rate with a per-user limit over workers — wshub --workers=2 --auth=jwt --max-connections-per-user=1000 (the primary counts the user's connections: an IPC round trip per handshake) against the same without the limit, one token for every connection, nothing pinned",
      names: ['limit', 'no limit'],
      logNames: ['wshub-echo-workers-user-limit', 'wshub-echo-workers-no-limit'],
      flags: [[...workers, '--max-connections-per-user=1000'], workers],
      tokens: [token, token],
      pinned: false,
    },
  ];
  try {
    for (const compared of comparisons) await compareHandshakes(suite, compared);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Two wshub configurations whose handshake rates one row compares. */
interface CompareHandshakes {
  readonly label: string;
  readonly shortLabel: string;
  readonly heading: string;
  readonly names: readonly [string, string];
  readonly logNames: readonly [string, string];
  readonly flags: readonly [readonly string[], readonly string[]];
  readonly tokens: readonly [string | undefined, string | undefined];
  /** The server on its own core (one process); otherwise nothing is pinned. */
  readonly pinned: boolean;
}

/** Two wshub configurations' handshake rates, alternately in one run: one row, "wshub" = the first. */
async function compareHandshakes(suite: Suite, compared: CompareHandshakes): Promise<void> {
  const { options, say, SERVER_CORE, CLIENT_CORE, addRow, commonArgs, printTable, runMeasuringServerCpu } =
    suite;
  const start = (which: 0 | 1) =>
    startBenchServer('wshub', 'echo', {
      core: compared.pinned ? SERVER_CORE : undefined,
      nofile: 4096,
      logName: compared.logNames[which],
      wshubFlags: compared.flags[which],
    });
  const measured: [LoadgenResult[], LoadgenResult[]] = [[], []];
  const cpuUs: [number[], number[]] = [[], []];
  const servers = await Promise.all([start(0), start(1)]);
  try {
    for (let run = 0; run < options.runs; run++) {
      for (const which of run % 2 === 0 ? ([0, 1] as const) : ([1, 0] as const)) {
        const token = compared.tokens[which];
        const args = [
          'connect',
          ...commonArgs(servers[which]),
          '-c',
          '64',
          ...(token === undefined ? [] : ['-A', token]),
        ];
        const client = compared.pinned ? CLIENT_CORE : undefined;
        const { result, cpuUsPerOp } = await runMeasuringServerCpu(servers[which], args, client);
        measured[which].push(result);
        if (cpuUsPerOp !== undefined) cpuUs[which].push(cpuUsPerOp);
      }
    }
  } finally {
    await Promise.all(servers.map((server) => server.stop()));
  }
  const cpu = (which: 0 | 1) => (cpuUs[which].length ? median(cpuUs[which]) : undefined);
  const cpuText = (which: 0 | 1) => {
    const value = cpu(which);
    return value === undefined ? '–' : fmt(value);
  };
  const row = addRow(
    'connect',
    compared.label,
    'connections/s',
    true,
    { wshub: measured[0].map((r) => r.per_s), ws: measured[1].map((r) => r.per_s) },
    {
      compared: `wshub ${compared.flags[0].join(' ')} (the "wshub" figures) against wshub ${compared.flags[1].join(' ') || 'without flags'} (the "ws" figures)`,
      serverCpuUsPerOp: { [compared.names[0]]: cpu(0), [compared.names[1]]: cpu(1) },
    },
  );
  say(`${compared.heading}, alternately (median [min–max] of ${options.runs})`);
  printTable(
    [
      'case',
      ...compared.names,
      'ratio',
      `server CPU µs/op ${compared.names.join(' / ')}`,
      'loadgen CPU (max)',
    ],
    [
      [
        compared.shortLabel,
        fmtStat(row.wshub),
        fmtStat(row.ws),
        ratioText(row),
        `${cpuText(0)} / ${cpuText(1)}`,
        `${cpuOf(measured[0])} / ${cpuOf(measured[1])}`,
      ],
    ],
  );
}

export const connectSection: Section = { name: 'connect', run };
