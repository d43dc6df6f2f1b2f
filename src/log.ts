import { performance } from 'node:perf_hooks';

/**
 * Logging. The text format is the seed's (Go's log package): `YYYY/MM/DD HH:MM:SS message`,
 * local time, one line per event on stdout, fields not shown (the message already
 * names the peer). The JSON format (issue 8) is one object per line with time
 * (ISO 8601, UTC), level, msg and the event's fields, for log pipelines.
 */
export const LOG_FORMATS = ['text', 'json'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];
export const LOG_LEVELS = ['info', 'warn', 'error'] as const;
export type Level = (typeof LOG_LEVELS)[number];

/**
 * Structured context of a log line. Conventional names, so every line about a
 * connection can be joined on them: remote_addr, conn_id, room, close_code, reason.
 */
export type Fields = Readonly<Record<string, string | number | boolean | undefined>>;

export interface Logger {
  info(message: string, fields?: Fields): void;
  warn(message: string, fields?: Fields): void;
  error(message: string, fields?: Fields): void;
}

export interface LoggerOptions {
  readonly format?: LogFormat;
  /** Lines below this level are not formatted at all: their method is a no-op. */
  readonly level?: Level;
  readonly write?: (line: string) => void;
  readonly now?: () => number;
}

const pad = (n: number): string => (n < 10 ? `0${n}` : String(n));

export function goTimestamp(date: Date): string {
  return (
    `${date.getFullYear()}/${pad(date.getMonth() + 1)}/${pad(date.getDate())} ` +
    `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`
  );
}

/** Where batched log text goes: process.stdout in production, a fake in tests. */
export interface LogSink {
  write(text: string): void;
}

/** Past this many characters a batch is written at once, so a burst cannot hold much memory. */
export const MAX_BATCH_CHARS = 64 * 1024;
/** Batches are written at most this often; a line waits at most this long. */
export const MIN_BATCH_INTERVAL_MS = 5;

/**
 * Writes log lines in batches. stdout to a file or a pipe is synchronous in Node on Linux, and
 * one write per line was the largest cost wshub adds to a connect and close (issue 5,
 * connection rate: two lines per connection). A line is written at the end of the event-loop
 * turn that logged it (setImmediate runs after the turn's I/O callbacks), together with every
 * other line of that turn; when the previous batch went out less than MIN_BATCH_INTERVAL_MS
 * ago, the batch waits that long, so under a flood of connections there are at most 200
 * writes a second however small the turns are, and no line waits longer. Order is kept. `flush()`
 * writes what is pending at once: the process's 'exit' handler calls it, so process.exit()
 * (shutdown, a second signal, a usage error) and an uncaught exception lose nothing.
 */
export class BatchedLogWriter {
  /**
   * Largest write in characters, cut at line ends, when other processes write to the same pipe
   * (--workers): POSIX keeps a pipe write of at most PIPE_BUF (4096) bytes in one piece, and
   * 1365 UTF-16 code units are at most 4095 bytes of UTF-8. Unbounded otherwise.
   */
  maxWriteChars = Number.POSITIVE_INFINITY;
  private pending = '';
  private scheduled = false;
  private lastFlushAt = Number.NEGATIVE_INFINITY;
  /** One timer, re-armed with refresh(): no timer object per batch. */
  private timer: NodeJS.Timeout | undefined;
  /** After the final flush on exit no later turn comes: lines are written at once. */
  private direct = false;

  constructor(
    private readonly sink: LogSink,
    private readonly now: () => number = performance.now.bind(performance),
  ) {}

  readonly write = (line: string): void => {
    if (this.direct) {
      this.sink.write(line);
      return;
    }
    this.pending += line;
    if (this.pending.length >= MAX_BATCH_CHARS) {
      this.flush();
    } else if (!this.scheduled) {
      this.scheduled = true;
      if (this.now() - this.lastFlushAt >= MIN_BATCH_INTERVAL_MS) setImmediate(this.flushScheduled);
      else if (this.timer === undefined) {
        this.timer = setTimeout(this.flushScheduled, MIN_BATCH_INTERVAL_MS).unref();
      } else this.timer.refresh();
    }
  };

  /** Writes the pending lines now. */
  readonly flush = (): void => {
    if (this.pending === '') return;
    let text = this.pending;
    this.pending = '';
    this.lastFlushAt = this.now();
    while (text.length > this.maxWriteChars) {
      const cut = text.lastIndexOf('\n', this.maxWriteChars - 1);
      const end = cut === -1 ? text.indexOf('\n') : cut;
      if (end === -1 || end === text.length - 1) break;
      this.sink.write(text.slice(0, end + 1));
      text = text.slice(end + 1);
    }
    this.sink.write(text);
  };

  /** Writes the pending lines, and every later one at once (the event loop will not turn again). */
  readonly flushAndWriteDirectly = (): void => {
    this.direct = true;
    this.flush();
  };

  private readonly flushScheduled = (): void => {
    this.scheduled = false;
    this.flush();
  };
}

// A log reader that goes away (`wshub | head`, a log shipper restarting) must not take the
// WebSocket server down with it: stdout write errors (EPIPE) end logging, not the process.
let stdoutBroken = false;
function onStdoutError(): void {
  stdoutBroken = true;
}

const stdoutSink: LogSink = {
  write(text) {
    if (!stdoutBroken) process.stdout.write(text);
  },
};

let stdoutWriter: BatchedLogWriter | undefined;

function batchedStdout(): BatchedLogWriter {
  if (stdoutWriter === undefined) {
    stdoutWriter = new BatchedLogWriter(stdoutSink);
    process.stdout.on('error', onStdoutError);
    // 'exit' runs on process.exit() and after an uncaught exception has been printed.
    process.on('exit', stdoutWriter.flushAndWriteDirectly);
  }
  return stdoutWriter;
}

/** Called when other processes (the workers of --workers) share this stdout: every write stays whole. */
export function shareStdoutWithOtherProcesses(): void {
  batchedStdout().maxWriteChars = SHARED_PIPE_WRITE_CHARS;
}

/** PIPE_BUF (4096 bytes) / 3 bytes per UTF-16 code unit at most. */
export const SHARED_PIPE_WRITE_CHARS = 1365;

const writeStdout = (line: string): void => {
  if (!stdoutBroken) batchedStdout().write(line);
};

function noop(): void {}

export function createLogger(options: LoggerOptions = {}): Logger {
  const write = options.write ?? writeStdout;
  const now = options.now ?? Date.now;
  const format = options.format ?? 'text';
  const emitterFor = (level: Level): ((message: string, fields?: Fields) => void) =>
    format === 'json' ? jsonEmitter(level, write, now) : textEmitter(write, now);
  const threshold = LOG_LEVELS.indexOf(options.level ?? 'info');
  const enabled = (level: Level): boolean => LOG_LEVELS.indexOf(level) >= threshold;
  return {
    info: enabled('info') ? emitterFor('info') : noop,
    warn: enabled('warn') ? emitterFor('warn') : noop,
    error: enabled('error') ? emitterFor('error') : noop,
  };
}

/** The seed's text format; kept for callers that need exactly that. */
export function createTextLogger(write: (line: string) => void = writeStdout): Logger {
  return createLogger({ format: 'text', write });
}

function textEmitter(write: (line: string) => void, now: () => number) {
  // Formatting a timestamp costs more than the rest of a line; do it once a second.
  let cachedSecond = -1;
  let cachedStamp = '';
  return function emitText(message: string): void {
    const time = now();
    const second = Math.floor(time / 1000);
    if (second !== cachedSecond) {
      cachedSecond = second;
      cachedStamp = goTimestamp(new Date(time));
    }
    write(`${cachedStamp} ${message}\n`);
  };
}

function jsonEmitter(level: Level, write: (line: string) => void, now: () => number) {
  let cachedMs = -1;
  let cachedHead = '';
  const levelPart = `","level":"${level}","msg":`;
  return function emitJson(message: string, fields?: Fields): void {
    const time = now();
    if (time !== cachedMs) {
      cachedMs = time;
      cachedHead = `{"time":"${new Date(time).toISOString()}${levelPart}`;
    }
    let line = cachedHead + jsonString(message);
    if (fields !== undefined) {
      for (const key in fields) {
        const value = fields[key];
        if (value === undefined) continue;
        line += `,${jsonString(key)}:${typeof value === 'string' ? jsonString(value) : jsonScalar(value)}`;
      }
    }
    write(`${line}}\n`);
  };
}

/** Printable ASCII without '"' or '\\' needs no escaping; checking is several times cheaper than JSON.stringify. */
const NEEDS_NO_ESCAPE = /^[\x20\x21\x23-\x5b\x5d-\x7e]*$/;

function jsonString(text: string): string {
  return NEEDS_NO_ESCAPE.test(text) ? `"${text}"` : JSON.stringify(text);
}

function jsonScalar(value: number | boolean): string {
  return typeof value === 'number' && !Number.isFinite(value) ? 'null' : String(value);
}

export const silentLogger: Logger = { info: noop, warn: noop, error: noop };

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
          { reason: key, suppressed: window.suppressed },
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
