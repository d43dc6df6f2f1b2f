import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { runWshub } from './server.js';

export interface Finished {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs wshub to its exit and returns its exit code and output. */
export async function runToExit(args: string[], env: Record<string, string> = {}): Promise<Finished> {
  const run = runWshub(args, env);
  const { code } = await run.exited;
  return { code, stdout: run.stdout.lines.join('\n'), stderr: run.stderr.lines.join('\n') };
}

/** Asserts a user mistake: exit 2, exactly one line on stderr naming what is wrong, no stack trace. */
export function assertUsageError(
  result: { code: number | null; stderr: string },
  code: string,
  mentions: RegExp,
): void {
  assert.equal(result.code, 2, result.stderr);
  const lines = result.stderr.split('\n').filter((l) => l !== '');
  assert.equal(lines.length, 1, `one line: ${result.stderr}`);
  assert.ok(lines[0]?.endsWith(`[${code}]`), lines[0]);
  assert.match(lines[0] ?? '', mentions);
  assert.doesNotMatch(result.stderr, /\n\s+at /);
}

/** Runs a compiled script (dist/scripts/…, dist/bench/…) with node to its exit. */
export async function runScriptToExit(script: string, args: string[]): Promise<Finished> {
  const child = spawn(process.execPath, [script, ...args], {
    env: { PATH: process.env.PATH ?? '' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    stdout += chunk;
  });
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk;
  });
  const [code] = (await once(child, 'exit')) as [number | null];
  return { code, stdout, stderr };
}
