import { readFileSync } from 'node:fs';
import { isMap, isScalar, LineCounter, type Node, parseDocument } from 'yaml';
import { ErrorCode, UsageError } from '../errors.js';
import { type ArgvFlag, checkedValue, quoteValue, scanArgv } from './args.js';
import { type Config, envName, META_FLAGS, SETTINGS, type Setting, type SettingName } from './settings.js';
import { didYouMean } from './suggest.js';

/** Where a value came from, so an error can point at the exact flag, variable or line. */
type Source =
  | { readonly kind: 'flag'; readonly flag: string }
  | { readonly kind: 'env'; readonly name: string }
  | { readonly kind: 'file'; readonly file: string; readonly line: number; readonly key: string };

interface Sourced {
  readonly value: unknown;
  readonly source: Source;
}

/** What the process is asked to do; when several are asked, the first of this list wins. */
const ACTIONS = ['help', 'version', 'print', 'check', 'run'] as const;
export type Action = (typeof ACTIONS)[number];
/** Flags that choose an action rather than set a value (--help and --version also have short forms). */
const ACTION_FLAGS: Readonly<Record<string, Action>> = {
  help: 'help',
  version: 'version',
  'print-config': 'print',
  'check-config': 'check',
};
const firstAction = (a: Action, b: Action): Action => (ACTIONS.indexOf(a) <= ACTIONS.indexOf(b) ? a : b);

export interface LoadedConfig {
  readonly action: Action;
  readonly config: Config;
  readonly configFile: string | undefined;
}

export interface LoadOptions {
  readonly readFile?: (path: string) => string;
}

const SETTING_NAMES = Object.keys(SETTINGS) as SettingName[];
const settingOf = (name: SettingName): Setting<unknown> => SETTINGS[name] as Setting<unknown>;
const FLAG_TO_NAME = new Map(SETTING_NAMES.map((name) => [settingOf(name).flag, name]));
const ENV_TO_NAME = new Map(SETTING_NAMES.map((name) => [envName(settingOf(name)), name]));
const META_ENV = new Set<string>(Object.values(META_FLAGS).map((meta) => meta.env));

/** "certFile", "cert_file" and "cert-file" name the same YAML key. */
const normalizeSegment = (segment: string): string => segment.toLowerCase().replace(/[_-]/g, '');
const normalizeKey = (key: string): string => key.split('.').map(normalizeSegment).join('.');
const KEY_TO_NAME = new Map(SETTING_NAMES.map((name) => [normalizeKey(settingOf(name).key), name]));
const SECTIONS = new Set(
  SETTING_NAMES.flatMap((name) => {
    const segments = normalizeKey(settingOf(name).key).split('.');
    return segments.slice(1).map((_, i) => segments.slice(0, i + 1).join('.'));
  }),
);

function describe(source: Source): string {
  switch (source.kind) {
    case 'flag':
      return `--${source.flag}`;
    case 'env':
      return source.name;
    case 'file':
      return `${source.key} (${source.file}:${source.line})`;
  }
}

/**
 * Reads flags, then environment, then the YAML file, over the defaults
 * (precedence: flags > environment > file > defaults), validates every value
 * against its setting's kind and returns one frozen Config. Never reads
 * process.argv or process.env itself: the caller passes them in.
 */
export function loadConfig(
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
  options: LoadOptions = {},
): LoadedConfig {
  const readFile = options.readFile ?? ((path: string) => readFileSync(path, 'utf8'));
  const { flags, action, configFileFlag } = readFlags(argv);
  const fromEnv = readEnv(env);
  const configFile = configFileFlag ?? env[META_FLAGS.configFile.env];
  const fromFile =
    configFile === undefined ? new Map<SettingName, Sourced>() : readYamlFile(configFile, readFile);

  const values: Record<string, unknown> = {};
  for (const name of SETTING_NAMES) {
    const setting = settingOf(name);
    const raw = flags.get(name) ?? fromEnv.get(name) ?? fromFile.get(name);
    if (raw === undefined) {
      values[name] = setting.default;
      continue;
    }
    const where = raw.source.kind === 'file' ? `${raw.source.file}:${raw.source.line}: ` : '';
    const what = raw.source.kind === 'file' ? raw.source.key : describe(raw.source);
    values[name] = checkedValue(setting.kind, raw.value, what, where);
  }
  const config = Object.freeze(values) as Config;
  checkConsistency(config, (name) => flags.get(name) ?? fromEnv.get(name) ?? fromFile.get(name));
  return { action, config, configFile };
}

function checkConsistency(config: Config, sourceOf: (name: SettingName) => Sourced | undefined): void {
  const nameFor = (name: SettingName): string => {
    const raw = sourceOf(name);
    return raw ? describe(raw.source) : `--${settingOf(name).flag}`;
  };
  if (config.metricsEnabled && config.port !== 0 && config.port === config.metricsPort) {
    throw new UsageError(
      ErrorCode.CONFLICTING_SETTINGS,
      `${nameFor('port')} and ${nameFor('metricsPort')} are both ${config.port}; the WebSocket and metrics servers need different ports`,
    );
  }
  // A broadcast-only setting in echo mode would be silently ignored: say so instead.
  if (config.broadcastExcludeSender && config.mode !== 'broadcast') {
    throw new UsageError(
      ErrorCode.CONFLICTING_SETTINGS,
      `${nameFor('broadcastExcludeSender')} only applies in broadcast mode, but ${nameFor('mode')} is ${config.mode}; set it to broadcast or remove the other setting`,
    );
  }
  if (config.publishToken !== '' && config.mode !== 'broadcast') {
    throw new UsageError(
      ErrorCode.CONFLICTING_SETTINGS,
      `${nameFor('publishToken')} enables the publish API, which delivers to rooms in broadcast mode, but ${nameFor('mode')} is ${config.mode}; set it to broadcast or remove the token`,
    );
  }
  if (config.tlsEnabled) {
    for (const name of ['tlsCertFile', 'tlsKeyFile'] as const) {
      if (config[name] !== '') continue;
      const setting = settingOf(name);
      throw new UsageError(
        ErrorCode.MISSING_SETTING,
        `${nameFor('tlsEnabled')} turns TLS on, but ${setting.key} is not set; set it to a PEM file with --${setting.flag}=PATH, ${envName(setting)} or ${setting.key} in the config file`,
      );
    }
  }
  if (config.historySize > 0 && config.mode !== 'broadcast') {
    throw new UsageError(
      ErrorCode.CONFLICTING_SETTINGS,
      `${nameFor('historySize')} keeps the messages of rooms, which exist in broadcast mode, but ${nameFor('mode')} is ${config.mode}; set it to broadcast or remove the other setting`,
    );
  }
  if (config.historySize > 0 && config.workers !== 1 && config.backplane === undefined) {
    throw new UsageError(
      ErrorCode.CONFLICTING_SETTINGS,
      `${nameFor('historySize')} with ${nameFor('workers')} needs --backplane=redis://…: positions must be the same in every worker, so the history lives in Redis`,
    );
  }
  checkAuth(config, nameFor);
  if (config.backplane !== undefined && config.mode !== 'broadcast') {
    throw new UsageError(
      ErrorCode.CONFLICTING_SETTINGS,
      `${nameFor('backplane')} only works in broadcast mode (${nameFor('mode')} is echo): echo mode answers each client itself and never uses a backplane`,
    );
  }
}

interface Flags {
  readonly flags: Map<SettingName, Sourced>;
  readonly action: Action;
  readonly configFileFlag: string | undefined;
}

function readFlags(argv: readonly string[]): Flags {
  const declared: Record<string, ArgvFlag> = {
    help: { type: 'boolean', short: 'h' },
    version: { type: 'boolean', short: 'v' },
    'print-config': { type: 'boolean' },
    'check-config': { type: 'boolean' },
    [META_FLAGS.configFile.flag]: { type: 'string' },
  };
  for (const name of SETTING_NAMES) {
    const setting = settingOf(name);
    declared[setting.flag] = {
      type: setting.kind.isBoolean ? 'boolean' : 'string',
      negatable: setting.kind.isBoolean,
    };
  }

  const flags = new Map<SettingName, Sourced>();
  let action: Action = 'run';
  let configFileFlag: string | undefined;
  for (const token of scanArgv(argv, declared)) {
    if (token.kind === 'positional') {
      throw new UsageError(
        ErrorCode.UNEXPECTED_ARGUMENT,
        `unexpected argument ${quoteValue(token.value)}; flags look like --port=8080 (see --help)`,
      );
    }
    const spelled = token.spelled;
    const chosen = Object.hasOwn(ACTION_FLAGS, token.name) ? ACTION_FLAGS[token.name] : undefined;
    if (chosen !== undefined) {
      if (token.inline) throw new UsageError(ErrorCode.INVALID_VALUE, `flag ${spelled} takes no value`);
      action = firstAction(action, chosen);
    } else if (token.name === META_FLAGS.configFile.flag) configFileFlag = token.value;
    else if (token.negated) {
      if (token.inline) {
        throw new UsageError(ErrorCode.INVALID_VALUE, `flag ${spelled} takes no value`);
      }
      const name = FLAG_TO_NAME.get(token.name) as SettingName;
      flags.set(name, { value: false, source: { kind: 'flag', flag: `no-${token.name}` } });
    } else {
      const name = FLAG_TO_NAME.get(token.name) as SettingName;
      // A boolean flag alone means true; --flag=false is accepted too.
      const value = token.type === 'boolean' ? (token.inline ? token.value : true) : token.value;
      flags.set(name, { value, source: { kind: 'flag', flag: token.name } });
    }
  }
  return { flags, action, configFileFlag };
}

function readEnv(env: Readonly<Record<string, string | undefined>>): Map<SettingName, Sourced> {
  const values = new Map<SettingName, Sourced>();
  for (const [variable, value] of Object.entries(env)) {
    if (!variable.startsWith('WSHUB_') || value === undefined || META_ENV.has(variable)) continue;
    const name = ENV_TO_NAME.get(variable);
    if (name === undefined) {
      throw new UsageError(
        ErrorCode.UNKNOWN_ENV,
        `unknown environment variable ${variable}${didYouMean(variable, [...ENV_TO_NAME.keys(), ...META_ENV])}`,
      );
    }
    values.set(name, { value, source: { kind: 'env', name: variable } });
  }
  return values;
}

function readYamlFile(file: string, readFile: (path: string) => string): Map<SettingName, Sourced> {
  let text: string;
  try {
    text = readFile(file);
  } catch (error) {
    const reason =
      (error as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (error as Error).message;
    throw new UsageError(
      ErrorCode.CONFIG_FILE_UNREADABLE,
      `cannot read config file ${file} (--config-file): ${reason}`,
    );
  }
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, uniqueKeys: true, prettyErrors: false });
  const syntaxError = doc.errors[0];
  if (syntaxError) {
    const line = lineCounter.linePos(syntaxError.pos[0]).line;
    const firstLine = syntaxError.message.split('\n')[0];
    throw new UsageError(ErrorCode.CONFIG_FILE_SYNTAX, `${file}:${line}: invalid YAML: ${firstLine}`);
  }
  const values = new Map<SettingName, Sourced>();
  const lineOf = (node: Node | null | undefined): number =>
    node?.range ? lineCounter.linePos(node.range[0]).line : 1;

  const walk = (node: unknown, prefix: string, normalizedPrefix: string): void => {
    if (node === null || node === undefined || (isScalar(node) && node.value === null)) return;
    if (!isMap(node)) {
      const what = prefix === '' ? 'the top level' : prefix;
      throw new UsageError(
        ErrorCode.INVALID_VALUE,
        `${file}:${lineOf(node as Node)}: ${what} must be a mapping of settings (key: value)`,
      );
    }
    for (const pair of node.items) {
      const keyNode = pair.key as Node;
      const segment = String(isScalar(keyNode) ? keyNode.value : keyNode);
      const key = prefix === '' ? segment : `${prefix}.${segment}`;
      const normalized =
        normalizedPrefix === ''
          ? normalizeSegment(segment)
          : `${normalizedPrefix}.${normalizeSegment(segment)}`;
      const line = lineOf(keyNode);
      const name = KEY_TO_NAME.get(normalized);
      if (name !== undefined) {
        if (values.has(name)) {
          throw new UsageError(
            ErrorCode.INVALID_VALUE,
            `${file}:${line}: ${key} is set twice (under two spellings)`,
          );
        }
        const valueNode = pair.value as Node | null;
        const value = valueNode && 'toJS' in valueNode ? valueNode.toJS(doc) : valueNode;
        values.set(name, { value, source: { kind: 'file', file, line, key } });
      } else if (SECTIONS.has(normalized)) {
        walk(pair.value, key, normalized);
      } else {
        const known = SETTING_NAMES.map((n) => settingOf(n).key);
        const hint =
          didYouMean(key, known) ||
          `; known keys${prefix === '' ? '' : ` under ${prefix}`}: ${known
            .filter((k) => normalizedPrefix === '' || normalizeKey(k).startsWith(`${normalizedPrefix}.`))
            .join(', ')}`;
        throw new UsageError(ErrorCode.UNKNOWN_KEY, `${file}:${line}: unknown key ${key}${hint}`);
      }
    }
  };
  walk(doc.contents, '', '');
  return values;
}

const AUTH_KEY_SETTINGS = ['authJwtSecretFile', 'authJwksFile', 'authJwksUrl'] as const;
const AUTH_ONLY_SETTINGS = [
  ...AUTH_KEY_SETTINGS,
  'authJwtIssuer',
  'authJwtAudience',
  'maxConnectionsPerUser',
] as const;

/** --auth=jwt needs a key source; auth settings without --auth=jwt would be silently ignored. */
function checkAuth(config: Config, nameFor: (name: SettingName) => string): void {
  if (config.auth === 'jwt') {
    if (AUTH_KEY_SETTINGS.some((name) => config[name] !== '')) return;
    throw new UsageError(
      ErrorCode.MISSING_SETTING,
      `${nameFor('auth')} is jwt, but no key source is set; set --auth-jwt-secret-file=FILE (HS256), --auth-jwks-file=FILE or --auth-jwks-url=URL (or auth.jwt.secretFile, auth.jwt.jwksFile, auth.jwt.jwksUrl in the config file)`,
    );
  }
  for (const name of AUTH_ONLY_SETTINGS) {
    if (config[name] === SETTINGS[name].default) continue;
    throw new UsageError(
      ErrorCode.CONFLICTING_SETTINGS,
      `${nameFor(name)} only applies with --auth=jwt, but ${nameFor('auth')} is ${config.auth}; set --auth=jwt or remove the other setting`,
    );
  }
}
