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
