import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const ROOT = fileURLToPath(new URL('../../..', import.meta.url));

export interface TypeProblem {
  /** 0-based line of the checked source. */
  readonly line: number;
  readonly message: string;
}

/**
 * Type-checks a TypeScript source held in memory, as if it sat at the repository
 * root (so packages resolve from node_modules). Data files (manifests, dashboards)
 * are checked by writing them as object literals typed with a schema package's
 * declarations: excess-property checks then name every field the schema lacks,
 * which JSON-schema validation that allows additional properties lets through.
 */
export function typeProblems(source: string): TypeProblem[] {
  const virtual = `${ROOT}__typecheck__.ts`;
  const options: ts.CompilerOptions = {
    strict: true,
    noEmit: true,
    skipLibCheck: true,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    target: ts.ScriptTarget.ES2022,
    types: [],
  };
  const host = ts.createCompilerHost(options);
  const getSourceFile = host.getSourceFile.bind(host);
  host.getSourceFile = (fileName, language, onError) =>
    fileName === virtual
      ? ts.createSourceFile(fileName, source, language)
      : getSourceFile(fileName, language, onError);
  const fileExists = host.fileExists.bind(host);
  host.fileExists = (fileName) => fileName === virtual || fileExists(fileName);
  const program = ts.createProgram([virtual], options, host);
  return ts.getPreEmitDiagnostics(program).map((diagnostic) => ({
    line: diagnostic.file?.getLineAndCharacterOfPosition(diagnostic.start ?? 0).line ?? 0,
    message: ts.flattenDiagnosticMessageText(diagnostic.messageText, ' '),
  }));
}
