import { stringify } from 'yaml';
import { SETTINGS, type Setting } from './settings.js';

/** What --print-config shows instead of a secret's value. */
export const REDACTED = '<redacted>';

type Table = Readonly<Record<string, Setting<unknown>>>;

/**
 * The effective configuration as YAML, nested by each setting's key and written
 * with its kind's format (5s, 1MiB), so the output loads back with
 * --config-file. Secrets are replaced by REDACTED (an unset one stays empty, so
 * a reader can tell "set" from "not set").
 */
export function printConfig(
  config: Readonly<Record<string, unknown>>,
  table: Table = SETTINGS as unknown as Table,
): string {
  const root: Record<string, unknown> = {};
  for (const [name, setting] of Object.entries(table)) {
    const value = config[name];
    const shown =
      setting.secret && value !== '' && value !== undefined ? REDACTED : setting.kind.format(value);
    const path = setting.key.split('.');
    let node = root;
    for (const segment of path.slice(0, -1)) {
      node[segment] ??= {};
      node = node[segment] as Record<string, unknown>;
    }
    node[path[path.length - 1] as string] = shown;
  }
  return `# wshub effective configuration (flags > environment > config file > defaults)\n${stringify(root)}`;
}
