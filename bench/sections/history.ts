import { setTimeout as sleep } from 'node:timers/promises';
import { RedisServer } from '../../test/helpers/redis.js';
import type { LoadgenResult } from '../loadgen.js';
import { type BenchServer, startBenchServer } from '../servers.js';
import {
  fmt,
  fmtStat,
  latencyOf,
  medianOf,
  ratioText,
  type Section,
  type Suite,
  stat,
  waitForLog,
} from '../suite.js';

/**
 * Room history (issue 16): broadcast with --history-size against the same without, in the same run
 * (alternating), on one node (memory) and across two nodes (Redis Streams + the publish script
 * against plain pub/sub); then a resume of 10,000 missed messages (?since=EPOCH:0 over wshub.v1).
 * The load generator's subscribers are raw clients: the figures are the cost of storing and
 * sequencing every message, not of the v1 JSON frames (which a resume measures).
 */
async function run(suite: Suite): Promise<void> {
  const { options, warnings, rows, say, addRow, printTable, fanoutThroughNodes } = suite;
  let redis: RedisServer | undefined;
  try {
    redis = await RedisServer.start();
  } catch (error) {
    warnings.push(`history: Redis rows not measured: ${(error as Error).message}`);
  }
  const subscribers = options.quick ? 100 : 1000;
  const window = 16;
  const history = ['--history-size=10000'];
  const node = (logName: string, extra: string[]) =>
    startBenchServer('wshub', 'broadcast', {
      core: undefined,
      nofile: subscribers + 1024,
      wshubFlags: ['--mode=broadcast', ...extra],
      logName,
    });
  const lines: string[][] = [];
  const resumeLines: string[][] = [];
  const setups: Array<{ name: string; off: string[]; on: string[]; twoNodes: boolean }> = [
    { name: 'one node (memory)', off: [], on: history, twoNodes: false },
  ];
  if (redis) {
    const url = `--backplane=${redis.url}`;
    setups.push({ name: 'two nodes (Redis)', off: [url], on: [url, ...history], twoNodes: true });
  }
  try {
    for (const setup of setups) {
      const started = await Promise.all(
        setup.twoNodes
          ? [
              node('wshub-off-a', setup.off),
              node('wshub-off-b', setup.off),
              node('wshub-on-a', setup.on),
              node('wshub-on-b', setup.on),
            ]
          : [node('wshub-off', setup.off), node('wshub-on', setup.on)],
      );
      try {
        if (setup.twoNodes) for (const server of started) await waitForLog(server, /Backplane connected/);
        const [offSub, offPub, onSub, onPub] = setup.twoNodes
          ? [started[1], started[0], started[3], started[2]]
          : [started[0], started[0], started[1], started[1]];
        const results: { on: LoadgenResult[]; off: LoadgenResult[] } = { on: [], off: [] };
        for (let run = 0; run < options.runs; run++) {
          const order = run % 2 === 0 ? (['on', 'off'] as const) : (['off', 'on'] as const);
          for (const variant of order) {
            const [target, publisher] = (variant === 'on' ? [onSub, onPub] : [offSub, offPub]) as [
              BenchServer,
              BenchServer,
            ];
            const result = await fanoutThroughNodes(
              target,
              publisher,
              subscribers,
              window,
              `history ${setup.name} ${variant}`,
            );
            results[variant].push(result);
          }
        }
        const label = `${setup.name}, 1 → ${subscribers.toLocaleString('en-US')} subs, window ${window}`;
        const row = addRow(
          'history',
          label,
          'deliveries/s',
          true,
          { wshub: results.on.map((r) => r.per_s), ws: results.off.map((r) => r.per_s) },
          {
            comparison: 'wshub = --history-size=10000; ws = the same without history',
            p50_us: { on: medianOf(results.on, 'p50_us'), off: medianOf(results.off, 'p50_us') },
            p99_us: { on: medianOf(results.on, 'p99_us'), off: medianOf(results.off, 'p99_us') },
          },
        );
        lines.push([
          label,
          fmtStat(row.wshub),
          latencyOf(results.on),
          fmtStat(row.ws),
          latencyOf(results.off),
          ratioText(row),
        ]);
        // Resume: 10,000 messages published on the "on" setup, then a wshub.v1 client resumes from offset 0.
        const resumeMs: number[] = [];
        for (let run = 0; run < options.runs; run++) {
          resumeMs.push(await resumeTime(onPub as BenchServer, onSub as BenchServer, `resume${run}`, 10_000));
        }
        const resume = stat(resumeMs);
        resumeLines.push([
          setup.name,
          `${fmt(resume.median)} ms [${fmt(resume.min)}–${fmt(resume.max)}]`,
          fmt(10_000 / (resume.median / 1000)),
        ]);
        rows.push({
          section: 'history',
          case: `resume of 10,000 missed messages, ${setup.name}`,
          unit: 'ms',
          higherIsBetter: false,
          wshub: resume,
          ws: resume,
          ratio: undefined,
          extra: { messagesPerSecond: 10_000 / (resume.median / 1000) },
        });
      } finally {
        await Promise.all(started.map((server) => server.stop()));
      }
    }
  } finally {
    await redis?.stop();
  }
  say(
    `history — broadcast with --history-size=10000 against without, alternating in one run; 20 B messages, deliveries/s and publish-to-receive p50/p99 µs (median [min–max] of ${options.runs}; not pinned)`,
  );
  printTable(['case', 'history on', 'p50/p99 µs', 'history off', 'p50/p99 µs', 'ratio'], lines);
  say(
    'history — resume: a wshub.v1 client connects with ?since=EPOCH:0 after 10,000 messages (20 B) it missed; time from the upgrade request to the last replayed frame',
  );
  printTable(['setup', 'resume of 10,000', 'messages/s'], resumeLines);
}

/** Publishes `count` messages to a fresh room on `publisher`, then times a resume of all of them on `subscriber`. */
async function resumeTime(
  publisher: BenchServer,
  subscriber: BenchServer,
  room: string,
  count: number,
): Promise<number> {
  const { WebSocket } = await import('ws');
  const open = (url: string, protocol?: string): Promise<InstanceType<typeof WebSocket>> =>
    new Promise((resolve, reject) => {
      const ws = protocol ? new WebSocket(url, protocol) : new WebSocket(url);
      ws.once('open', () => resolve(ws));
      ws.once('error', reject);
    });
  const frames = (
    ws: InstanceType<typeof WebSocket>,
    until: (frame: { type: string; offset: number; epoch: string }) => boolean,
  ) =>
    new Promise<{ type: string; offset: number; epoch: string }>((resolve, reject) => {
      ws.on('message', (data: Buffer) => {
        const frame = JSON.parse(data.toString()) as { type: string; offset: number; epoch: string };
        if (until(frame)) resolve(frame);
      });
      // Never wait forever: a client the server closed (e.g. as a slow consumer) gets no more frames.
      ws.once('close', (code: number, reason: Buffer) =>
        reject(new Error(`history resume: the server closed a bench client (${code} ${String(reason)})`)),
      );
    });
  // A v1 watcher on the publisher's node learns the epoch and when the last message is stored.
  const watcher = await open(`ws://127.0.0.1:${publisher.port}/ws/${room}`, 'wshub.v1');
  const stored = frames(watcher, (frame) => frame.type === 'message' && frame.offset === count);
  const sender = await open(`ws://127.0.0.1:${publisher.port}/ws/${room}`);
  const payload = Buffer.alloc(20, 0x61);
  for (let i = 0; i < count; i++) {
    sender.send(payload);
    if (i % 500 === 499) await sleep(5);
  }
  const last = await stored;
  sender.close();
  watcher.close();
  const started = performance.now();
  const resumed = await open(
    `ws://127.0.0.1:${subscriber.port}/ws/${room}?since=${last.epoch}:0`,
    'wshub.v1',
  );
  await frames(resumed, (frame) => frame.type === 'message' && frame.offset === count);
  const elapsed = performance.now() - started;
  resumed.close();
  return elapsed;
}

export const historySection: Section = { name: 'history', run };
