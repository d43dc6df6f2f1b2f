/**
 * `npm run lint` enforces ARCHITECTURE.md's "may import" table (issue 14) with these rules, built
 * from the table itself (architecture-rules.cjs), so the two cannot disagree. A module may always
 * import itself, npm packages and Node's built-ins; tests (*.test.ts) are not bound.
 */
const { architectureRows } = require('./architecture-rules.cjs');

const rows = architectureRows();

module.exports = {
  forbidden: rows.map((row) => ({
    name: `architecture: ${row.module} may import only ${row.mayImport.length === 0 ? 'nothing' : row.mayImport.join(', ')}`,
    comment: "ARCHITECTURE.md's module table (the row of this module)",
    severity: 'error',
    from: { path: row.from, pathNot: '\\.test\\.ts$' },
    to: { path: '^(src|bench|scripts|test)/', pathNot: [row.from, ...row.patterns] },
  })),
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '^(dist|node_modules)/' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
  },
};
