import { envName, META_FLAGS, SETTINGS, type Setting } from './settings.js';

/** --help, generated from the settings table so it can never disagree with what is accepted. */
export function helpText(version: string): string {
  const rows: Array<[string, string]> = [];
  for (const setting of Object.values(SETTINGS) as Setting<unknown>[]) {
    const flag = setting.kind.isBoolean ? `--[no-]${setting.flag}` : `--${setting.flag}=${setting.kind.hint}`;
    const shown = setting.kind.format(setting.default);
    const defaultText = shown === '' ? '""' : Array.isArray(shown) ? shown.join(',') || '""' : String(shown);
    rows.push([
      flag,
      `${setting.doc} (default ${defaultText}; env ${envName(setting)}; YAML ${setting.key})`,
    ]);
  }
  for (const meta of Object.values(META_FLAGS)) {
    rows.push([`--${meta.flag}=${meta.hint}`, `${meta.doc} (env ${meta.env})`]);
  }
  rows.push(
    [
      '--check-config',
      'Validate the configuration (flags, environment, file, TLS certificate files), print "configuration OK" and exit 0, or the error and exit 2',
    ],
    [
      '--print-config',
      'Print the effective configuration as YAML (secrets redacted) and exit; it loads back with --config-file',
    ],
    ['-h, --help', 'Show this help and exit'],
    ['-v, --version', 'Print the version and exit'],
  );
  const width = Math.max(...rows.map(([flag]) => flag.length)) + 2;
  return [
    `wshub ${version}: WebSocket echo server and broadcast hub with Prometheus metrics`,
    '',
    'Usage: wshub [flags]',
    '       wshub bench URL [flags]   load generator (wshub bench --help)',
    '       wshub client [URL]        example client: stdin lines out, messages printed (wshub client --help)',
    '',
    'Flags (precedence: flags > environment > config file > defaults):',
    ...rows.map(([flag, doc]) => `  ${flag.padEnd(width)}${doc}`),
    '',
  ].join('\n');
}
