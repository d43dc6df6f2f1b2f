import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { connect as netConnect, type Socket } from 'node:net';
import { pathToFileURL } from 'node:url';
import { flag, flagsHelp, parseFlags, runScript } from '../src/config/args.js';
import { formatDuration } from '../src/config/duration.js';
import { boolean, duration, integer } from '../src/config/kinds.js';
import { clientFrame, TestClient } from '../test/helpers/clients.js';
import { metricValue, waitForMetric } from '../test/helpers/metrics.js';
import { type SpawnedServer, spawnServer } from '../test/helpers/server.js';

/**
 * npm run soak -- [--cycles=100000] [--concurrency=50] [--broadcast-duration=60s]
 *                 [--subscribers=200] [--rate=200] [--max-time=15m] [--compression]
 *
 * Two bounded loopback runs against a spawned wshub, printing the server's RSS
 * and V8 heap (both after a forced GC) at intervals:
 *  1. connect/disconnect cycles (graceful closes, resets, a message then close);
 *  2. a long broadcast run with subscriber churn (with --compression, half the
 *     subscribers negotiate permessage-deflate).
 * Leak criterion, per run: after a warm-up (the first sample), the heap after GC
 * may grow by at most HEAP_GROWTH_LIMIT and RSS by at most RSS_GROWTH_LIMIT, and
 * websocket_connections must return to exactly 0. Exit 1 on failure.
 */
const MiB = 1024 * 1024;
const HEAP_GROWTH_LIMIT = 8 * MiB;
const RSS_GROWTH_LIMIT = 48 * MiB;

const delay = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

interface Sample {
  readonly label: string;
  readonly rss: number;
  readonly heap: number;
}

async function spawnForSoak(flags: string[]): Promise<SpawnedServer> {
  const preload = pathToFileURL(new URL('./soak-gc-preload.js', import.meta.url).pathname).href;
  const server = await spawnServer(['--stats-interval=0', ...flags], { NODE_OPTIONS: `--import=${preload}` });
  // Connect/disconnect log lines are not needed here: keep the captured log bounded.
  const trim = setInterval(() => server.stdout.lines.splice(0), 1000);
  void server.exited.then(() => clearInterval(trim));
  return server;
}

/** The server's memory after a full GC: RSS from /proc, heap from its own metrics. */
async function measure(server: SpawnedServer, label: string): Promise<Sample> {
  server.child.kill('SIGUSR2');
  await delay(300);
  server.child.kill('SIGUSR2');
  await delay(300);
  const status = readFileSync(`/proc/${server.child.pid}/status`, 'utf8');
  const rss = Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1]) * 1024;
  const heap = (await metricValue(server.metricsUrl, 'nodejs_heap_size_used_bytes')) ?? Number.NaN;
  return { label, rss, heap };
}

const mib = (bytes: number): string => `${(bytes / MiB).toFixed(1)} MiB`;

function judge(name: string, samples: readonly Sample[], failures: string[]): void {
  const warm = samples[0];
  const last = samples[samples.length - 1];
  if (warm === undefined || last === undefined || samples.length < 2) {
    failures.push(`${name}: not enough samples`);
    return;
  }
  const heapGrowth = last.heap - warm.heap;
  const rssGrowth = last.rss - warm.rss;
  console.log(
    `soak: ${name}: after warm-up heap ${mib(warm.heap)} -> ${mib(last.heap)} (${heapGrowth >= 0 ? '+' : ''}${mib(heapGrowth)}, limit +${mib(HEAP_GROWTH_LIMIT)}), RSS ${mib(warm.rss)} -> ${mib(last.rss)} (${rssGrowth >= 0 ? '+' : ''}${mib(rssGrowth)}, limit +${mib(RSS_GROWTH_LIMIT)})`,
  );
  if (heapGrowth > HEAP_GROWTH_LIMIT) failures.push(`${name}: heap grew by ${mib(heapGrowth)} after warm-up`);
  if (rssGrowth > RSS_GROWTH_LIMIT) failures.push(`${name}: RSS grew by ${mib(rssGrowth)} after warm-up`);
}

const HANDSHAKE = (port: number): string =>
  [
    'GET /ws HTTP/1.1',
    `Host: 127.0.0.1:${port}`,
    'Upgrade: websocket',
    'Connection: Upgrade',
    'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==',
    'Sec-WebSocket-Version: 13',
    '',
    '',
  ].join('\r\n');
const CLOSE_1000 = clientFrame(0x8, Buffer.from([0x03, 0xe8]));
const HELLO = clientFrame(0x1, Buffer.from('soak'));

/** One connect/disconnect cycle with a raw client; `kind` picks how it ends. */
async function cycle(port: number, kind: number): Promise<boolean> {
  const socket: Socket = netConnect(port, '127.0.0.1');
  socket.on('error', () => {});
  const timer = setTimeout(() => socket.destroy(), 10_000);
  try {
    let received = '';
    const upgraded = new Promise<boolean>((resolve) => {
      socket.on('data', function onData(chunk: Buffer) {
        received += chunk.toString('latin1');
        if (received.includes('\r\n\r\n')) {
          socket.off('data', onData);
          resolve(received.startsWith('HTTP/1.1 101'));
        }
      });
      socket.once('close', () => resolve(false));
    });
    socket.write(HANDSHAKE(port));
    if (!(await upgraded)) return false;
    if (kind === 0) {
      socket.destroy(); // the client vanishes without a close frame
      return true;
    }
    if (kind === 1) {
      socket.write(HELLO); // a message, then a clean close
      await once(socket, 'data');
    }
    socket.write(CLOSE_1000);
    socket.resume();
    await once(socket, 'close');
    return true;
  } catch {
    return false;
  } finally {
    clearTimeout(timer);
    socket.destroy();
  }
}

async function connectDisconnect(
  cycles: number,
  concurrency: number,
  deadline: number,
  failures: string[],
): Promise<void> {
  const server = await spawnForSoak([]);
  const samples: Sample[] = [];
  try {
    const interval = Math.max(1000, Math.floor(cycles / 10));
    let started = 0;
    let done = 0;
    let failed = 0;
    let nextSample = interval;
    const begun = Date.now();
    const worker = async (): Promise<void> => {
      while (started < cycles && Date.now() < deadline) {
        const kind = started++ % 10; // 1 in 10 resets, 1 in 10 echoes a message first, the rest close cleanly
        if (!(await cycle(server.port, kind === 0 ? 0 : kind === 1 ? 1 : 2))) failed++;
        done++;
      }
    };
    const workers = Array.from({ length: concurrency }, () => worker());
    while (done < cycles && Date.now() < deadline) {
      await delay(200);
      if (done >= nextSample) {
        nextSample += interval;
        const sample = await measure(server, `${done} cycles`);
        samples.push(sample);
        const rate = Math.round(done / ((Date.now() - begun) / 1000));
        console.log(
          `soak: connect/disconnect ${done}/${cycles} (${rate}/s): RSS ${mib(sample.rss)}, heap ${mib(sample.heap)} (after GC)`,
        );
      }
    }
    await Promise.all(workers);
    const open = await waitForMetric(server.metricsUrl, 'websocket_connections', 0, {}, 30_000);
    const final = await measure(server, 'end');
    samples.push(final);
    console.log(
      `soak: connect/disconnect done: ${done} cycles (${failed} failed handshakes) in ${((Date.now() - begun) / 1000).toFixed(0)} s; at rest RSS ${mib(final.rss)}, heap ${mib(final.heap)}`,
    );
    if (done < cycles)
      failures.push(`connect/disconnect: only ${done} of ${cycles} cycles before --max-time`);
    if (failed > cycles / 1000) failures.push(`connect/disconnect: ${failed} cycles failed`);
    if (open !== 0) failures.push(`connect/disconnect: websocket_connections is ${open}, expected 0`);
    const accepted = await metricValue(server.metricsUrl, 'websocket_connections_total');
    const ended = await metricValue(server.metricsUrl, 'websocket_disconnections_total');
    if (accepted !== ended)
      failures.push(`connect/disconnect: connections_total ${accepted} != disconnections_total ${ended}`);
    // The first sample is the warm-up (pools, JIT, caches filled).
    judge('connect/disconnect', samples, failures);
  } finally {
    server.kill();
    await server.exited;
  }
}

async function broadcast(
  durationMs: number,
  subscribers: number,
  rate: number,
  compression: boolean,
  deadline: number,
  failures: string[],
): Promise<void> {
  const server = await spawnForSoak(['--mode=broadcast', ...(compression ? ['--compression'] : [])]);
  const url = server.url;
  // With --compression, every other subscriber negotiates permessage-deflate.
  let opened = 0;
  const openSubscriber = (): Promise<TestClient> =>
    TestClient.open(url, { perMessageDeflate: compression && opened++ % 2 === 0 });
  const clients: TestClient[] = [];
  const samples: Sample[] = [];
  let received = 0;
  const count = (client: TestClient): void => {
    client.ws.on('message', () => {
      received++;
      client.received.length = 0; // counted, not kept
    });
  };
  try {
    for (let i = 0; i < subscribers; i++) {
      const client = await openSubscriber();
      count(client);
      clients.push(client);
    }
    const publisher = await TestClient.open(url);
    const payload = Buffer.alloc(1024, 0x61).toString();
    const begun = Date.now();
    const end = Math.min(begun + durationMs, deadline);
    const sampleEvery = Math.max(5000, Math.floor(durationMs / 10));
    let nextSample = begun + sampleEvery;
    let sent = 0;
    let churned = 0;
    while (Date.now() < end) {
      const tickStart = Date.now();
      for (let i = 0; i < rate / 10; i++) {
        publisher.ws.send(payload);
        sent++;
      }
      publisher.received.length = 0;
      // Churn: one subscriber in 50 leaves and a new one joins, every tick.
      for (let i = 0; i < Math.max(1, subscribers / 50); i++) {
        const index = (churned++ * 7919) % clients.length;
        const leaving = clients[index];
        const joining = await openSubscriber();
        count(joining);
        clients[index] = joining;
        leaving?.ws.terminate();
      }
      if (Date.now() >= nextSample) {
        nextSample += sampleEvery;
        const sample = await measure(server, `${Math.round((Date.now() - begun) / 1000)} s`);
        samples.push(sample);
        console.log(
          `soak: broadcast t=${sample.label}: ${sent} sent, ${received} delivered, ${churned} reconnects, RSS ${mib(sample.rss)}, heap ${mib(sample.heap)} (after GC)`,
        );
      }
      await delay(Math.max(0, 100 - (Date.now() - tickStart)));
    }
    await Promise.all([publisher, ...clients].map((client) => client.close().catch(() => undefined)));
    const open = await waitForMetric(server.metricsUrl, 'websocket_connections', 0, {}, 30_000);
    const final = await measure(server, 'end');
    samples.push(final);
    const dropped = await metricValue(server.metricsUrl, 'websocket_messages_dropped_total', {
      reason: 'slow_consumer',
    });
    console.log(
      `soak: broadcast done: ${sent} sent to ${subscribers} subscribers, ${received} delivered, ${churned} reconnects, ${dropped ?? 0} dropped (slow consumer); at rest RSS ${mib(final.rss)}, heap ${mib(final.heap)}`,
    );
    if (open !== 0) failures.push(`broadcast: websocket_connections is ${open}, expected 0`);
    if (received === 0) failures.push('broadcast: nothing was delivered');
    judge('broadcast', samples, failures);
  } finally {
    for (const client of clients) client.ws.terminate();
    server.kill();
    await server.exited;
  }
}

/** `npm run soak -- …`: the flags, parsed by the shared parser (src/config/args.ts). */
export const SOAK_FLAGS = {
  cycles: flag({ kind: integer(1, 10_000_000), default: 100_000, doc: 'Connect/disconnect cycles' }),
  concurrency: flag({ kind: integer(1, 500), default: 50, doc: 'Cycles in flight at once' }),
  'broadcast-duration': flag({
    kind: duration(1000, 24 * 3600_000),
    default: 60_000,
    doc: 'How long the broadcast run lasts',
  }),
  subscribers: flag({ kind: integer(1, 10_000), default: 200, doc: 'Subscribers of the broadcast run' }),
  rate: flag({ kind: integer(1, 100_000), default: 200, doc: 'Broadcast messages per second' }),
  'max-time': flag({
    kind: duration(1000, 24 * 3600_000),
    default: 15 * 60_000,
    doc: 'Upper bound on the whole soak',
  }),
  compression: flag({
    kind: boolean(),
    default: false,
    doc: 'Half the subscribers negotiate permessage-deflate',
  }),
} as const;

async function main(argv: readonly string[]): Promise<number> {
  const { values, help } = parseFlags(argv, SOAK_FLAGS, 'npm run soak');
  if (help) {
    console.log(['Usage: npm run soak -- [flags]', '', 'Flags:', ...flagsHelp(SOAK_FLAGS)].join('\n'));
    return 0;
  }
  const { cycles, concurrency, subscribers, rate } = values;
  const broadcastMs = values['broadcast-duration'];
  const maxMs = values['max-time'];
  const deadline = Date.now() + maxMs;
  const failures: string[] = [];
  console.log(
    `soak: ${cycles} connect/disconnect cycles (${concurrency} at a time), then ${formatDuration(broadcastMs)} of broadcast to ${subscribers} subscribers at ${rate} msg/s; all on 127.0.0.1, at most ${formatDuration(maxMs)}`,
  );
  await connectDisconnect(cycles, concurrency, deadline, failures);
  await broadcast(broadcastMs, subscribers, rate, values.compression, deadline, failures);
  if (failures.length > 0) {
    console.error(`soak: FAILED\n- ${failures.join('\n- ')}`);
    return 1;
  }
  console.log('soak: passed');
  return 0;
}

await runScript('soak', () => main(process.argv.slice(2)));
