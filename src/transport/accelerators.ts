import { isUtf8 } from 'node:buffer';
import { createRequire } from 'node:module';

/**
 * Which native accelerators ws uses in this installation (issue 5). ws loads the
 * optional `bufferutil` package for masking/unmasking frames (≥ 48 bytes) and
 * falls back to JavaScript silently when it is missing or its binding does not
 * load (16 KiB echo is then ~3× slower); UTF-8 validation uses node:buffer's
 * native isUtf8. Resolved from ws's own location, as ws resolves it.
 */
export interface Accelerators {
  readonly bufferutil: 'native' | 'javascript-fallback' | 'missing';
  readonly utf8Validation: 'native' | 'javascript';
}

export function detectAccelerators(): Accelerators {
  const fromWs = createRequire(createRequire(import.meta.url).resolve('ws'));
  let bufferutil: Accelerators['bufferutil'] = 'missing';
  try {
    const loaded = fromWs('bufferutil') as { mask: unknown };
    let fallback: { mask: unknown } | undefined;
    try {
      fallback = fromWs('bufferutil/fallback') as { mask: unknown };
    } catch {
      fallback = undefined;
    }
    bufferutil = fallback !== undefined && loaded.mask === fallback.mask ? 'javascript-fallback' : 'native';
  } catch {
    bufferutil = 'missing';
  }
  return { bufferutil, utf8Validation: typeof isUtf8 === 'function' ? 'native' : 'javascript' };
}

/** One startup log line saying what is active, and what to do when bufferutil is not. */
export function describeAccelerators(found: Accelerators): string {
  const utf8 = `UTF-8 validation ${found.utf8Validation === 'native' ? 'native (node:buffer isUtf8)' : 'in JavaScript'}`;
  if (found.bufferutil === 'native') return `Native accelerators: bufferutil (frame masking) active, ${utf8}`;
  const why =
    found.bufferutil === 'missing'
      ? 'the optional bufferutil package is not installed'
      : "bufferutil's native binding did not load (no prebuilt binary for this platform and no compiler at install time)";
  return `Native accelerators: bufferutil NOT active (${why}): frame masking runs in JavaScript, large messages are slower; ${utf8}`;
}
