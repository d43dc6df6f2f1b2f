import { accessSync, constants } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { ErrorCode, UsageError } from '../errors.js';
import type { Kind } from './kinds.js';
import { redactUrlPassword } from './redis-url.js';
import { didYouMean } from './suggest.js';

/**
 * The one argument parser of wshub's subcommands (`wshub bench`, `wshub client`) and development
 * scripts (`npm run fuzz`, `npm run soak`, `npm run bench`), issue 14. Flags are declared once in a
 * table (kind, default, doc); values are validated with the same kinds as the server's settings,
 * and every mistake is a `UsageError` with a `WSHUB_*` code (exit 2), one line, naming the flag.
 */
export interface FlagSpec<T> {
  readonly kind: Kind<T>;
  readonly default: T;
  readonly doc: string;
  /** `--name=` is a value (the empty string) rather than a missing one: `wshub token --rooms=` names the default room. */
  readonly emptyAllowed?: true;
}

export const flag = <T>(definition: FlagSpec<T>): FlagSpec<T> => definition;

/** Any flag of a table (method syntax: a FlagSpec<number> is one, whatever its value type). */
interface AnyFlag {
  readonly kind: {
    readonly hint: string;
    readonly expected: string;
    readonly isBoolean?: true;
    readonly schema: Kind<unknown>['schema'];
    format(value: never): string | number | boolean | readonly string[];
  };
  readonly default: unknown;
  readonly doc: string;
  readonly emptyAllowed?: true;
}
export type FlagTable = Readonly<Record<string, AnyFlag>>;
export type FlagValues<F extends FlagTable> = {
  -readonly [K in keyof F]: F[K] extends FlagSpec<infer T> ? T : never;
};

export interface ParsedFlags<F extends FlagTable> {
  readonly values: FlagValues<F>;
  /** The flags given on the command line (the others have their defaults). */
  readonly given: ReadonlySet<keyof F & string>;
  readonly positionals: readonly string[];
  /** -h or --help was given (values are still validated). */
  readonly help: boolean;
}

/** A flag as the command-line scanner sees it: takes a value or not; a negatable boolean also has a --no- form. */
export interface ArgvFlag {
  readonly type: 'string' | 'boolean';
  readonly short?: string;
  readonly negatable?: boolean;
}

export type ArgvToken =
  | { readonly kind: 'positional'; readonly value: string }
  | {
      readonly kind: 'flag';
      /** The declared name (for --no-x, x). */
      readonly name: string;
      readonly type: 'string' | 'boolean';
      /** Written as --no-<name>. */
      readonly negated: boolean;
      /** As written: "--port", "-h", "--no-color". */
      readonly spelled: string;
      readonly value: string | undefined;
      /** Written --name=value (a boolean written so is the caller's to accept or refuse). */
      readonly inline: boolean;
    };

/**
 * The command-line scanner of the server's flags (config/load.ts) and of every table parsed by
 * `parseFlags`: splits `argv` into positionals and declared flags, and refuses (UsageError) an
 * unknown flag, with the closest known one, and a flag that takes a value written without one.
 * `command` names a subcommand or script in messages ("unknown flag --x for npm run fuzz").
 */
export function scanArgv(
  argv: readonly string[],
  flags: Readonly<Record<string, ArgvFlag>>,
  command?: string,
): ArgvToken[] {
  const options: Record<string, { type: 'string' | 'boolean'; short?: string }> = {};
  for (const [name, flag] of Object.entries(flags)) {
    options[name] = flag.short === undefined ? { type: flag.type } : { type: flag.type, short: flag.short };
    if (flag.negatable) options[`no-${name}`] = { type: 'boolean' };
  }
  const { tokens } = parseArgs({
    args: [...argv],
    options,
    strict: false,
    allowPositionals: true,
    tokens: true,
  });
  const scanned: ArgvToken[] = [];
  for (const token of tokens) {
    if (token.kind === 'positional') {
      scanned.push({ kind: 'positional', value: token.value });
      continue;
    }
    if (token.kind !== 'option') continue;
    if (!Object.hasOwn(options, token.name)) {
      const candidates = Object.keys(options).map((name) => `--${name}`);
      throw new UsageError(
        ErrorCode.UNKNOWN_FLAG,
        `unknown flag ${token.rawName}${command === undefined ? '' : ` for ${command}`}${didYouMean(`--${token.name}`, candidates)} (see ${command === undefined ? '' : `${command} `}--help)`,
      );
    }
    const negated = !Object.hasOwn(flags, token.name);
    const name = negated ? token.name.slice(3) : token.name;
    const type = negated ? 'boolean' : (flags[name] as ArgvFlag).type;
    if (type === 'string' && token.value === undefined) {
      throw new UsageError(
        ErrorCode.MISSING_VALUE,
        `flag ${token.rawName} needs a value, as in ${token.rawName}=VALUE`,
      );
    }
    scanned.push({
      kind: 'flag',
      name,
      type,
      negated,
      spelled: token.rawName,
      value: token.value,
      inline: token.inlineValue === true,
    });
  }
  return scanned;
}

/** A value as shown in an error: JSON-quoted, a URL's password redacted, at most 80 characters. */
export function quoteValue(value: unknown): string {
  // A URL's password (e.g. --backplane=redis://user:pass@host) never reaches stderr or logs.
  const text = typeof value === 'string' ? redactUrlPassword(value) : value;
  const shown = typeof text === 'string' ? JSON.stringify(text) : (JSON.stringify(text) ?? String(text));
  return shown.length > 80 ? `${shown.slice(0, 77)}...` : shown;
}

/**
 * `value` checked against `kind` (flags, environment, YAML alike): the parsed value, or the
 * UsageError "invalid value for <what>: <value>; expected <what the kind allows>". `where`
 * prefixes a file position ("wshub.yaml:3: ").
 */
export function checkedValue<T>(kind: Kind<T>, value: unknown, what: string, where = ''): T {
  const result = kind.schema.safeParse(value);
  if (!result.success) {
    throw new UsageError(
      ErrorCode.INVALID_VALUE,
      `${where}invalid value for ${what}: ${quoteValue(value)}; expected ${kind.expected}`,
    );
  }
  return result.data;
}

/**
 * Parses `argv` against `flags`. `command` names the command in messages (as in
 * "unknown flag --x for npm run fuzz"); `maxPositionals` is how many bare arguments it takes.
 */
export function parseFlags<F extends FlagTable>(
  argv: readonly string[],
  flags: F,
  command: string,
  options: { readonly maxPositionals?: number } = {},
): ParsedFlags<F> {
  const names = Object.keys(flags);
  const declared: Record<string, ArgvFlag> = { help: { type: 'boolean', short: 'h' } };
  for (const name of names) {
    // Boolean flags have a --no- form, as the server's do.
    const isBoolean = (flags[name] as FlagSpec<unknown>).kind.isBoolean === true;
    declared[name] = { type: isBoolean ? 'boolean' : 'string', negatable: isBoolean };
  }
  const raw = new Map<string, { value: unknown; spelled: string }>();
  const positionals: string[] = [];
  let help = false;
  for (const token of scanArgv(argv, declared, command)) {
    if (token.kind === 'positional') {
      if (positionals.length >= (options.maxPositionals ?? 0)) {
        throw new UsageError(
          ErrorCode.UNEXPECTED_ARGUMENT,
          `unexpected argument ${JSON.stringify(token.value)} for ${command} (flags are written --name=value; see ${command} --help)`,
        );
      }
      positionals.push(token.value);
      continue;
    }
    if (token.name === 'help' && !token.negated) {
      help = true;
      continue;
    }
    // `wshub token --rooms=` names the default room: an empty value only where the table allows it.
    const emptyAllowed = token.inline && (flags[token.name] as FlagSpec<unknown>).emptyAllowed === true;
    if (token.type === 'string' && token.value === '' && !emptyAllowed) {
      throw new UsageError(
        ErrorCode.MISSING_VALUE,
        `flag ${token.spelled} needs a value, as in ${token.spelled}=VALUE`,
      );
    }
    if (token.type === 'boolean' && token.inline) {
      throw new UsageError(ErrorCode.INVALID_VALUE, `flag ${token.spelled} takes no value`);
    }
    raw.set(token.name, {
      value: token.type === 'boolean' ? !token.negated : token.value,
      spelled: token.spelled,
    });
  }
  const values: Record<string, unknown> = {};
  for (const name of names) {
    const definition = flags[name] as FlagSpec<unknown>;
    const given = raw.get(name);
    values[name] =
      given === undefined ? definition.default : checkedValue(definition.kind, given.value, given.spelled);
  }
  return {
    values: values as FlagValues<F>,
    given: new Set(raw.keys()) as ReadonlySet<keyof F & string>,
    positionals,
    help,
  };
}

/** The "Flags:" lines of a --help text, aligned, with defaults. */
export function flagsHelp(flags: FlagTable): string[] {
  const rows = Object.entries(flags).map(([name, any]) => {
    const spec = any as FlagSpec<unknown>;
    const left = spec.kind.isBoolean ? `--${name}` : `--${name}=${spec.kind.hint}`;
    const formatted = spec.kind.format(spec.default);
    // A list's default is shown comma-separated; an empty one (like an empty string) is not shown.
    const shown = Array.isArray(formatted) ? formatted.join(',') : String(formatted);
    const fallback = spec.kind.isBoolean || shown === '' ? '' : ` (default ${shown})`;
    return [left, `${spec.doc}${fallback}`] as const;
  });
  rows.push(['-h, --help', 'Show this help and exit']);
  const width = Math.max(...rows.map(([left]) => left.length));
  return rows.map(([left, doc]) => `  ${left.padEnd(width)}   ${doc}`);
}

/**
 * Runs a script's main function: a `UsageError` is one line on stderr (`<name>: message [CODE]`,
 * the format of `wshub`) and exit 2; the function's number is the exit code.
 */
export async function runScript(name: string, main: () => Promise<number>): Promise<void> {
  try {
    process.exitCode = await main();
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    process.stderr.write(`${name}: ${error.message} [${error.code}]\n`);
    process.exit(error.exitCode);
  }
}

/**
 * A `--report=FILE` to be written when the work is done: its directory must exist and be
 * writable, found out before a run of minutes, not after it (`wshub bench`, `npm run bench`).
 */
export function checkReportWritable(file: string): void {
  try {
    accessSync(dirname(resolve(file)), constants.W_OK);
  } catch (error) {
    throw new UsageError(
      ErrorCode.REPORT_FILE_UNWRITABLE,
      `cannot write --report=${file}: ${(error as NodeJS.ErrnoException).code ?? String(error)} (its directory must exist and be writable)`,
    );
  }
}
