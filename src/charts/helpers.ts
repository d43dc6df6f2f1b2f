/**
 * Browser code shared by the console's live charts and the bench reports
 * (issue 19), inlined after uPlot: `wshubChart(container, options)` builds a
 * uPlot chart with a title, labelled axes and a legend, sized to its container
 * and resized with the window; `wshubFormat` prints numbers for people.
 */
export const CHART_HELPERS = `
'use strict';
const WSHUB_COLORS = ['#2563eb', '#16a34a', '#dc2626', '#ca8a04', '#9333ea', '#0891b2', '#db2777', '#65a30d', '#ea580c', '#475569'];

function wshubFormat(value, digits) {
  if (value === null || value === undefined || Number.isNaN(value)) return '–';
  const abs = Math.abs(value);
  if (digits === undefined) digits = abs >= 100 || Number.isInteger(value) ? 0 : abs >= 10 ? 1 : 2;
  return value.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: 0 });
}

// options: { title, yLabel, xLabel, time (false: x is a plain number), log (y on a log scale), bars,
//   series: [{ label, color, unit }], data: [xs, ...ys], height, xValues (x tick and legend text) }
function wshubChart(container, options) {
  const axisStyle = { stroke: '#888', grid: { stroke: '#8883', width: 1 }, ticks: { stroke: '#8883', width: 1 } };
  const bars = options.bars ? uPlot.paths.bars({ size: [0.6, 80] }) : undefined;
  const config = {
    title: options.title,
    width: Math.max(280, container.clientWidth),
    height: options.height || 220,
    scales: {
      // Bars: half a slot of room on each side of the first and last, however few there are.
      x: options.bars
        ? { time: false, auto: false, range: () => [options.data[0][0] - 0.5, options.data[0][options.data[0].length - 1] + 0.5] }
        : { time: options.time !== false },
      y: options.log ? { distr: 3 } : { range: (u, min, max) => [Math.min(0, min), max > 0 ? max * 1.1 : 1] },
    },
    axes: [
      Object.assign({ label: options.xLabel || '', labelSize: options.xLabel ? 20 : 0 }, axisStyle,
        // A plain x (seconds, buckets, rows) counts whole units.
        options.time === false ? { incrs: [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200] } : {},
        options.xValues ? { values: (u, splits) => splits.map(options.xValues), splits: options.bars ? () => options.data[0] : undefined } : {}),
      Object.assign({ label: options.yLabel, labelSize: 20, size: 72, values: (u, splits) => splits.map((v) => wshubFormat(v)) }, axisStyle),
    ],
    series: [
      options.time === false ? { label: options.xLabel || 'x', value: (u, v) => (options.xValues ? options.xValues(v) : wshubFormat(v)) } : {},
    ].concat(options.series.map((s, i) => ({
      label: s.label,
      stroke: s.color || WSHUB_COLORS[i % WSHUB_COLORS.length],
      fill: options.bars ? (s.color || WSHUB_COLORS[i % WSHUB_COLORS.length]) + '99' : undefined,
      width: 2,
      spanGaps: false,
      paths: bars,
      points: { show: options.bars ? false : undefined },
      value: (u, v) => (v === null || v === undefined ? '–' : wshubFormat(v) + (s.unit ? ' ' + s.unit : '')),
    }))),
    legend: { live: true },
    cursor: { drag: { x: false, y: false } },
  };
  const chart = new uPlot(config, options.data, container);
  container.dataset.series = String(options.series.length);
  return chart;
}

function wshubResizeWithWindow(charts) {
  let pending = 0;
  window.addEventListener('resize', () => {
    cancelAnimationFrame(pending);
    pending = requestAnimationFrame(() => {
      for (const entry of charts()) entry.chart.setSize({ width: Math.max(280, entry.container.clientWidth), height: entry.chart.height });
    });
  });
}
`;
