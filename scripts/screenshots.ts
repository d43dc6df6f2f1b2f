import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { launchChromium } from '../test/helpers/browser.js';
import { runWshub, spawnServer } from '../test/helpers/server.js';

/**
 * npm run screenshots: regenerates the README's pictures (issue 19),
 * docs/console.png and docs/bench-report.png, from a real run on loopback:
 * a spawned broadcast-mode wshub, three `wshub bench` runs against it (a
 * busy room, a quieter one, and clients asking for fault-injected closes,
 * so the disconnect chart has something to show), the console watched in
 * headless Chromium while they run, then the HTML report of the main run.
 * Bounded: about 40 seconds (the main run lasts RUN_SECONDS).
 */
const DOCS = fileURLToPath(new URL('../../docs/', import.meta.url));
const RUN_SECONDS = 30;
const delay = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

const scratch = mkdtempSync(join(tmpdir(), 'wshub-screenshots-'));
const reportFile = join(scratch, 'bench-report.html');
const server = await spawnServer([
  '--mode=broadcast',
  '--stats-interval=0',
  '--ping-interval=2s',
  '--allow-fault-injection',
]);
const browser = await launchChromium({ width: 1280, height: 900 });
try {
  mkdirSync(DOCS, { recursive: true });
  const origin = `http://127.0.0.1:${server.port}`;
  await browser.page.goto(`${origin}/`);
  await delay(3000);
  const room = (name: string): string => server.url.replace(/\/ws$/, `/ws/${name}`);
  const main = runWshub([
    'bench',
    room('lobby'),
    '--mode=broadcast',
    '--connections=40',
    '--connect-rate=20',
    '--rate=10',
    `--duration=${RUN_SECONDS}s`,
    '--json',
    `--report=${reportFile}`,
  ]);
  const quiet = runWshub([
    'bench',
    room('prices'),
    '--mode=broadcast',
    '--connections=8',
    '--rate=4',
    `--duration=${RUN_SECONDS - 4}s`,
  ]);
  await delay(12_000);
  // Clients that ask the server to close them (4000) a moment after connecting: server disconnects.
  const flaky = runWshub([
    'bench',
    `${room('flaky')}?close=4000&immediately`,
    '--connections=30',
    '--connect-rate=6',
    '--duration=5s',
  ]);
  await flaky.exited;
  await delay(4000);
  await browser.page.locator('#room-rows tr').first().waitFor();
  const live = await browser.page.locator('#rooms').boundingBox();
  await browser.page.screenshot({
    path: join(DOCS, 'console.png'),
    fullPage: true,
    clip: { x: 0, y: 0, width: 1280, height: Math.ceil((live?.y ?? 800) + (live?.height ?? 0) + 16) },
  });
  const results = await Promise.all([main.exited, quiet.exited, flaky.exited]);
  if (results[0].code !== 0) throw new Error(`the main bench run failed: ${main.stderr.lines.join('\n')}`);
  await browser.page.setViewportSize({ width: 1280, height: 900 });
  await browser.page.goto(pathToFileURL(reportFile).href);
  await browser.page.locator('.uplot canvas').first().waitFor();
  await browser.page.screenshot({ path: join(DOCS, 'bench-report.png'), fullPage: true });
  if (browser.errors.length > 0) throw new Error(`page errors: ${browser.errors.join('\n')}`);
  process.stdout.write(`wrote ${join(DOCS, 'console.png')} and ${join(DOCS, 'bench-report.png')}\n`);
} finally {
  await browser.close();
  server.kill('SIGTERM');
  await server.exited;
  rmSync(scratch, { recursive: true, force: true });
}
