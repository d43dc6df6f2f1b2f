import { writeFileSync } from 'node:fs';
import { reportHtml } from '../src/charts/document.js';

/**
 * `npm run bench -- --report=FILE.html` (issue 19): the suite's document (the
 * one --json prints and .bench-results/latest.json keeps) as one self-contained
 * HTML file: the ratio of every row at a glance, then each section's rows as
 * bar charts (wshub, the ws baseline and, for echo, the C reference: medians,
 * with the spread of the runs in the table below).
 */
export interface SuiteRow {
  readonly section: string;
  readonly case: string;
  readonly unit: string;
  readonly higherIsBetter: boolean;
  readonly wshub: { readonly median: number; readonly min: number; readonly max: number } | undefined;
  readonly ws: { readonly median: number; readonly min: number; readonly max: number };
  readonly ratio: number | undefined;
  readonly ceiling?: { readonly median: number; readonly min: number; readonly max: number } | undefined;
}

export interface SuiteDocument {
  readonly conditions: Readonly<Record<string, unknown>> & { readonly date: string };
  readonly warnings: readonly string[];
  readonly results: readonly SuiteRow[];
}

const BODY = `
<h2>wshub ÷ ws baseline, every row</h2>
<p class="muted">Above 1 is more of what the row measures: better for throughput (↑), worse for time, CPU and memory (↓).</p>
<div class="charts"><div class="chart" id="chart-ratios"></div></div>
<h2>Rows by section</h2>
<div class="charts" id="sections"></div>
<h2>All rows</h2>
<table id="rows"><thead><tr><th>section</th><th>case</th><th>unit</th><th>wshub median [min–max]</th><th>ws baseline</th><th>C reference</th><th>ratio</th></tr></thead><tbody></tbody></table>
<h2>Conditions</h2>
<table id="conditions"><tbody></tbody></table>
<ul id="warnings"></ul>
`;

const STYLE = `
#rows td:nth-child(n+4) { text-align: right; }
#warnings { color: #b45309; }
`;

const SCRIPT = `
'use strict';
(() => {
  const suite = JSON.parse(document.getElementById('report-data').textContent);
  const $ = (id) => document.getElementById(id);
  const charts = {};
  window.wshubCharts = charts;
  const rows = suite.results;
  const arrow = (row) => (row.higherIsBetter ? '↑' : '↓');
  const name = (row) => row.section + ': ' + row.case + ' ' + arrow(row);

  function chart(container, options) {
    charts[container.id] = wshubChart(container, Object.assign({ time: false, bars: true }, options));
    container.dataset.points = String(options.data[0].length);
  }

  const rated = rows.filter((row) => row.ratio !== null && row.ratio !== undefined);
  chart($('chart-ratios'), {
    title: 'wshub ÷ ws baseline (medians)',
    yLabel: 'ratio',
    xLabel: 'row',
    xValues: (i) => String(Math.round(i) + 1),
    series: [{ label: 'ratio', unit: '×' }],
    data: [rated.map((_, i) => i), rated.map((row) => row.ratio)],
    height: 260,
  });
  const legend = document.createElement('ol');
  legend.className = 'muted';
  legend.id = 'ratio-rows';
  for (const row of rated) {
    const item = document.createElement('li');
    item.textContent = name(row) + ' — ' + wshubFormat(row.ratio, 2) + '×';
    legend.append(item);
  }
  $('chart-ratios').after(legend);

  // One chart per section and unit: for each case, adjacent bars for wshub, ws and the C reference.
  const groups = new Map();
  for (const row of rows) {
    const key = row.section + ' (' + row.unit + ')';
    if (!groups.has(key)) groups.set(key, []);
    groups.get(key).push(row);
  }
  let index = 0;
  for (const [title, group] of groups) {
    const servers = [['wshub', (row) => row.wshub], ['ws baseline', (row) => row.ws]];
    if (group.some((row) => row.ceiling)) servers.push(['C reference', (row) => row.ceiling]);
    const slots = servers.length + 1;
    const xs = [];
    const columns = servers.map(() => []);
    group.forEach((row, i) => {
      servers.forEach(([, read], s) => {
        xs.push(i * slots + s);
        columns.forEach((column, c) => column.push(c === s && read(row) ? read(row).median : null));
      });
    });
    const container = document.createElement('div');
    container.className = 'chart';
    container.id = 'chart-section-' + index++;
    $('sections').append(container);
    chart(container, {
      title: title,
      yLabel: group[0].unit,
      xValues: (x) => {
        const i = Math.round(x);
        return i % slots === Math.floor((servers.length - 1) / 2) ? (group[Math.floor(i / slots)] || {}).case || '' : '';
      },
      series: servers.map(([label], s) => ({ label: label, unit: group[0].unit, color: WSHUB_COLORS[s] })),
      data: [xs].concat(columns),
      height: 260,
    });
  }

  const stat = (s) => (s ? wshubFormat(s.median) + (s.min !== s.max ? ' [' + wshubFormat(s.min) + '–' + wshubFormat(s.max) + ']' : '') : 'n/a');
  $('rows').tBodies[0].replaceChildren(...rows.map((row) => {
    const tr = document.createElement('tr');
    for (const text of [row.section, row.case + ' ' + arrow(row), row.unit, stat(row.wshub), stat(row.ws), row.ceiling ? stat(row.ceiling) : '', row.ratio === null || row.ratio === undefined ? 'n/a' : wshubFormat(row.ratio, 2) + '×']) {
      const td = document.createElement('td');
      td.textContent = text;
      tr.append(td);
    }
    return tr;
  }));
  $('conditions').tBodies[0].replaceChildren(...Object.entries(suite.conditions).map(([key, value]) => {
    const tr = document.createElement('tr');
    const th = document.createElement('th');
    th.textContent = key;
    const td = document.createElement('td');
    td.textContent = Array.isArray(value) ? value.join(' ') : String(value);
    tr.append(th, td);
    return tr;
  }));
  $('warnings').replaceChildren(...suite.warnings.map((warning) => {
    const li = document.createElement('li');
    li.textContent = 'WARNING: ' + warning;
    return li;
  }));
  wshubResizeWithWindow(() => Object.keys(charts).map((id) => ({ container: $(id), chart: charts[id] })));
})();
`;

export function suiteReportHtml(suite: SuiteDocument): string {
  return reportHtml({
    title: 'wshub benchmark suite',
    subtitle: `${suite.conditions.date}: wshub against the minimal ws baseline, ${suite.results.length} rows`,
    data: suite,
    body: BODY,
    style: STYLE,
    script: SCRIPT,
  });
}

export function writeSuiteReport(file: string, suite: SuiteDocument): void {
  writeFileSync(file, suiteReportHtml(suite));
}
