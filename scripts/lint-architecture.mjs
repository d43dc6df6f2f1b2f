// `npm run lint`'s import-table check (issue 14): dependency-cruiser with the rules built from
// ARCHITECTURE.md (.dependency-cruiser.cjs). A checkout whose node_modules predates the
// devDependency is told to run `npm ci` (CI always runs `npm ci` first, so there it always runs).
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

const bin = 'node_modules/.bin/depcruise';
if (!existsSync(bin)) {
  process.stderr.write(
    'lint: dependency-cruiser is not installed, the import-table check did NOT run: run npm ci\n',
  );
  process.exit(0);
}
const run = spawnSync(bin, ['src', 'bench', 'scripts', 'test', '--config', '.dependency-cruiser.cjs'], {
  stdio: 'inherit',
});
process.exit(run.status ?? 1);
