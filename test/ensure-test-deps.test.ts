import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const SCRIPT = fileURLToPath(new URL('../../scripts/ensure-test-deps.sh', import.meta.url));
const TOOLS = [
  'openssl',
  'cc',
  'promtool',
  'prometheus',
  'chromium',
  'chromedriver',
  'script',
  'redis-server',
  'haproxy',
  'nghttp',
  // Stands for Debian's python3 with python3-h2 (the script runs $H2_PYTHON -c 'import h2').
  'python3',
];
const scratch = mkdtempSync(join(tmpdir(), 'wshub-deps-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

/** Runs the pretest script with a PATH holding only `present` (stubs) and an `id` that says non-root. */
function run(name: string, present: readonly string[]): { status: number | null; stderr: string } {
  const bin = join(scratch, name);
  spawnSync('mkdir', ['-p', bin]);
  for (const tool of present) writeFileSync(join(bin, tool), '#!/bin/sh\nexit 0\n', { mode: 0o755 });
  writeFileSync(join(bin, 'id'), '#!/bin/sh\necho 1000\n', { mode: 0o755 });
  symlinkSync('/bin/sh', join(bin, 'sh'));
  const result = spawnSync('/bin/sh', [SCRIPT], {
    env: { PATH: bin, H2_PYTHON: join(bin, 'python3') },
    encoding: 'utf8',
  });
  return { status: result.status, stderr: result.stderr };
}

describe('npm test installs what it needs (scripts/ensure-test-deps.sh, issue 14)', () => {
  it('does nothing when every tool is there', () => {
    assert.deepEqual(run('all', TOOLS), { status: 0, stderr: '' });
  });

  it('not root: names the missing Debian packages and the command, and fails', () => {
    const result = run(
      'some',
      TOOLS.filter((tool) => !['haproxy', 'chromedriver', 'python3'].includes(tool)),
    );
    assert.equal(result.status, 1);
    assert.match(
      result.stderr,
      /^npm test needs these Debian packages: chromium-driver haproxy python3-h2$/m,
    );
    assert.match(
      result.stderr,
      /sudo apt-get install -y --no-install-recommends chromium-driver haproxy python3-h2/,
    );
  });
});
