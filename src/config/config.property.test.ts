import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { stringify } from 'yaml';
import { UsageError } from '../errors.js';
import { formatBytes, parseBytes } from './bytes.js';
import { formatDuration, parseDuration } from './duration.js';
import { loadConfig } from './load.js';
import { envName, SETTINGS, type Setting } from './settings.js';

const RUNS = { numRuns: 300 };
const DAY = 24 * 3600 * 1000;
const KiB = 1024;

/** Reads only the files given; anything else is ENOENT. */
const files = (contents: Record<string, string>) => ({
  readFile: (path: string) => {
    const text = contents[path];
    if (text === undefined) throw Object.assign(new Error('ENOENT'), { code: 'ENOENT' });
    return text;
  },
});

describe('durations (property)', () => {
  it('format then parse gives back every whole number of milliseconds', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 30 * DAY }), (ms) => parseDuration(formatDuration(ms)) === ms),
      RUNS,
    );
  });

  it('a sum of h, m, s and ms parts parses to its total', () => {
    fc.assert(
      fc.property(
        fc.nat(100),
        fc.nat(59),
        fc.nat(59),
        fc.nat(999),
        (h, m, s, ms) => parseDuration(`${h}h${m}m${s}s${ms}ms`) === ((h * 60 + m) * 60 + s) * 1000 + ms,
      ),
      RUNS,
    );
  });

  it('any text parses to a non-negative integer or is refused, never throws', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 20 }), (text) => {
        const ms = parseDuration(text);
        return ms === undefined || (Number.isInteger(ms) && ms >= 0);
      }),
      RUNS,
    );
  });
});

describe('sizes (property)', () => {
  it('format then parse gives back every size', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 2 ** 40 }), (bytes) => parseBytes(formatBytes(bytes)) === bytes),
      RUNS,
    );
  });

  it('binary and decimal units multiply exactly', () => {
    fc.assert(
      fc.property(
        fc.nat(1_000_000),
        fc.constantFrom(['KiB', KiB], ['MiB', KiB ** 2], ['KB', 1000], ['MB', 1e6], ['B', 1]),
        (n, [unit, factor]) => {
          return (
            parseBytes(`${n}${unit}`) === n * (factor as number) &&
            parseBytes(`${n} ${String(unit).toLowerCase()}`) === n * (factor as number)
          );
        },
      ),
      RUNS,
    );
  });

  it('any text parses to a non-negative safe integer or is refused, never throws', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 20 }), (text) => {
        const bytes = parseBytes(text);
        return bytes === undefined || (Number.isSafeInteger(bytes) && bytes >= 0);
      }),
      RUNS,
    );
  });
});

describe('configuration sources (property)', () => {
  const port = fc.integer({ min: 1, max: 65535 }).filter((p) => p !== 9100);
  const size = fc.integer({ min: 1, max: 256 * KiB ** 2 });

  it('flags beat environment beat the YAML file beat defaults, per setting', () => {
    fc.assert(
      fc.property(
        fc.option(port),
        fc.option(port),
        fc.option(port),
        fc.option(size),
        fc.option(size),
        fc.option(size),
        (flagPort, envPort, filePort, flagSize, envSize, fileSize) => {
          const argv: string[] = [];
          const env: Record<string, string> = { WSHUB_CONFIG_FILE: 'c.yaml' };
          const yaml: Record<string, Record<string, unknown>> = { server: {}, limits: {} };
          if (flagPort !== null) argv.push(`--port=${flagPort}`);
          if (envPort !== null) env.WSHUB_PORT = String(envPort);
          if (filePort !== null) (yaml.server as Record<string, unknown>).port = filePort;
          if (flagSize !== null) argv.push(`--max-message-size=${flagSize}`);
          if (envSize !== null) env.WSHUB_MAX_MESSAGE_SIZE = formatBytes(envSize);
          if (fileSize !== null)
            (yaml.limits as Record<string, unknown>).maxMessageSize = formatBytes(fileSize);
          const { config } = loadConfig(argv, env, files({ 'c.yaml': stringify(yaml) }));
          assert.equal(config.port, flagPort ?? envPort ?? filePort ?? SETTINGS.port.default);
          assert.equal(
            config.maxMessageSize,
            flagSize ?? envSize ?? fileSize ?? SETTINGS.maxMessageSize.default,
          );
        },
      ),
      RUNS,
    );
  });

  it('any value for a numeric flag is accepted in range or refused with a UsageError, never anything else', () => {
    const flags = ['port', 'max-message-size', 'max-fragments', 'shutdown-timeout', 'compression-threshold'];
    fc.assert(
      fc.property(
        fc.constantFrom(...flags),
        fc.oneof(fc.string({ maxLength: 12 }), fc.integer().map(String)),
        (flag, value) => {
          try {
            loadConfig([`--${flag}=${value}`, '--metrics-port=0'], {});
          } catch (error) {
            assert.ok(error instanceof UsageError, `${flag}=${JSON.stringify(value)} threw ${String(error)}`);
          }
        },
      ),
      RUNS,
    );
  });

  it('YAML keys match in any case and with _ or - between words', () => {
    const spell = (word: string, seed: number[]): string =>
      [...word]
        .map((char, i) => {
          const roll = seed[i % seed.length] as number;
          const cased = roll % 2 === 0 ? char.toUpperCase() : char.toLowerCase();
          return /[A-Z]/.test(char) && roll % 3 === 0
            ? `_${cased}`
            : /[A-Z]/.test(char) && roll % 3 === 1
              ? `-${cased}`
              : cased;
        })
        .join('');
    fc.assert(
      fc.property(
        fc.array(fc.nat(5), { minLength: 1, maxLength: 8 }),
        fc.integer({ min: 1, max: 4096 }),
        (seed, kib) => {
          const yaml = `${spell('limits', seed)}:\n  ${spell('maxMessageSize', seed)}: ${kib}KiB\n`;
          const { config } = loadConfig(['--config-file=c.yaml'], {}, files({ 'c.yaml': yaml }));
          assert.equal(config.maxMessageSize, kib * KiB, yaml);
        },
      ),
      RUNS,
    );
  });

  it('every setting default survives being written out and read back (flag, env and YAML)', () => {
    for (const [name, entry] of Object.entries(SETTINGS)) {
      const setting = entry as Setting<unknown>;
      const written = setting.kind.format(setting.default);
      const text = Array.isArray(written) ? written.join(',') : String(written);
      const viaFlag = setting.kind.isBoolean ? [`--${setting.flag}=${text}`] : [`--${setting.flag}=${text}`];
      const viaYaml = stringify(
        setting.key.split('.').reduceRight<unknown>((value, key) => ({ [key]: value }), written),
      );
      for (const [argv, env, source] of [
        [viaFlag, {}, {}],
        [[], { [envName(setting)]: text }, {}],
        [['--config-file=c.yaml'], {}, { 'c.yaml': viaYaml }],
      ] as const) {
        const { config } = loadConfig(argv, env, files(source));
        assert.deepEqual(
          config[name as keyof typeof config],
          setting.default,
          `${name} via ${argv.join(' ')} ${JSON.stringify(env)}`,
        );
      }
    }
  });
});
