import { parseArgs } from 'node:util';
import { boolean, bytes, duration, integer, type Kind, oneOf, text } from '../config/kinds.js';
import { didYouMean } from '../config/suggest.js';
import { acceptUrlArgument, checkWebSocketUrl } from '../config/websocket-url.js';
import { ErrorCode, UsageError } from '../errors.js';

export const BENCH_MODES = ['echo', 'broadcast'] as const;
export type BenchMode = (typeof BENCH_MODES)[number];

/** Bytes every bench message starts with: send time (float64 ms) then a marker, so replies can be timed. */
export const STAMP_BYTES = 12;

export interface BenchOptions {
  readonly action: 'run' | 'help';
  readonly url: string;
  readonly connections: number;
  /** New connections per second, across all workers. */
  readonly connectRate: number;
  readonly connectTimeoutMs: number;
  readonly size: number;
  /** Messages per second per connection; 0 is closed loop (echo: the next is sent when the reply arrives). */
  readonly rate: number;
  readonly mode: BenchMode;
  readonly durationMs: number;
  readonly workers: number;
  /** Exit 1 when errors exceed this; undefined: no budget. */
  readonly maxErrors: number | undefined;
  readonly json: boolean;
  /** Where to write the HTML report ('' for none). */
  readonly report: string;
  readonly insecure: boolean;
}

interface BenchFlag<T> {
  readonly kind: Kind<T>;
  readonly default: T;
  readonly doc: string;
}

const flag = <T>(definition: BenchFlag<T>): BenchFlag<T> => definition;

/** One table: parsing, validation and --help come from it. */
export const BENCH_FLAGS = {
  connections: flag({
    kind: integer(1, 100_000),
    default: 10,
    doc: 'Connections to open and keep open',
  }),
  'connect-rate': flag({
    kind: integer(1, 100_000),
    default: 200,
    doc: 'New connections per second while ramping up (all workers together)',
  }),
  'connect-timeout': flag({
    kind: duration(1, 10 * 60_000),
    default: 5000,
    doc: 'Give up on a connection whose TCP/TLS/WebSocket handshake takes longer',
  }),
  size: flag({
    kind: bytes(STAMP_BYTES, 16 * 1024 * 1024),
    default: 64,
    doc: `Message size (binary; the first ${STAMP_BYTES} bytes carry the send time)`,
  }),
  rate: flag({
    kind: integer(0, 100_000),
    default: 0,
    doc: 'Messages per second per connection; 0 is closed loop (echo mode: send the next when the echo arrives)',
  }),
  mode: flag({
    kind: oneOf(BENCH_MODES),
    default: 'echo' as BenchMode,
    doc: 'echo: every message comes back to its sender; broadcast: every message goes to every connection of the room (needs --rate)',
  }),
  duration: flag({
    kind: duration(100, 24 * 3600_000),
    default: 10_000,
    doc: 'How long to send, ramp-up included',
  }),
  workers: flag({
    kind: integer(0, 64),
    default: 0,
    doc: 'Worker threads generating load (0: one per CPU core, at most one per connection)',
  }),
  'max-errors': flag({
    kind: integer(-1, 1_000_000_000, 'a number of errors from 0 to 1000000000, or -1 for no budget'),
    default: -1,
    doc: 'Exit 1 when failed connections + unexpected closes + lost messages (on connections that stayed open) + send errors exceed this (-1: no budget)',
  }),
  json: flag({ kind: boolean(), default: false, doc: 'Print the final report as one JSON object' }),
  report: flag({
    kind: { ...text({ expected: 'a file name ending in .html', pattern: /\.html?$/i }), hint: '<FILE.html>' },
    default: '',
    doc: 'Also write the report as one self-contained HTML file with charts over time (the same data as --json)',
  }),
  insecure: flag({
    kind: boolean(),
    default: false,
    doc: 'Accept any TLS certificate (wss:// to a self-signed ingress)',
  }),
} as const;

type FlagName = keyof typeof BENCH_FLAGS;
const FLAG_NAMES = Object.keys(BENCH_FLAGS) as FlagName[];

/**
 * Parses `wshub bench URL [flags]` (the arguments after "bench"), validating
 * every value with the same kinds the server's settings use.
 */
export function parseBenchArgs(argv: readonly string[], cpuCount: number): BenchOptions {
  const parseOptions: Record<string, { type: 'string' | 'boolean'; short?: string }> = {
    help: { type: 'boolean', short: 'h' },
  };
  for (const name of FLAG_NAMES) {
    parseOptions[name] = { type: BENCH_FLAGS[name].kind.isBoolean ? 'boolean' : 'string' };
  }
  const { tokens } = parseArgs({
    args: [...argv],
    options: parseOptions,
    strict: false,
    allowPositionals: true,
    tokens: true,
  });
  const raw = new Map<FlagName, { value: unknown; spelled: string }>();
  let url: string | undefined;
  let help = false;
  for (const token of tokens) {
    if (token.kind === 'positional') {
      url = acceptUrlArgument(url, token.value, 'bench');
      continue;
    }
    if (token.kind !== 'option') continue;
    const known = parseOptions[token.name];
    if (known === undefined) {
      const candidates = Object.keys(parseOptions).map((name) => `--${name}`);
      throw new UsageError(
        ErrorCode.UNKNOWN_FLAG,
        `unknown flag ${token.rawName} for wshub bench${didYouMean(`--${token.name}`, candidates)} (see wshub bench --help)`,
      );
    }
    if (token.name === 'help') {
      help = true;
      continue;
    }
    if (known.type === 'string' && token.value === undefined) {
      throw new UsageError(
        ErrorCode.MISSING_VALUE,
        `flag ${token.rawName} needs a value, as in ${token.rawName}=VALUE`,
      );
    }
    const value = known.type === 'boolean' ? (token.inlineValue ? token.value : true) : token.value;
    raw.set(token.name as FlagName, { value, spelled: token.rawName });
  }

  const values: Record<string, unknown> = {};
  for (const name of FLAG_NAMES) {
    const definition = BENCH_FLAGS[name] as BenchFlag<unknown>;
    const given = raw.get(name);
    if (given === undefined) {
      values[name] = definition.default;
      continue;
    }
    const result = definition.kind.schema.safeParse(given.value);
    if (!result.success) {
      throw new UsageError(
        ErrorCode.INVALID_VALUE,
        `invalid value for ${given.spelled}: ${JSON.stringify(given.value)}; expected ${definition.kind.expected}`,
      );
    }
    values[name] = result.data;
  }
  if (help) return { ...toOptions(values, '', cpuCount), action: 'help' };
  if (url === undefined) {
    throw new UsageError(
      ErrorCode.MISSING_VALUE,
      'wshub bench needs the URL to load, as in wshub bench ws://127.0.0.1:3003/ws (see wshub bench --help)',
    );
  }
  checkWebSocketUrl(url, 'bench');
  const options = toOptions(values, url, cpuCount);
  if (options.mode === 'broadcast' && options.rate === 0) {
    throw new UsageError(
      ErrorCode.CONFLICTING_SETTINGS,
      '--mode=broadcast needs --rate (messages per second per connection); closed loop is for echo',
    );
  }
  return options;
}

function toOptions(values: Record<string, unknown>, url: string, cpuCount: number): BenchOptions {
  const connections = values.connections as number;
  const workers = values.workers as number;
  const maxErrors = values['max-errors'] as number;
  return {
    action: 'run',
    url,
    connections,
    connectRate: values['connect-rate'] as number,
    connectTimeoutMs: values['connect-timeout'] as number,
    size: values.size as number,
    rate: values.rate as number,
    mode: values.mode as BenchMode,
    durationMs: values.duration as number,
    workers: Math.min(workers === 0 ? Math.max(1, cpuCount) : workers, connections),
    maxErrors: maxErrors < 0 ? undefined : maxErrors,
    json: values.json as boolean,
    report: values.report as string,
    insecure: values.insecure as boolean,
  };
}

export function benchHelpText(): string {
  const rows: Array<[string, string]> = FLAG_NAMES.map((name) => {
    const definition = BENCH_FLAGS[name] as BenchFlag<unknown>;
    const spelled = definition.kind.isBoolean ? `--${name}` : `--${name}=${definition.kind.hint}`;
    const shown =
      definition.kind.isBoolean || definition.default === ''
        ? ''
        : ` (default ${definition.kind.format(definition.default)})`;
    return [spelled, `${definition.doc}${shown}`];
  });
  rows.push(['-h, --help', 'Show this help and exit']);
  const width = Math.max(...rows.map(([spelled]) => spelled.length)) + 2;
  return [
    'Usage: wshub bench URL [flags]',
    '',
    'A WebSocket load generator. Ramps up to --connections at --connect-rate, sends',
    '--size-byte messages on each for --duration, then prints connections established and',
    'failed (by reason: refused, timeout, HTTP status, ...), messages sent and received,',
    'throughput, latency percentiles (HDR histogram) and the close codes seen. A progress',
    'line is shown when stderr is a terminal.',
    '',
    'Flags:',
    ...rows.map(([spelled, doc]) => `  ${spelled.padEnd(width)}${doc}`),
    '',
    'Exit status: 0 when done within the error budget, 1 when --max-errors is exceeded or',
    'no connection could be established, 2 for a usage error.',
    '',
    'Examples:',
    '  wshub bench ws://127.0.0.1:3003/ws --connections=100 --duration=30s',
    '  wshub bench wss://ingress.example.com/ws --connections=1000 --connect-rate=100 --rate=10 --json',
    '  wshub bench wss://ingress.example.com/ws --connections=200 --rate=5 --duration=2m --report=reload.html',
    '',
  ].join('\n');
}
