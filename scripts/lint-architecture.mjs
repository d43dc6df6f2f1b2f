// `npm run lint`'s import-table check (issue 14): dependency-cruiser with the rules built from
// ARCHITECTURE.md (.dependency-cruiser.cjs). Without dependency-cruiser (a node_modules older than
// the devDependency) lint fails and says to run `npm ci`: a check that did not run never passes.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

const bin = 'node_modules/.bin/depcruise';
if (!existsSync(bin)) {
  process.stderr.write(
    'lint: dependency-cruiser is not installed, so the import-table check cannot run: run npm ci\n',
  );
  process.exit(1);
}
const run = spawnSync(bin, ['src', 'bench', 'scripts', 'test', '--config', '.dependency-cruiser.cjs'], {
  stdio: 'inherit',
});
process.exit(run.status ?? 1);
