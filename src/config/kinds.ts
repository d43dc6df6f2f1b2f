import { z } from 'zod';
import { formatBytes, parseBytes } from './bytes.js';
import { formatDuration, parseDuration } from './duration.js';

/**
 * A kind of setting value. The same schema validates a string from a flag or an
 * environment variable and a native value from YAML, so every source obeys one rule.
 */
export interface Kind<T> {
  /** Placeholder shown in --help, e.g. "<port>". */
  readonly hint: string;
  /** What is allowed, in words; printed in every error about this setting. */
  readonly expected: string;
  readonly schema: z.ZodType<T>;
  /** The value as written in YAML by --print-config and shown as a default in --help. */
  readonly format: (value: T) => string | number | boolean | readonly string[];
  /** Boolean flags take no value on the command line and have a --no- form. */
  readonly isBoolean?: true;
}

const integerText = /^-?\d+$/;

function toNumberIfInteger(value: unknown): unknown {
  return typeof value === 'string' && integerText.test(value.trim()) ? Number(value.trim()) : value;
}

export function integer(
  min: number,
  max: number,
  expected = `an integer from ${min} to ${max}`,
): Kind<number> {
  return {
    hint: '<n>',
    expected,
    schema: z.preprocess(toNumberIfInteger, z.number().int().min(min).max(max)),
    format: (value) => value,
  };
}

/**
 * A positive count, or 'auto' for a value the application derives from other
 * settings (e.g. fragment limits derived from --max-message-size).
 */
export function countOrAuto(min: number, max: number, autoMeans: string): Kind<number | 'auto'> {
  const toCount = (value: unknown): unknown =>
    typeof value === 'string' && value.trim().toLowerCase() === 'auto' ? 'auto' : toNumberIfInteger(value);
  return {
    hint: '<n|auto>',
    expected: `auto (${autoMeans}) or an integer from ${min} to ${max}`,
    schema: z.preprocess(toCount, z.union([z.literal('auto'), z.number().int().min(min).max(max)])),
    format: (value) => value,
  };
}

/** A number with a fraction allowed, as in --seconds=0.5 (development scripts). */
export function decimal(min: number, max: number): Kind<number> {
  const toNumber = (value: unknown): unknown =>
    typeof value === 'string' && /^\d+(\.\d+)?$/.test(value.trim()) ? Number(value.trim()) : value;
  return {
    hint: '<x>',
    expected: `a number from ${min} to ${max}`,
    schema: z.preprocess(toNumber, z.number().min(min).max(max)),
    format: (value) => value,
  };
}

export function port(): Kind<number> {
  return { ...integer(0, 65535, 'an integer from 0 to 65535 (0 picks a free port)'), hint: '<port>' };
}

export function duration(minMs: number, maxMs: number): Kind<number> {
  const toMs = (value: unknown): unknown => {
    if (typeof value === 'string') return parseDuration(value) ?? value;
    // A bare number other than 0 is ambiguous (seconds? milliseconds?), as in Go.
    if (typeof value === 'number' && value !== 0) return String(value);
    return value;
  };
  return {
    hint: '<duration>',
    expected: `a duration from ${formatDuration(minMs)} to ${formatDuration(maxMs)} with a unit, such as 250ms, 5s, 1m`,
    schema: z.preprocess(toMs, z.number().int().min(minMs).max(maxMs)),
    format: formatDuration,
  };
}

export function bytes(min: number, max: number): Kind<number> {
  const toBytes = (value: unknown): unknown =>
    typeof value === 'string' ? (parseBytes(value) ?? value) : value;
  return {
    hint: '<size>',
    expected: `a size from ${formatBytes(min)} to ${formatBytes(max)}, such as 65536, 64KiB, 1MiB`,
    schema: z.preprocess(toBytes, z.number().int().min(min).max(max)),
    format: formatBytes,
  };
}

const TRUE_WORDS = new Set(['true', '1', 'yes', 'on']);
const FALSE_WORDS = new Set(['false', '0', 'no', 'off']);

export function boolean(): Kind<boolean> {
  const toBoolean = (value: unknown): unknown => {
    if (typeof value !== 'string') return value;
    const word = value.trim().toLowerCase();
    if (TRUE_WORDS.has(word)) return true;
    if (FALSE_WORDS.has(word)) return false;
    return value;
  };
  return {
    hint: '',
    expected: 'true or false',
    schema: z.preprocess(toBoolean, z.boolean()),
    format: (value) => value,
    isBoolean: true,
  };
}

export function text(
  options: { allowEmpty?: boolean; expected?: string; pattern?: RegExp } = {},
): Kind<string> {
  let schema = z.string();
  if (!options.allowEmpty) schema = schema.min(1);
  if (options.pattern) schema = schema.regex(options.pattern);
  return {
    hint: '<text>',
    expected: options.expected ?? (options.allowEmpty ? 'a string' : 'a non-empty string'),
    schema,
    format: (value) => value,
  };
}

export function oneOf<const T extends readonly [string, ...string[]]>(values: T): Kind<T[number]> {
  return {
    hint: `<${values.join('|')}>`,
    expected: `one of ${values.join(', ')}`,
    schema: z.enum(values) as unknown as z.ZodType<T[number]>,
    format: (value) => value,
  };
}

/** A list written as "a,b,c" on the command line or in the environment, or as a YAML sequence. */
export function list(item: { pattern?: RegExp; expected?: string } = {}): Kind<readonly string[]> {
  const split = (value: unknown): unknown =>
    typeof value === 'string'
      ? value
          .split(',')
          .map((part) => part.trim())
          .filter((part) => part !== '')
      : value;
  const element = item.pattern ? z.string().regex(item.pattern) : z.string().min(1);
  return {
    hint: '<a,b,...>',
    expected: item.expected ?? 'a comma-separated list (or a YAML list) of strings',
    schema: z.preprocess(split, z.array(element).readonly()),
    format: (value) => value,
  };
}

/** A host name or IP address to bind to; the empty string means all interfaces. */
export function host(allowEmpty = false): Kind<string> {
  return {
    ...text({
      allowEmpty,
      pattern: /^[A-Za-z0-9.:\-[\]%_]*$/,
      expected: allowEmpty
        ? 'an IP address or host name, or empty for all interfaces'
        : 'an IP address or host name such as 0.0.0.0, 127.0.0.1 or ::',
    }),
    hint: '<host>',
  };
}
