import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

/**
 * uPlot (MIT, ~50 KB minified), the charting library of the console page and
 * of the bench reports (issue 19). It is a runtime dependency and is read from
 * node_modules once, when a page or report is first built, and inlined: the
 * console stays one response under a hash-based CSP, a report stays one file
 * that opens offline.
 */
export interface ChartLibrary {
  /** The IIFE build: defines the global `uPlot`. */
  readonly script: string;
  readonly style: string;
}

let library: ChartLibrary | undefined;

export function chartLibrary(): ChartLibrary {
  if (library === undefined) {
    const require = createRequire(import.meta.url);
    const read = (file: string): string => readFileSync(require.resolve(`uplot/dist/${file}`), 'utf8');
    library = {
      // The banner's link, without its scheme: a page with no URL in it is easy to check for self-containment.
      script: `${read('uPlot.iife.min.js').replace('/*! https://', '/*! uPlot, MIT License, ')}`,
      style: read('uPlot.min.css'),
    };
  }
  return library;
}
