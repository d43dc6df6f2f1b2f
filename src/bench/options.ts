import { type FlagValues, flag, flagsHelp, parseFlags } from '../config/args.js';
import { boolean, bytes, duration, integer, oneOf, text } from '../config/kinds.js';
import { acceptUrlArgument, bearerTokenOf, checkWebSocketUrl } from '../config/websocket-url.js';
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
  /** WebSockets as streams of HTTP/2 connections (RFC 8441). */
  readonly http2: boolean;
  /** With http2: WebSocket streams opened on one HTTP/2 connection before the next is opened. */
  readonly streamsPerConnection: number;
  /** Sent as Authorization: Bearer on every connection (--token, --token-file); '' for none. */
  readonly token: string;
}

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
  http2: flag({
    kind: boolean(),
    default: false,
    doc: 'Open the WebSockets as streams of HTTP/2 connections (RFC 8441): h2c for ws://, h2 by ALPN for wss://',
  }),
  'streams-per-connection': flag({
    kind: integer(1, 10_000),
    default: 100,
    doc: "With --http2: WebSocket streams sharing one HTTP/2 connection (keep it at or below the server's --http2-max-streams)",
  }),
  token: flag({
    kind: { ...text({ allowEmpty: true }), hint: '<jwt>' },
    default: '',
    doc: 'Send Authorization: Bearer <jwt> on every connection (a server with --auth=jwt); never printed',
  }),
  'token-file': flag({
    kind: { ...text({ allowEmpty: true }), hint: '<path>' },
    default: '',
    doc: 'The same, the token read from a file',
  }),
} as const;

/**
 * Parses `wshub bench URL [flags]` (the arguments after "bench") with the shared parser,
 * validating every value with the same kinds the server's settings use.
 */
export function parseBenchArgs(argv: readonly string[], cpuCount: number): BenchOptions {
  const { values, positionals, help } = parseFlags(argv, BENCH_FLAGS, 'wshub bench', {
    maxPositionals: Number.POSITIVE_INFINITY,
  });
  let url: string | undefined;
  for (const positional of positionals) url = acceptUrlArgument(url, positional, 'bench');
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

function toOptions(values: FlagValues<typeof BENCH_FLAGS>, url: string, cpuCount: number): BenchOptions {
  const connections = values.connections;
  const workers = values.workers;
  const maxErrors = values['max-errors'];
  return {
    action: 'run',
    url,
    connections,
    connectRate: values['connect-rate'],
    connectTimeoutMs: values['connect-timeout'],
    size: values.size,
    rate: values.rate,
    mode: values.mode,
    durationMs: values.duration,
    workers: Math.min(workers === 0 ? Math.max(1, cpuCount) : workers, connections),
    maxErrors: maxErrors < 0 ? undefined : maxErrors,
    json: values.json,
    report: values.report,
    insecure: values.insecure,
    http2: values.http2,
    streamsPerConnection: values['streams-per-connection'],
    token: url === '' ? '' : bearerTokenOf(values.token, values['token-file'], 'bench'),
  };
}

export function benchHelpText(): string {
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
    ...flagsHelp(BENCH_FLAGS),
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
