import { parseArgs } from 'node:util';
import { ErrorCode, UsageError } from '../errors.js';
import type { Kind } from './kinds.js';
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
  const parseOptions: Record<string, { type: 'string' | 'boolean'; short?: string }> = {
    help: { type: 'boolean', short: 'h' },
  };
  for (const name of names) {
    parseOptions[name] = { type: (flags[name] as FlagSpec<unknown>).kind.isBoolean ? 'boolean' : 'string' };
    // Boolean flags have a --no- form, as the server's do.
    if ((flags[name] as FlagSpec<unknown>).kind.isBoolean) parseOptions[`no-${name}`] = { type: 'boolean' };
  }
  const { tokens } = parseArgs({
    args: [...argv],
    options: parseOptions,
    strict: false,
    allowPositionals: true,
    tokens: true,
  });
  const raw = new Map<string, { value: unknown; spelled: string }>();
  const positionals: string[] = [];
  let help = false;
  for (const token of tokens) {
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
    if (token.kind !== 'option') continue;
    const known = parseOptions[token.name];
    if (known === undefined) {
      const candidates = Object.keys(parseOptions).map((name) => `--${name}`);
      throw new UsageError(
        ErrorCode.UNKNOWN_FLAG,
        `unknown flag ${token.rawName} for ${command}${didYouMean(`--${token.name}`, candidates)} (see ${command} --help)`,
      );
    }
    if (token.name === 'help') {
      help = true;
      continue;
    }
    const emptyAllowed =
      token.inlineValue && (flags[token.name] as FlagSpec<unknown> | undefined)?.emptyAllowed;
    if (known.type === 'string' && (token.value === undefined || (token.value === '' && !emptyAllowed))) {
      throw new UsageError(
        ErrorCode.MISSING_VALUE,
        `flag ${token.rawName} needs a value, as in ${token.rawName}=VALUE`,
      );
    }
    if (known.type === 'boolean' && token.inlineValue) {
      throw new UsageError(ErrorCode.INVALID_VALUE, `flag ${token.rawName} takes no value`);
    }
    if (token.name.startsWith('no-') && !(token.name in flags)) {
      raw.set(token.name.slice(3), { value: false, spelled: token.rawName });
    } else {
      raw.set(token.name, { value: known.type === 'boolean' ? true : token.value, spelled: token.rawName });
    }
  }
  const values: Record<string, unknown> = {};
  for (const name of names) {
    const definition = flags[name] as FlagSpec<unknown>;
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
    const shown = spec.kind.format(spec.default);
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
