import { readFileSync } from 'node:fs';
import { ErrorCode, UsageError } from '../errors.js';

/** Checks a ws:// or wss:// URL given to a subcommand (`wshub client`, `wshub bench`); exit 2 otherwise. */
export function checkWebSocketUrl(url: string, command: string): void {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new UsageError(
      ErrorCode.INVALID_URL,
      `invalid URL ${JSON.stringify(url)} for wshub ${command}; expected ws://host:port/path or wss://host:port/path`,
    );
  }
  if (parsed.protocol !== 'ws:' && parsed.protocol !== 'wss:') {
    throw new UsageError(
      ErrorCode.INVALID_URL,
      `invalid URL ${JSON.stringify(url)} for wshub ${command}: scheme must be ws:// or wss://, not ${parsed.protocol}//`,
    );
  }
}

/** A subcommand's one positional argument, its URL: a second one is a usage error. */
export function acceptUrlArgument(current: string | undefined, value: string, command: string): string {
  if (current !== undefined) {
    throw new UsageError(
      ErrorCode.UNEXPECTED_ARGUMENT,
      `wshub ${command} takes one URL; unexpected ${JSON.stringify(value)} (see wshub ${command} --help)`,
    );
  }
  return value;
}

/**
 * The token a subcommand sends as `Authorization: Bearer` (issue 15): --token=JWT or
 * --token-file=PATH (trailing whitespace ignored); '' for none.
 */
export function bearerTokenOf(token: string, tokenFile: string, command: string): string {
  if (token !== '' && tokenFile !== '') {
    throw new UsageError(
      ErrorCode.CONFLICTING_SETTINGS,
      `wshub ${command} takes --token or --token-file, not both`,
    );
  }
  if (tokenFile === '') return token;
  let text: string;
  try {
    text = readFileSync(tokenFile, 'utf8');
  } catch (error) {
    throw new UsageError(
      ErrorCode.CONFIG_FILE_UNREADABLE,
      `cannot read --token-file=${tokenFile}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`,
    );
  }
  const trimmed = text.trim();
  if (trimmed === '' || /\s/.test(trimmed)) {
    throw new UsageError(ErrorCode.INVALID_VALUE, `--token-file=${tokenFile} must hold one token`);
  }
  return trimmed;
}

/** The headers that carry a subcommand's token (issue 15); none without one. */
export function bearerHeaders(token: string): Record<string, string> {
  return token === '' ? {} : { Authorization: `Bearer ${token}` };
}

/** A URL as it may be printed: an ?access_token= value replaced (a token never reaches a terminal log). */
export function redactAccessToken(url: string): string {
  return url.replace(/([?&]access_token=)[^&#]*/gi, '$1<redacted>');
}
