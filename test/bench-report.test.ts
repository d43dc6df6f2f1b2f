import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { type SuiteDocument, writeSuiteReport } from '../bench/report-html.js';
import type { BenchReport } from '../src/bench/report.js';
import { reportData } from '../src/charts/document.js';
import { type Browser, launchChromium } from './helpers/browser.js';
import { type InProcessServer, runWshub, startServer } from './helpers/server.js';

const ARTIFACTS = fileURLToPath(new URL('../../test-artifacts/', import.meta.url));

const sum = (values: readonly number[]): number => values.reduce((a, b) => a + b, 0);

/** Opens an HTML file from disk and returns every chart's data as uPlot holds it. */
async function openReport(
  browser: Browser,
  file: string,
  requests: string[],
): Promise<Record<string, Array<Array<number | null>>>> {
  const onRequest = (request: { url(): string }) => requests.push(request.url());
  browser.page.on('request', onRequest);
  try {
    await browser.page.goto(pathToFileURL(file).href);
    await browser.page.locator('.uplot canvas').first().waitFor();
    return (await browser.page.evaluate(
      `Object.fromEntries(Object.entries(window.wshubCharts).map(([id, chart]) => [id, chart.data]))`,
    )) as Record<string, Array<Array<number | null>>>;
  } finally {
    browser.page.off('request', onRequest);
  }
}

describe('wshub bench --report=FILE.html', () => {
  let server: InProcessServer;
  let browser: Browser;
  const dir = mkdtempSync(join(tmpdir(), 'wshub-report-'));

  before(async () => {
    server = await startServer(['--stats-interval=0']);
    browser = await launchChromium({ width: 1200, height: 900 });
  });

  after(async () => {
    await browser?.close();
    await server?.app.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('writes one self-contained file with the same data as --json, drawn from it when opened from disk', async () => {
    const file = join(dir, 'run.html');
    const run = runWshub([
      'bench',
      server.url,
      '--connections=4',
      '--rate=50',
      '--duration=2500ms',
      '--workers=2',
      '--json',
      `--report=${file}`,
    ]);
    const { code } = await run.exited;
    assert.equal(code, 0, run.stderr.lines.join('\n'));
    const report = JSON.parse(run.stdout.lines.join('\n')) as BenchReport;
    assert.match(run.stderr.lines.join('\n'), /HTML report written to .*run\.html/);
    const html = readFileSync(file, 'utf8');
    assert.deepEqual(reportData(html), report, 'the HTML carries exactly the --json report');
    assert.doesNotMatch(html, /https?:\/\//, 'no URL to fetch anything from');
    assert.match(
      html,
      /<meta http-equiv="Content-Security-Policy" content="default-src 'none'; script-src 'sha256-/,
    );

    // The timeline adds up to the totals.
    const { timeline } = report;
    assert.ok(timeline.length >= 3, `${timeline.length} seconds`);
    assert.equal(sum(timeline.map((s) => s.sent)), report.messages.sent);
    assert.equal(sum(timeline.map((s) => s.received)), report.messages.received);
    assert.equal(sum(timeline.map((s) => s.latencyMs.count)), report.latencyMs.count);
    assert.equal(sum(report.latencyHistogram.counts), report.latencyMs.count);
    assert.equal(report.latencyHistogram.counts.length, report.latencyHistogram.boundsMs.length);
    assert.deepEqual(
      timeline.reduce<Record<string, number>>((codes, s) => {
        for (const [closeCode, n] of Object.entries(s.closeCodes))
          codes[closeCode] = (codes[closeCode] ?? 0) + n;
        return codes;
      }, {}),
      report.closeCodes,
    );
    assert.equal(Math.max(...timeline.map((s) => s.open)), 4);
    const busy = timeline.filter((s) => s.latencyMs.count > 0);
    assert.ok(busy.every((s) => (s.latencyMs.p50 as number) <= (s.latencyMs.max as number)));

    const requests: string[] = [];
    const charts = await openReport(browser, file, requests);
    const seconds = timeline.map((s) => s.second);
    assert.deepEqual(charts['chart-throughput'], [
      seconds,
      timeline.map((s) => s.sent),
      timeline.map((s) => s.received),
    ]);
    assert.deepEqual(charts['chart-latency'], [
      seconds,
      ...(['p50', 'p90', 'p99', 'max'] as const).map((key) => timeline.map((s) => s.latencyMs[key])),
    ]);
    assert.deepEqual(charts['chart-connections'], [seconds, timeline.map((s) => s.open)]);
    assert.deepEqual(charts['chart-errors']?.[0], seconds);
    assert.deepEqual(
      charts['chart-errors']?.[1],
      timeline.map((s) => s.closeCodes['1000'] ?? 0),
    );
    assert.deepEqual(charts['chart-histogram']?.[1], report.latencyHistogram.counts);
    const page = browser.page;
    assert.match(
      (await page.textContent('#total-messages')) ?? '',
      new RegExp(
        `^${report.messages.sent.toLocaleString('en-US')} sent, ${report.messages.received.toLocaleString('en-US')} received, 0 lost$`,
      ),
    );
    assert.match((await page.textContent('#total-closes')) ?? '', /^1000: 4$/);
    assert.equal(await page.getAttribute('#passed', 'data-passed'), 'true');
    assert.match((await page.textContent('.uplot .u-legend')) ?? '', /sent.*received/);
    assert.deepEqual(requests, [pathToFileURL(file).href], 'nothing but the file itself is loaded');
    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: join(ARTIFACTS, 'bench-report.png'), fullPage: true });
    assert.deepEqual(browser.errors, []);
  });

  it('an unwritable --report path is a usage error before any load is sent', async () => {
    const connectionsBefore = server.app.stats.connectionsTotal;
    const run = runWshub(['bench', server.url, `--report=${join(dir, 'missing', 'r.html')}`]);
    const { code } = await run.exited;
    assert.equal(code, 2);
    assert.match(
      run.stderr.lines.join('\n'),
      /cannot write --report=.*ENOENT.*\[WSHUB_REPORT_FILE_UNWRITABLE\]/,
    );
    assert.equal(server.app.stats.connectionsTotal, connectionsBefore, 'no connection was opened');
    const wrong = runWshub(['bench', server.url, '--report=out.txt']);
    assert.equal((await wrong.exited).code, 2);
    assert.match(
      wrong.stderr.lines.join('\n'),
      /invalid value for --report: "out\.txt"; expected a file name ending in \.html/,
    );
  });

  it('npm run bench --report: the suite rows as bar charts, ratios at a glance', async () => {
    const suite: SuiteDocument = {
      conditions: { date: '2026-12-07T03:00:00.000Z', cores: 2, node: 'v20' },
      warnings: ['load average was 3 at start'],
      results: [
        {
          section: 'echo',
          case: '64 B, 100 conns',
          unit: 'msg/s',
          higherIsBetter: true,
          wshub: { median: 90_000, min: 88_000, max: 91_000 },
          ws: { median: 80_000, min: 79_000, max: 81_000 },
          ratio: 1.125,
          ceiling: { median: 150_000, min: 150_000, max: 150_000 },
        },
        {
          section: 'memory',
          case: 'idle, 10,000 conns',
          unit: 'KiB/conn',
          higherIsBetter: false,
          wshub: { median: 4, min: 4, max: 4 },
          ws: { median: 5, min: 5, max: 5 },
          ratio: 0.8,
        },
      ],
    };
    const file = join(dir, 'suite.html');
    writeSuiteReport(file, suite);
    assert.deepEqual(reportData(readFileSync(file, 'utf8')), suite);
    const requests: string[] = [];
    const charts = await openReport(browser, file, requests);
    assert.deepEqual(charts['chart-ratios'], [
      [0, 1],
      [1.125, 0.8],
    ]);
    // echo: wshub, ws and the C reference side by side; memory: wshub and ws.
    assert.deepEqual(charts['chart-section-0'], [
      [0, 1, 2],
      [90_000, null, null],
      [null, 80_000, null],
      [null, null, 150_000],
    ]);
    assert.deepEqual(charts['chart-section-1'], [
      [0, 1],
      [4, null],
      [null, 5],
    ]);
    assert.match((await browser.page.textContent('#ratio-rows')) ?? '', /echo: 64 B, 100 conns ↑ — 1\.13×/);
    assert.deepEqual(requests, [pathToFileURL(file).href]);
    assert.deepEqual(browser.errors, []);
  });
});
