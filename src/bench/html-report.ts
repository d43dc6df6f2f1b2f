import { reportHtml } from '../charts/document.js';
import type { BenchReport } from './report.js';

/**
 * `wshub bench --report=FILE.html` (issue 19): the report `--json` prints,
 * embedded as JSON and drawn from it in the browser: throughput, latency
 * percentiles and open connections per second, connection failures and close
 * codes per second, the latency histogram, the run's parameters and totals.
 */
const BODY = `
<h2>Over time</h2>
<div class="charts">
  <div class="chart" id="chart-throughput"></div>
  <div class="chart" id="chart-latency"></div>
  <div class="chart" id="chart-connections"></div>
  <div class="chart" id="chart-errors"></div>
</div>
<p class="muted">One point per second since the start (ramp-up, sending, then the drain: waiting for replies
still in flight); the last second may be shorter. Latency is send to receive of the messages received in that second.</p>
<h2>Latency distribution</h2>
<div class="charts"><div class="chart" id="chart-histogram"></div></div>
<h2>Run</h2>
<div class="charts">
  <table id="parameters"><caption class="muted">Parameters</caption><tbody></tbody></table>
  <table id="totals"><caption class="muted">Totals</caption><tbody></tbody></table>
</div>
`;

const STYLE = `
caption { text-align: left; padding-bottom: .3rem; }
#passed[data-passed=false] { color: #dc2626; font-weight: 600; }
`;

const SCRIPT = `
'use strict';
(() => {
  const report = JSON.parse(document.getElementById('report-data').textContent);
  const $ = (id) => document.getElementById(id);
  const charts = {};
  window.wshubCharts = charts;
  const timeline = report.timeline;
  const x = timeline.map((second) => second.second);
  const ms = (value) => (value === null ? '–' : wshubFormat(value, 3) + ' ms');

  function chart(id, options) {
    const container = $(id);
    charts[id] = wshubChart(container, Object.assign({ time: false, xLabel: 'seconds since the start' }, options));
    container.dataset.points = String(options.data[0].length);
  }

  chart('chart-throughput', {
    title: 'Throughput (messages per second)',
    yLabel: 'messages/s',
    series: [{ label: 'sent' }, { label: 'received', color: WSHUB_COLORS[1] }],
    data: [x, timeline.map((s) => s.sent), timeline.map((s) => s.received)],
  });
  chart('chart-latency', {
    title: 'Latency per second (log scale)',
    yLabel: 'ms',
    log: true,
    series: [
      { label: 'p50', unit: 'ms' },
      { label: 'p90', unit: 'ms', color: WSHUB_COLORS[3] },
      { label: 'p99', unit: 'ms', color: WSHUB_COLORS[2] },
      { label: 'max', unit: 'ms', color: WSHUB_COLORS[4] },
    ],
    data: [x].concat(['p50', 'p90', 'p99', 'max'].map((key) => timeline.map((s) => s.latencyMs[key]))),
  });
  chart('chart-connections', {
    title: 'Open connections',
    yLabel: 'connections',
    series: [{ label: 'open' }],
    data: [x, timeline.map((s) => s.open)],
  });

  const keysOf = (field) => [...new Set(timeline.flatMap((s) => Object.keys(s[field])))].sort();
  const errorSeries = keysOf('failedByReason').map((reason) => ({ label: 'failed: ' + reason.replace(/^http_/, 'HTTP '), read: (s) => s.failedByReason[reason] || 0 }))
    .concat(keysOf('closeCodes').map((code) => ({ label: 'closed ' + code, read: (s) => s.closeCodes[code] || 0 })));
  chart('chart-errors', {
    title: 'Connection failures and close codes per second',
    yLabel: 'connections/s',
    series: errorSeries.length ? errorSeries.map((s, i) => ({ label: s.label, color: WSHUB_COLORS[(i + 2) % WSHUB_COLORS.length] })) : [{ label: 'none', color: '#888' }],
    data: [x].concat(errorSeries.length ? errorSeries.map((s) => timeline.map(s.read)) : [x.map(() => 0)]),
  });

  const histogram = report.latencyHistogram;
  const bucketLabel = (i) => {
    const bound = histogram.boundsMs[Math.round(i)];
    return bound === undefined ? '' : '≤ ' + wshubFormat(bound, 3) + ' ms';
  };
  chart('chart-histogram', {
    title: 'Latency histogram (' + wshubFormat(report.latencyMs.count) + ' messages)',
    yLabel: 'messages',
    xLabel: 'latency bucket',
    bars: true,
    xValues: bucketLabel,
    series: [{ label: 'messages' }],
    data: [histogram.counts.map((_, i) => i), histogram.counts],
    height: 240,
  });

  function table(id, rows) {
    $(id).tBodies[0].replaceChildren(...rows.map(([name, value, key]) => {
      const row = document.createElement('tr');
      const label = document.createElement('th');
      label.textContent = name;
      const cell = document.createElement('td');
      cell.textContent = value;
      if (key) cell.id = key;
      row.append(label, cell);
      return row;
    }));
  }
  const byCount = (record) => Object.entries(record).sort((a, b) => b[1] - a[1]).map(([k, v]) => k.replace(/^http_/, 'HTTP ') + ': ' + wshubFormat(v)).join(', ') || 'none';
  const percentiles = (p) => p.count === 0 ? 'no samples' : 'p50 ' + ms(p.p50) + ', p90 ' + ms(p.p90) + ', p99 ' + ms(p.p99) + ', p99.9 ' + ms(p.p99_9) + ', max ' + ms(p.max);
  table('parameters', [
    ['URL', report.url],
    ['started', report.startedAt || '–'],
    ['mode', report.mode],
    ['connections', wshubFormat(report.connections.target) + ' at ' + wshubFormat(report.connectRate) + '/s, ' + wshubFormat(report.connectTimeoutMs) + ' ms timeout'],
    ['messages', wshubFormat(report.messageSize) + ' bytes, ' + (report.ratePerConnection ? wshubFormat(report.ratePerConnection) + '/s per connection' : 'closed loop')],
    ['load workers', wshubFormat(report.workers)],
    ['error budget', report.maxErrors === null ? 'none' : wshubFormat(report.maxErrors)],
  ]);
  const { connections, messages } = report;
  table('totals', [
    ['sending time', wshubFormat(report.durationSeconds, 3) + ' s'],
    ['connections', wshubFormat(connections.established) + ' established, ' + wshubFormat(connections.failed) + ' failed (' + byCount(connections.failedByReason) + '), ' + wshubFormat(connections.unexpectedCloses) + ' closed unexpectedly', 'total-connections'],
    ['connect time', percentiles(connections.connectMs), 'total-connect'],
    ['messages', wshubFormat(messages.sent) + ' sent, ' + wshubFormat(messages.received) + ' received, ' + wshubFormat(messages.lost) + ' lost', 'total-messages'],
    ['throughput', wshubFormat(messages.sentPerSecond) + ' msg/s sent, ' + wshubFormat(messages.receivedPerSecond) + ' msg/s received', 'total-throughput'],
    ['latency', percentiles(report.latencyMs), 'total-latency'],
    ['close codes', byCount(report.closeCodes), 'total-closes'],
    ['errors', wshubFormat(report.errors) + (report.passed ? ' (passed)' : ' (FAILED)'), 'passed'],
  ]);
  $('passed').dataset.passed = String(report.passed);
  wshubResizeWithWindow(() => Object.keys(charts).map((id) => ({ container: $(id), chart: charts[id] })));
})();
`;

export function benchReportHtml(report: BenchReport): string {
  const loop = report.ratePerConnection === 0 ? 'closed loop' : `${report.ratePerConnection} msg/s each`;
  return reportHtml({
    title: `wshub bench ${report.url}`,
    subtitle: `${report.mode}, ${report.connections.target} connections, ${loop}, ${report.messageSize}-byte messages${report.startedAt ? `, started ${report.startedAt}` : ''}`,
    data: report,
    body: BODY,
    style: STYLE,
    script: SCRIPT,
  });
}
