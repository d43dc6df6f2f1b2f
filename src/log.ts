/**
 * Logging in the seed's format: Go's log package, `YYYY/MM/DD HH:MM:SS message`,
 * local time, one line per event on stdout.
 */
export type Level = 'info' | 'warn' | 'error';
export type Fields = Readonly<Record<string, string | number | boolean | undefined>>;

export interface Logger {
  info(message: string, fields?: Fields): void;
  warn(message: string, fields?: Fields): void;
  error(message: string, fields?: Fields): void;
}

const pad = (n: number): string => (n < 10 ? `0${n}` : String(n));

export function goTimestamp(date: Date): string {
  return (
    `${date.getFullYear()}/${pad(date.getMonth() + 1)}/${pad(date.getDate())} ` +
    `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`
  );
}

export function createTextLogger(
  write: (line: string) => void = (line) => process.stdout.write(line),
): Logger {
  // Formatting a timestamp costs more than the rest of a line; do it once a second.
  let cachedSecond = -1;
  let cachedStamp = '';
  const emit = (message: string): void => {
    const now = Date.now();
    const second = Math.floor(now / 1000);
    if (second !== cachedSecond) {
      cachedSecond = second;
      cachedStamp = goTimestamp(new Date(now));
    }
    write(`${cachedStamp} ${message}\n`);
  };
  return { info: emit, warn: emit, error: emit };
}

export const silentLogger: Logger = { info() {}, warn() {}, error() {} };

/**
 * Logs at most `limit` lines per `intervalMs` for each key (a bounded reason,
 * never a client-chosen value), so a flood of bad clients cannot flood the log.
 * What was held back is reported, with its count, once the window has passed.
 */
export class RateLimitedLog {
  private readonly windows = new Map<string, { start: number; count: number; suppressed: number }>();

  constructor(
    private readonly logger: Logger,
    private readonly limit = 10,
    private readonly intervalMs = 10_000,
    private readonly now: () => number = Date.now,
  ) {}

  log(key: string, level: Level, message: string, fields?: Fields): void {
    const now = this.now();
    let window = this.windows.get(key);
    if (window === undefined || now - window.start >= this.intervalMs) {
      if (window !== undefined && window.suppressed > 0) {
        this.logger.warn(
          `${window.suppressed} more ${key} messages suppressed in the last ${this.intervalMs / 1000}s`,
        );
      }
      window = { start: now, count: 0, suppressed: 0 };
      this.windows.set(key, window);
    }
    if (window.count < this.limit) {
      window.count++;
      this.logger[level](message, fields);
    } else {
      window.suppressed++;
    }
  }
}
