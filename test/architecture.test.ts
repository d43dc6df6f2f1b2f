import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const DEPCRUISE = join(ROOT, 'node_modules', '.bin', 'depcruise');
const { architectureRows } = createRequire(import.meta.url)(join(ROOT, 'architecture-rules.cjs')) as {
  architectureRows: () => Array<{ module: string; mayImport: string[] }>;
};

const scratch = mkdtempSync(join(tmpdir(), 'wshub-depcruise-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

/** Runs npm run lint's dependency-cruiser check on a tree of fixture files (path → source). */
function cruise(name: string, files: Record<string, string>): { status: number | null; output: string } {
  const dir = join(scratch, name);
  for (const [path, source] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, path)), { recursive: true });
    writeFileSync(join(dir, path), source);
  }
  writeFileSync(
    join(dir, 'tsconfig.json'),
    JSON.stringify({ compilerOptions: { module: 'NodeNext', moduleResolution: 'NodeNext', strict: true } }),
  );
  const run = spawnSync(DEPCRUISE, ['src', '--config', join(ROOT, '.dependency-cruiser.cjs')], {
    cwd: dir,
    encoding: 'utf8',
    timeout: 60_000,
  });
  return { status: run.status, output: `${run.stdout}${run.stderr}` };
}

describe("ARCHITECTURE.md's import table is enforced by npm run lint (issue 14)", () => {
  it('a forbidden import (src/hub/ importing src/transport/) fails, naming the rule', () => {
    const result = cruise('forbidden', {
      'src/hub/fixture.ts': "import { ROUTE } from '../transport/fixture.js';\nexport const x = ROUTE;\n",
      'src/transport/fixture.ts': "export const ROUTE = '/ws';\n",
    });
    assert.notEqual(result.status, 0, result.output);
    assert.match(result.output, /architecture: src\/hub\/ may import only history, stats, log/);
    assert.match(result.output, /src\/hub\/fixture\.ts → src\/transport\/fixture\.ts/);
  });

  it('an import the table allows (src/hub/ importing src/stats.ts) passes', () => {
    const result = cruise('allowed', {
      'src/hub/fixture.ts': "import { N } from '../stats.js';\nexport const x = N;\n",
      'src/stats.ts': 'export const N = 1;\n',
    });
    assert.equal(result.status, 0, result.output);
  });

  it('src/ must not import test/ (not in any src row), and scripts/ may (its row says test/helpers)', () => {
    const result = cruise('tests', {
      'src/log.ts': "import { H } from '../test/helpers/h.js';\nexport const x = H;\n",
      'test/helpers/h.ts': 'export const H = 1;\n',
    });
    assert.notEqual(result.status, 0, result.output);
    assert.match(result.output, /architecture: src\/log\.ts may import only nothing/);
  });

  it('without dependency-cruiser installed, lint fails (a check that did not run never passes)', () => {
    const empty = join(scratch, 'no-node-modules');
    mkdirSync(empty, { recursive: true });
    const run = spawnSync(process.execPath, [join(ROOT, 'scripts', 'lint-architecture.mjs')], {
      cwd: empty,
      encoding: 'utf8',
    });
    assert.equal(run.status, 1, run.stderr);
    assert.match(
      run.stderr,
      /dependency-cruiser is not installed, so the import-table check cannot run: run npm ci/,
    );
  });

  it('every module of src/ has a row in the table', () => {
    const modules = new Set(architectureRows().map((row) => row.module));
    const missing = readdirSync(join(ROOT, 'src'), { withFileTypes: true })
      .filter(
        (entry) => entry.isDirectory() || (entry.name.endsWith('.ts') && !entry.name.endsWith('.test.ts')),
      )
      .map((entry) => (entry.isDirectory() ? `src/${entry.name}/` : `src/${entry.name}`))
      .filter((module) => !modules.has(module));
    assert.deepEqual(missing, []);
    for (const folder of ['bench/', 'scripts/']) assert.ok(modules.has(folder), `${folder} has a row`);
  });
});
