/**
 * ARCHITECTURE.md's module table, parsed (issue 14): each row's first cell names a module (a file
 * or a folder), its last cell lists what it may import, as short names separated by commas ("hub",
 * "stats", "config/duration", "test/helpers"); text in parentheses explains and is ignored, and so
 * is everything after the first ";". `.dependency-cruiser.cjs` builds its rules from this, and
 * test/architecture.test.ts checks both.
 */
const { readFileSync } = require('node:fs');
const { join } = require('node:path');

const FOLDERS = [
  'wiring',
  'config',
  'transport',
  'hub',
  'backplane',
  'history',
  'metrics',
  'lifecycle',
  'bench',
  'console',
  'charts',
  'publish',
  'client',
  'auth',
];
const FILES = ['app', 'cli', 'stats', 'log', 'errors', 'version', 'disconnects', 'file-watch'];
const escapeRegExp = (text) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** A short name of the table ("hub", "stats", "test/helpers") as a path pattern. */
function targetPattern(name) {
  if (FOLDERS.includes(name)) return `^src/${name}/`;
  if (FILES.includes(name)) return `^src/${name}\\.ts$`;
  if (name === 'test/helpers') return '^test/helpers/';
  const [folder, file] = name.split('/');
  if (FOLDERS.includes(folder) && /^[a-z0-9-]+$/.test(file ?? '')) return `^src/${folder}/${file}\\.ts$`;
  throw new Error(
    `ARCHITECTURE.md: unknown module "${name}" in a "may import" cell (known: ${[...FOLDERS, ...FILES, 'test/helpers'].join(', ')})`,
  );
}

/** A module cell ("`src/hub/`", "`bench/` (repository root)") as a path pattern; undefined for sub-rows. */
function sourcePattern(cell) {
  const match = /^`([^`]+)`/.exec(cell);
  if (!match) return undefined;
  const path = match[1];
  return path.endsWith('/') ? `^${escapeRegExp(path)}` : `^${escapeRegExp(path)}$`;
}

/** Parses ARCHITECTURE.md's module table: [{ module, from, mayImport: [short names], patterns }]. */
function architectureRows(text = readFileSync(join(__dirname, 'ARCHITECTURE.md'), 'utf8')) {
  const rows = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith('| ') || line.startsWith('| module') || line.startsWith('| ---')) continue;
    const cells = line
      .split('|')
      .slice(1, -1)
      .map((cell) => cell.trim());
    const from = sourcePattern(cells[0]);
    if (from === undefined) continue;
    const cell = cells[cells.length - 1];
    const list = cell
      .replace(/\([^)]*\)/g, '')
      .split(';')[0]
      .trim();
    rows.push({ module: cells[0].replace(/^`([^`]+)`.*$/, '$1'), from, list });
  }
  const everythingBelow = [...FOLDERS, ...FILES].filter((name) => name !== 'cli' && name !== 'app');
  for (const row of rows) {
    if (/^everything below/.test(row.list)) row.mayImport = everythingBelow;
    else if (/^everything `app\.ts` may import, except `app\.ts`/.test(row.list)) {
      row.mayImport = everythingBelow.filter((name) => `src/${name}/` !== row.module);
    } else if (row.list === 'nothing') row.mayImport = [];
    else
      row.mayImport = row.list
        .split(',')
        .map((name) => name.trim())
        .filter((name) => name !== '');
    row.patterns = row.mayImport.map(targetPattern);
  }
  return rows;
}

module.exports = { architectureRows, targetPattern };
