import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isUsageError } from '../errors.js';
import { flag, flagsHelp, parseFlags, scanArgv } from './args.js';
import { boolean, duration, integer, list, oneOf } from './kinds.js';

const FLAGS = {
  count: flag({ kind: integer(1, 10), default: 3, doc: 'How many' }),
  wait: flag({ kind: duration(1, 60_000), default: 1000, doc: 'How long' }),
  mode: flag({ kind: oneOf(['a', 'b']), default: 'a' as 'a' | 'b', doc: 'Which' }),
  loud: flag({ kind: boolean(), default: false, doc: 'Say more' }),
} as const;

function usageCode(run: () => unknown): string {
  try {
    run();
  } catch (error) {
    assert.ok(isUsageError(error), String(error));
    return `${error.code} ${error.message}`;
  }
  assert.fail('expected a usage error');
}

describe('parseFlags: the one argument parser of subcommands and scripts', () => {
  it('defaults, values through the settings kinds, booleans and their --no- form, positionals', () => {
    const parsed = parseFlags(['--count=7', '--wait=2s', '--loud', 'x'], FLAGS, 'tool', {
      maxPositionals: 1,
    });
    assert.deepEqual(parsed.values, { count: 7, wait: 2000, mode: 'a', loud: true });
    assert.deepEqual([...parsed.given].sort(), ['count', 'loud', 'wait']);
    assert.deepEqual(parsed.positionals, ['x']);
    assert.equal(parsed.help, false);
    assert.equal(parseFlags(['--loud', '--no-loud'], FLAGS, 'tool').values.loud, false);
    assert.equal(parseFlags(['-h'], FLAGS, 'tool').help, true);
  });

  it('every mistake is one WSHUB_* usage error naming the flag and the command', () => {
    assert.match(
      usageCode(() => parseFlags(['--cuont=2'], FLAGS, 'tool')),
      /^WSHUB_UNKNOWN_FLAG unknown flag --cuont for tool; did you mean --count\?/,
    );
    assert.match(
      usageCode(() => parseFlags(['--count=11'], FLAGS, 'tool')),
      /^WSHUB_INVALID_VALUE invalid value for --count: "11"; expected an integer from 1 to 10/,
    );
    assert.match(
      usageCode(() => parseFlags(['--wait'], FLAGS, 'tool')),
      /^WSHUB_MISSING_VALUE flag --wait needs a value/,
    );
    assert.match(
      usageCode(() => parseFlags(['--loud=yes'], FLAGS, 'tool')),
      /^WSHUB_INVALID_VALUE flag --loud takes no value/,
    );
    assert.match(
      usageCode(() => parseFlags(['stray'], FLAGS, 'tool')),
      /^WSHUB_UNEXPECTED_ARGUMENT unexpected argument "stray" for tool/,
    );
    assert.match(
      usageCode(() => parseFlags(['--mode=c'], FLAGS, 'tool')),
      /expected one of a, b/,
    );
  });

  it('a name only an object prototype has is an unknown flag, not a silently accepted one', () => {
    for (const name of ['--toString', '--constructor', '--__proto__', '--no-constructor']) {
      assert.match(
        usageCode(() => parseFlags([name], FLAGS, 'tool')),
        /^WSHUB_UNKNOWN_FLAG unknown flag /,
        name,
      );
    }
  });

  it('a value in an error is quoted with a URL password redacted and long values cut', () => {
    const message = usageCode(() => parseFlags(['--count=redis://user:s3cret@host:6379'], FLAGS, 'tool'));
    assert.match(message, /invalid value for --count: "redis:\/\/user:\*\*\*@host:6379"/);
    assert.doesNotMatch(message, /s3cret/);
    const long = usageCode(() => parseFlags([`--count=${'9'.repeat(200)}`], FLAGS, 'tool'));
    assert.match(long, /: "9{76}\.\.\.; expected/);
  });

  it('scanArgv: what the server flags (config/load.ts) and parseFlags share', () => {
    const tokens = scanArgv(['--port=1', '--color', '--no-color', 'x', '-h'], {
      port: { type: 'string' },
      color: { type: 'boolean', negatable: true },
      help: { type: 'boolean', short: 'h' },
    });
    assert.deepEqual(
      tokens.map((token) =>
        token.kind === 'positional'
          ? `positional ${token.value}`
          : `${token.name} ${token.negated} ${token.value}`,
      ),
      [
        'port false 1',
        'color false undefined',
        'color true undefined',
        'positional x',
        'help false undefined',
      ],
    );
    assert.match(
      usageCode(() => scanArgv(['--prot=1'], { port: { type: 'string' } })),
      /^WSHUB_UNKNOWN_FLAG unknown flag --prot; did you mean --port\? \(see --help\)$/,
    );
    assert.match(
      usageCode(() => scanArgv(['--port'], { port: { type: 'string' } })),
      /^WSHUB_MISSING_VALUE/,
    );
  });

  it('--help shows a list flag’s default comma-separated, and none when it is empty', () => {
    const lines = flagsHelp({
      some: flag({ kind: list(), default: ['a', 'b'] as readonly string[], doc: 'Some' }),
      none: flag({ kind: list(), default: [] as readonly string[], doc: 'None' }),
    });
    assert.match(lines[0] ?? '', /Some \(default a,b\)$/);
    assert.match(lines[1] ?? '', /None$/);
  });

  it('--help lines come from the same table', () => {
    const lines = flagsHelp(FLAGS);
    assert.equal(lines.length, 5);
    assert.match(lines[0] ?? '', /^ {2}--count=<n> +How many \(default 3\)$/);
    assert.match(lines[1] ?? '', /--wait=<duration> +How long \(default 1s\)$/);
    assert.match(lines[3] ?? '', /^ {2}--loud +Say more$/);
    assert.match(lines[4] ?? '', /-h, --help/);
  });
});
