import { createRequire } from 'node:module';

/** The package version, read once from package.json (dist/src/version.js → ../../package.json). */
export const VERSION = (createRequire(import.meta.url)('../../package.json') as { version: string }).version;
