import { createHash } from 'node:crypto';
import { CHART_HELPERS } from './helpers.js';
import { chartLibrary } from './uplot.js';

/**
 * A self-contained HTML report (issue 19): its data as JSON in a
 * non-executed script element, uPlot, the chart helpers and the page's own
 * renderer inline, and a Content-Security-Policy that lets only those scripts
 * run and fetches nothing, so the file opens from disk, offline, and draws the
 * same numbers as the JSON it carries (the renderer reads nothing else).
 */
export interface ReportDocument {
  readonly title: string;
  /** Shown under the title. */
  readonly subtitle: string;
  /** Read by the renderer with JSON.parse(document.getElementById('report-data').textContent). */
  readonly data: unknown;
  /** The page's body (containers for the charts and tables). */
  readonly body: string;
  readonly style: string;
  readonly script: string;
}

const hashOf = (text: string): string => `'sha256-${createHash('sha256').update(text).digest('base64')}'`;

const escapeHtml = (text: string): string =>
  text.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c] as string);

/** JSON that cannot end its script element early: `<` is written as \u003c (still the same JSON). */
const embeddableJson = (value: unknown): string => JSON.stringify(value, null, 1).replace(/</g, '\\u003c');

export const REPORT_BASE_STYLE = `
:root { color-scheme: light dark; --muted: #777; }
* { box-sizing: border-box; }
body { font: 15px/1.4 system-ui, sans-serif; margin: 0 auto; max-width: 78rem; padding: 1rem; }
h1 { font-size: 1.3rem; margin: 0 0 .25rem; }
h2 { font-size: 1.1rem; margin: 1.4rem 0 .4rem; }
p.lead { margin: 0 0 1rem; color: var(--muted); word-break: break-all; }
.charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(30rem, 1fr)); gap: .8rem 1.2rem; }
.chart { min-width: 0; min-height: 260px; }
.uplot .u-title { font-size: .95rem; font-weight: 600; }
.uplot .u-legend { font-size: .8rem; }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; font-size: .9rem; }
th, td { text-align: left; padding: .25rem .8rem .25rem 0; border-bottom: 1px solid #8884; vertical-align: top; }
td.n { text-align: right; }
.muted { color: var(--muted); }
`;

/** A Content-Security-Policy that runs exactly these inline scripts and style (by hash) and nothing else. */
export function hashPolicy(scripts: readonly string[], style: string, more: readonly string[] = []): string {
  return [
    "default-src 'none'",
    `script-src ${scripts.map(hashOf).join(' ')}`,
    `style-src ${hashOf(style)}`,
    ...more,
    "base-uri 'none'",
    "form-action 'none'",
  ].join('; ');
}

export function reportHtml(report: ReportDocument): string {
  const uplot = chartLibrary();
  const scripts = [uplot.script, CHART_HELPERS, report.script];
  const style = uplot.style + REPORT_BASE_STYLE + report.style;
  const policy = hashPolicy(scripts, style);
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="${policy}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(report.title)}</title>
<style>${style}</style>
</head>
<body>
<h1>${escapeHtml(report.title)}</h1>
<p class="lead">${escapeHtml(report.subtitle)}</p>
${report.body}
<script type="application/json" id="report-data">${embeddableJson(report.data)}</script>
${scripts.map((script) => `<script>${script}</script>`).join('\n')}
</body>
</html>
`;
}

/** The JSON a report carries, as its renderer reads it (tests compare it with --json). */
export function reportData(html: string): unknown {
  const match = /<script type="application\/json" id="report-data">([\s\S]*?)<\/script>/.exec(html);
  if (!match) throw new Error('no report-data element in this HTML');
  return JSON.parse(match[1] as string);
}
