import { parseArgs } from 'node:util';
import { SETTINGS } from '../config/settings.js';
import { didYouMean } from '../config/suggest.js';
import { acceptUrlArgument, checkWebSocketUrl } from '../config/websocket-url.js';
import { ErrorCode, UsageError } from '../errors.js';

/** The server's default address, derived from the settings table so the two cannot disagree. */
export const DEFAULT_URL = `ws://127.0.0.1:${SETTINGS.port.default}/ws`;

export interface ClientOptions {
  readonly action: 'run' | 'help';
  readonly url: string;
  /** Accept any server certificate (self-signed, other host name). */
  readonly insecure: boolean;
  /** PEM CA bundle to trust instead of the system's; '' for the system's. */
  readonly caFile: string;
}

const FLAGS = {
  insecure: { type: 'boolean' },
  'ca-file': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

/** Parses `wshub client [flags] [URL]` (the arguments after "client"). */
export function parseClientArgs(argv: readonly string[]): ClientOptions {
  const { tokens } = parseArgs({
    args: [...argv],
    options: FLAGS,
    strict: false,
    allowPositionals: true,
    tokens: true,
  });
  let url: string | undefined;
  let insecure = false;
  let caFile = '';
  let help = false;
  for (const token of tokens) {
    if (token.kind === 'positional') {
      url = acceptUrlArgument(url, token.value, 'client');
      continue;
    }
    if (token.kind !== 'option') continue;
    if (!(token.name in FLAGS)) {
      const known = Object.keys(FLAGS).map((flag) => `--${flag}`);
      throw new UsageError(
        ErrorCode.UNKNOWN_FLAG,
        `unknown flag ${token.rawName} for wshub client${didYouMean(`--${token.name}`, known)} (see wshub client --help)`,
      );
    }
    if (token.name === 'ca-file') {
      if (token.value === undefined || token.value === '') {
        throw new UsageError(
          ErrorCode.MISSING_VALUE,
          `flag ${token.rawName} needs a value, as in --ca-file=ca.pem`,
        );
      }
      caFile = token.value;
    } else if (token.inlineValue) {
      throw new UsageError(ErrorCode.INVALID_VALUE, `flag ${token.rawName} takes no value`);
    } else if (token.name === 'insecure') {
      insecure = true;
    } else {
      help = true;
    }
  }
  const chosen = url ?? DEFAULT_URL;
  if (!help) checkWebSocketUrl(chosen, 'client');
  return { action: help ? 'help' : 'run', url: chosen, insecure, caFile };
}

export function clientHelpText(): string {
  return [
    'Usage: wshub client [flags] [URL]',
    '',
    'An example WebSocket client. Every line read from stdin is sent as a text message;',
    'every message received is printed on stdout: text as it is, binary as',
    '"[binary N bytes, base64] ...". Connection events and the close code go to stderr.',
    'When stdin ends (Ctrl-D, or the end of a pipe) it closes with 1000 and exits after',
    'the close handshake; Ctrl-C does the same, a second Ctrl-C exits at once.',
    '',
    `URL defaults to ${DEFAULT_URL} (the server's defaults); use wss:// for TLS.`,
    '',
    'Flags:',
    '  --insecure         Accept any server certificate (self-signed, other host name)',
    "  --ca-file=<path>   Trust the CA certificates in this PEM file instead of the system's",
    '  -h, --help         Show this help and exit',
    '',
    'Exit status: 0 when the connection ended with close code 1000, 1 when it could not',
    'be opened or ended with any other code, 2 for a usage error.',
    '',
    'Example:',
    `  printf 'hello\\nworld\\n' | wshub client ${DEFAULT_URL}`,
    '',
  ].join('\n');
}
