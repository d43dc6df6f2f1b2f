import { flag, flagsHelp, parseFlags } from '../config/args.js';
import { boolean, text } from '../config/kinds.js';
import { SETTINGS } from '../config/settings.js';
import { acceptUrlArgument, bearerTokenOf, checkWebSocketUrl } from '../config/websocket-url.js';

/** The server's default address, derived from the settings table so the two cannot disagree. */
export const DEFAULT_URL = `ws://127.0.0.1:${SETTINGS.port.default}/ws`;

export interface ClientOptions {
  readonly action: 'run' | 'help';
  readonly url: string;
  /** Accept any server certificate (self-signed, other host name). */
  readonly insecure: boolean;
  /** PEM CA bundle to trust instead of the system's; '' for the system's. */
  readonly caFile: string;
  /** Open the WebSocket as an HTTP/2 stream (RFC 8441): h2c for ws://, h2 by ALPN for wss://. */
  readonly http2: boolean;
  /** Sent as Authorization: Bearer (--token, --token-file); '' for none. */
  readonly token: string;
}

const FLAGS = {
  insecure: flag({
    kind: boolean(),
    default: false,
    doc: 'Accept any server certificate (self-signed, other host name)',
  }),
  http2: flag({
    kind: boolean(),
    default: false,
    doc: 'Open the WebSocket over HTTP/2 (RFC 8441): h2c with prior knowledge for ws://, h2 by ALPN for wss://; the server needs --http2',
  }),
  'ca-file': flag({
    kind: text({ allowEmpty: true }),
    default: '',
    doc: "Trust the CA certificates in this PEM file instead of the system's",
  }),
  token: flag({
    kind: { ...text({ allowEmpty: true }), hint: '<jwt>' },
    default: '',
    doc: 'Send Authorization: Bearer <jwt> (a server with --auth=jwt); never printed',
  }),
  'token-file': flag({
    kind: { ...text({ allowEmpty: true }), hint: '<path>' },
    default: '',
    doc: 'The same, the token read from a file',
  }),
} as const;

/** Parses `wshub client [flags] [URL]` (the arguments after "client") with the shared parser. */
export function parseClientArgs(argv: readonly string[]): ClientOptions {
  const { values, positionals, help } = parseFlags(argv, FLAGS, 'wshub client', {
    maxPositionals: Number.POSITIVE_INFINITY,
  });
  let url: string | undefined;
  for (const positional of positionals) url = acceptUrlArgument(url, positional, 'client');
  const chosen = url ?? DEFAULT_URL;
  if (!help) checkWebSocketUrl(chosen, 'client');
  return {
    action: help ? 'help' : 'run',
    url: chosen,
    insecure: values.insecure,
    caFile: values['ca-file'],
    http2: values.http2,
    token: help ? '' : bearerTokenOf(values.token, values['token-file'], 'client'),
  };
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
    ...flagsHelp(FLAGS),
    '',
    'Exit status: 0 when the connection ended with close code 1000, 1 when it could not',
    'be opened or ended with any other code, 2 for a usage error.',
    '',
    'Example:',
    `  printf 'hello\\nworld\\n' | wshub client ${DEFAULT_URL}`,
    '',
  ].join('\n');
}
