import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

// `npm run bench` is a runner (bench/run.ts) over one module per section (bench/sections/) sharing
// bench/suite.ts (issue 14). A section module must do nothing when imported: no process started,
// no file written, no timer or socket left behind, nothing printed. Checked in a fresh Node process
// whose child_process and fs writers record every call before any bench module is loaded.

const BENCH = new URL('../bench/', import.meta.url);
const SECTION_FILES = readdirSync(new URL('sections/', BENCH))
  .filter((file) => file.endsWith('.js') && file !== 'index.js')
  .map((file) => file.replace(/\.js$/, ''))
  .sort();
const MODULES = [
  ...SECTION_FILES.map((name) => `sections/${name}.js`),
  'sections/index.js',
  'suite.js',
  'options.js',
  'loadgen.js',
  'servers.js',
  'report-html.js',
].map((path) => new URL(path, BENCH).href);

const PROBE = `
import childProcess from 'node:child_process';
import fs from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
const calls = [];
const watch = (object, names) => {
  for (const name of names) {
    const original = object[name];
    object[name] = (...args) => {
      calls.push(name + ' ' + String(args[0]));
      return original(...args);
    };
  }
};
watch(childProcess, ['spawn', 'spawnSync', 'exec', 'execSync', 'execFile', 'execFileSync', 'fork']);
watch(fs, ['mkdirSync', 'writeFileSync', 'appendFileSync', 'openSync', 'rmSync', 'mkdir', 'writeFile', 'open']);
syncBuiltinESMExports();
// Node's own stdio handles (importing node:http2 opens them) are there before, not counted.
void process.stdin, process.stdout, process.stderr;
const before = process.getActiveResourcesInfo();
const exported = {};
for (const url of JSON.parse(process.argv[1])) exported[url.replace(/^.*\\/bench\\//, '')] = await import(url);
const sections = {};
for (const [path, module] of Object.entries(exported)) {
  if (!path.startsWith('sections/') || path === 'sections/index.js') continue;
  sections[path] = Object.values(module).map((value) => value && value.name);
}
// The module loader's own file reads (CloseReq, FSReqCallback) end soon, later on a loaded machine:
// wait for them (bounded); a timer, socket or process an import started stays and is reported.
const loaderRequests = ['CloseReq', 'FSReqCallback', 'FileHandleCloseReq'];
for (let i = 0; i < 100; i++) {
  await new Promise((resolve) => setTimeout(resolve, 50));
  if (!process.getActiveResourcesInfo().some((resource) => loaderRequests.includes(resource))) break;
}
const after = process.getActiveResourcesInfo();
process.stdout.write(JSON.stringify({
  calls,
  newResources: after.filter((resource) => {
    const i = before.indexOf(resource);
    if (i === -1) return true;
    before.splice(i, 1);
    return false;
  }),
  sections,
  order: exported['sections/index.js'].SECTIONS.map((section) => section.name),
  onlyDoc: exported['options.js'].BENCH_SUITE_FLAGS.only.doc,
}));
// A timer or socket an import left would keep this process alive: it is reported above instead.
process.exit(0);
`;

interface ProbeResult {
  readonly calls: string[];
  readonly newResources: string[];
  readonly sections: Record<string, string[]>;
  readonly order: string[];
  readonly onlyDoc: string;
}

async function probe(): Promise<{ result: ProbeResult; stdout: string; stderr: string }> {
  const { stdout, stderr } = await promisify(execFile)(
    process.execPath,
    ['--input-type=module', '-e', PROBE, JSON.stringify(MODULES)],
    { timeout: 60_000 },
  );
  return { result: JSON.parse(stdout) as ProbeResult, stdout, stderr };
}

describe('npm run bench: one module per section, nothing done at import time', () => {
  it('importing every section module and the suite starts no process, writes no file, prints nothing', async () => {
    const { result, stderr } = await probe();
    assert.deepEqual(result.calls, [], 'child_process or fs writes at import time');
    assert.deepEqual(result.newResources, [], 'timers, sockets or handles left by an import');
    assert.equal(stderr, '');
  });

  it('each section module exports one section named after its file, and the runner knows every one', async () => {
    const { result } = await probe();
    assert.ok(SECTION_FILES.length >= 9, `sections found: ${SECTION_FILES.join(', ')}`);
    for (const name of SECTION_FILES) {
      assert.deepEqual(result.sections[`sections/${name}.js`], [name], `bench/sections/${name}.ts`);
    }
    assert.deepEqual([...result.order].sort(), SECTION_FILES, 'bench/sections/index.ts lists every section');
    assert.equal(
      result.onlyDoc,
      `Sections to run (${result.order.join(',')}; default: all)`,
      '--only accepts exactly the sections, in the order they run',
    );
  });

  it('--help, a wrong --only name and an unwritable --report answer without running anything', async () => {
    const run = fileURLToPath(new URL('run.js', BENCH));
    const help = await promisify(execFile)(process.execPath, [run, '--help'], { timeout: 30_000 });
    assert.match(help.stdout, /^Usage: npm run bench -- \[flags\]/);
    assert.match(help.stdout, /--only=<a,b,\.\.\.>\s+Sections to run \(echo,broadcast,memory,connect,/);
    const wrong = await promisify(execFile)(process.execPath, [run, '--only=echo,nope'], {
      timeout: 30_000,
    }).then(
      () => assert.fail('--only=nope must fail'),
      (error: { code: number; stdout: string; stderr: string }) => error,
    );
    assert.equal(wrong.code, 2);
    assert.equal(wrong.stdout, '');
    assert.match(
      wrong.stderr,
      /^bench: invalid value for --only: "echo,nope"; .* \[WSHUB_INVALID_VALUE\]\n$/,
    );
    // A --report that cannot be written is refused before the suite runs (not after its minutes).
    const unwritable = await promisify(execFile)(
      process.execPath,
      [run, '--only=echo', '--report=/nonexistent-directory/suite.html'],
      { timeout: 30_000 },
    ).then(
      () => assert.fail('an unwritable --report must fail'),
      (error: { code: number; stdout: string; stderr: string }) => error,
    );
    assert.equal(unwritable.code, 2);
    assert.equal(unwritable.stdout, '', 'nothing ran');
    assert.match(
      unwritable.stderr,
      /^bench: cannot write --report=\/nonexistent-directory\/suite\.html: ENOENT .*\[WSHUB_REPORT_FILE_UNWRITABLE\]\n$/,
    );
  });
});
