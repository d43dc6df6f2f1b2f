/**
 * The catalogue of errors wshub reports to a user. Each has a stable `code`
 * (tests and scripts match on it, never on the message text) and the process
 * exit code it leads to. A user mistake is always exit code 2 and one line.
 */
export const ErrorCode = {
  UNKNOWN_FLAG: 'WSHUB_UNKNOWN_FLAG',
  MISSING_VALUE: 'WSHUB_MISSING_VALUE',
  UNEXPECTED_ARGUMENT: 'WSHUB_UNEXPECTED_ARGUMENT',
  INVALID_VALUE: 'WSHUB_INVALID_VALUE',
  UNKNOWN_KEY: 'WSHUB_UNKNOWN_KEY',
  UNKNOWN_ENV: 'WSHUB_UNKNOWN_ENV',
  CONFIG_FILE_UNREADABLE: 'WSHUB_CONFIG_FILE_UNREADABLE',
  CONFIG_FILE_SYNTAX: 'WSHUB_CONFIG_FILE_SYNTAX',
  CONFLICTING_SETTINGS: 'WSHUB_CONFLICTING_SETTINGS',
  LISTEN_FAILED: 'WSHUB_LISTEN_FAILED',
  MISSING_SETTING: 'WSHUB_MISSING_SETTING',
  TLS_FILE_NOT_FOUND: 'WSHUB_TLS_FILE_NOT_FOUND',
  TLS_FILE_UNREADABLE: 'WSHUB_TLS_FILE_UNREADABLE',
  TLS_INVALID_PEM: 'WSHUB_TLS_INVALID_PEM',
  TLS_KEY_MISMATCH: 'WSHUB_TLS_KEY_MISMATCH',
  INVALID_URL: 'WSHUB_INVALID_URL',
  REPORT_FILE_UNWRITABLE: 'WSHUB_REPORT_FILE_UNWRITABLE',
  /** The installed ws lacks a shape wshub cannot serve without (transport/ws-adapter.ts): reinstall with npm ci. */
  WS_INCOMPATIBLE: 'WSHUB_WS_INCOMPATIBLE',
  AUTH_KEY_FILE_UNREADABLE: 'WSHUB_AUTH_KEY_FILE_UNREADABLE',
  AUTH_INVALID_KEY: 'WSHUB_AUTH_INVALID_KEY',
} as const;

export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/** An error caused by the user's input (flags, environment, files, ports): printed as one line, exit 2. */
export class UsageError extends Error {
  readonly code: ErrorCode;
  readonly exitCode = 2;

  constructor(code: ErrorCode, message: string) {
    super(message);
    this.name = 'UsageError';
    this.code = code;
  }
}

export function isUsageError(error: unknown): error is UsageError {
  return error instanceof UsageError;
}
