import { connect as netConnect, type Socket } from 'node:net';
import { deflateRawSync } from 'node:zlib';
import { clientFrame, TestClient } from '../test/helpers/clients.js';
import { parseFrame } from '../test/helpers/frames.js';
import { metricValue } from '../test/helpers/metrics.js';

/**
 * The fuzzer behind `npm run fuzz` and test/fuzz.test.ts: random and mutated
 * frames, random handshakes and random disconnect timings against a running
 * wshub on loopback, while one well-behaved client keeps checking that it is
 * still served. Every loop is bounded in time and count; traffic goes to
 * 127.0.0.1 only.
 */
export interface FuzzTarget {
  readonly port: number;
  readonly metricsUrl: string;
  /** True while the server process is alive (a spawned server); checked after every session. */
  readonly alive: () => boolean;
}

export interface FuzzOptions {
  readonly durationMs: number;
  readonly seed: number;
  /** Fuzzing sessions running at once. */
  readonly concurrency?: number;
  /** Upper bound on sessions, whatever the duration. */
  readonly maxSessions?: number;
  /** The server negotiates permessage-deflate: also send compressed frames. */
  readonly compression?: boolean;
  readonly log?: (line: string) => void;
}

export interface FuzzReport {
  readonly seed: number;
  readonly sessions: number;
  readonly bytesSent: number;
  /** Close codes the server sent, with how often. */
  readonly closeCodes: Readonly<Record<string, number>>;
  /** Sessions per scenario. */
  readonly scenarios: Readonly<Record<string, number>>;
  readonly canaryRoundTrips: number;
  readonly canaryMaxMs: number;
  /** Exceptions in the fuzzer's own clients (bugs of the fuzzer; logged). */
  readonly fuzzerErrors: number;
  /** Everything that went wrong; empty when the server passed. */
  readonly failures: readonly string[];
}

/** mulberry32: small, fast, seedable; a failing run is replayed with its seed. */
export class Random {
  private state: number;
  constructor(seed: number) {
    this.state = seed >>> 0;
  }
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.next() * items.length)] as T;
  }
  bytes(length: number): Buffer {
    const out = Buffer.alloc(length);
    for (let i = 0; i < length; i++) out[i] = Math.floor(this.next() * 256);
    return out;
  }
}

const SCENARIOS = [
  'garbage',
  'mutated-frames',
  'valid-frames',
  'bad-handshake',
  'early-disconnect',
  'ws-client',
] as const;
type Scenario = (typeof SCENARIOS)[number];

const delay = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

function withTimeout<T>(work: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    work,
    new Promise<undefined>((resolve) => {
      timer = setTimeout(() => resolve(undefined), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

function handshake(rng: Random, port: number, compression: boolean): string {
  const lines = [
    'GET /ws HTTP/1.1',
    `Host: 127.0.0.1:${port}`,
    'Upgrade: websocket',
    'Connection: Upgrade',
    `Sec-WebSocket-Key: ${rng.bytes(16).toString('base64')}`,
    'Sec-WebSocket-Version: 13',
  ];
  if (compression && rng.chance(0.6)) {
    const params = ['permessage-deflate'];
    if (rng.chance(0.5)) params.push('client_max_window_bits');
    if (rng.chance(0.3)) params.push(`server_max_window_bits=${rng.int(8, 15)}`);
    if (rng.chance(0.3)) params.push('server_no_context_takeover');
    if (rng.chance(0.2)) params.push('client_no_context_takeover');
    lines.push(`Sec-WebSocket-Extensions: ${params.join('; ')}`);
  }
  return `${lines.join('\r\n')}\r\n\r\n`;
}

/** A handshake with one thing wrong (or a few). */
function badHandshake(rng: Random, port: number, compression: boolean): Buffer {
  const lines = handshake(rng, port, compression).split('\r\n').slice(0, -2);
  const faults = rng.int(1, 3);
  for (let i = 0; i < faults; i++) {
    const at = rng.int(0, lines.length - 1);
    switch (rng.int(0, 9)) {
      case 0:
        lines.splice(at, 1);
        break;
      case 1:
        lines[at] = `${lines[at]}${rng.bytes(rng.int(1, 20)).toString('latin1')}`;
        break;
      case 2:
        lines.push('Sec-WebSocket-Version: 8');
        break;
      case 3:
        lines.push(`Sec-WebSocket-Key: ${rng.bytes(rng.int(0, 30)).toString('base64')}`);
        break;
      case 4:
        lines[0] = rng.pick([
          'POST /ws HTTP/1.1',
          'GET /nope HTTP/1.1',
          'GET /ws HTTP/1.0',
          'GET  HTTP/1.1',
          'GET /ws?x=1 HTTP/1.1',
        ]);
        break;
      case 5:
        lines.push(`X-Filler: ${'a'.repeat(rng.int(1000, 20_000))}`);
        break;
      case 6:
        lines.push(
          `Sec-WebSocket-Extensions: ${rng.pick(['permessage-deflate; server_max_window_bits=7', 'permessage-deflate; client_max_window_bits=99', 'x-unknown', 'permessage-deflate;;', '"'])}`,
        );
        break;
      case 7:
        lines.push(`Sec-WebSocket-Protocol: ${rng.pick(['', ',', 'chat, chat', 'a b'])}`);
        break;
      case 8:
        lines[at] = rng.bytes(rng.int(1, 40)).toString('latin1');
        break;
      default:
        lines.push(`Upgrade: ${rng.pick(['h2c', 'websocket, foo', ''])}`);
    }
  }
  return Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'latin1');
}

function validUtf8(rng: Random, length: number): Buffer {
  const alphabet = ['a', 'Z', ' ', 'é', '€', '😀', '\u0000', '{"k":1}'].map((text) => Buffer.from(text));
  const pieces: Buffer[] = [];
  let bytes = 0;
  while (bytes < length) {
    const piece = rng.pick(alphabet);
    pieces.push(piece);
    bytes += piece.length;
  }
  return Buffer.concat(pieces, bytes);
}

function payload(rng: Random): Buffer {
  const size = rng.pick([0, 1, 2, 5, 125, 126, 127, 1000, 65_535, 65_536, rng.int(0, 4000)]);
  return rng.chance(0.5) ? validUtf8(rng, size) : rng.bytes(size);
}

/** A plausible frame sequence: messages (some fragmented, some compressed), controls, a close. */
function frames(rng: Random, compression: boolean): Buffer[] {
  const out: Buffer[] = [];
  const count = rng.int(1, 12);
  for (let i = 0; i < count; i++) {
    const roll = rng.next();
    if (roll < 0.45) {
      const body = payload(rng);
      const opcode = rng.chance(0.5) ? 0x1 : 0x2;
      if (compression && rng.chance(0.4)) {
        const compressed = deflateRawSync(body, { finishFlush: 2 }).subarray(0, -4);
        out.push(clientFrame(opcode, compressed, { rsv: 0x40 }));
      } else {
        out.push(clientFrame(opcode, body));
      }
    } else if (roll < 0.65) {
      const body = payload(rng);
      const pieces = rng.int(2, 6);
      const step = Math.max(1, Math.ceil(body.length / pieces));
      for (let at = 0, first = true; first || at < body.length; at += step, first = false) {
        const last = at + step >= body.length;
        out.push(
          clientFrame(first ? rng.pick([0x1, 0x2]) : 0x0, body.subarray(at, at + step), { fin: last }),
        );
        if (rng.chance(0.2)) out.push(clientFrame(0x9, rng.bytes(rng.int(0, 125))));
      }
    } else if (roll < 0.8) {
      out.push(clientFrame(rng.pick([0x9, 0xa]), rng.bytes(rng.int(0, 125))));
    } else if (roll < 0.9) {
      const code = rng.pick([1000, 1001, 1002, 1005, 1006, 3000, 4999, 999, 0, 5000, rng.int(0, 65535)]);
      const reason = rng.chance(0.7) ? validUtf8(rng, rng.int(0, 60)) : rng.bytes(rng.int(0, 60));
      out.push(
        clientFrame(0x8, Buffer.concat([Buffer.from([code >> 8, code & 0xff]), reason]).subarray(0, 125)),
      );
    } else {
      // Reserved opcodes, RSV bits, oversize controls, lengths that are never sent.
      const kind = rng.int(0, 3);
      if (kind === 0)
        out.push(clientFrame(rng.pick([3, 4, 5, 6, 7, 11, 12, 13, 14, 15]), rng.bytes(rng.int(0, 20))));
      else if (kind === 1)
        out.push(clientFrame(0x1, rng.bytes(10), { rsv: rng.pick([0x10, 0x20, 0x40, 0x70]) }));
      else if (kind === 2) out.push(clientFrame(0x9, rng.bytes(rng.int(126, 300))));
      else out.push(Buffer.from([0x82, 0xff, 0, 0, 0, rng.int(0, 255), 0, 0, 0, 0, 1, 2, 3, 4]));
    }
  }
  return out;
}

function mutate(rng: Random, data: Buffer): Buffer {
  let bytes = Buffer.from(data);
  const edits = rng.int(1, 4);
  for (let i = 0; i < edits && bytes.length > 0; i++) {
    const at = rng.int(0, bytes.length - 1);
    switch (rng.int(0, 4)) {
      case 0:
        bytes[at] = (bytes[at] as number) ^ (1 << rng.int(0, 7));
        break;
      case 1:
        bytes[at] = rng.int(0, 255);
        break;
      case 2:
        bytes = Buffer.concat([bytes.subarray(0, at), rng.bytes(rng.int(1, 16)), bytes.subarray(at)]);
        break;
      case 3:
        bytes = Buffer.concat([
          bytes.subarray(0, at),
          bytes.subarray(Math.min(bytes.length, at + rng.int(1, 16))),
        ]);
        break;
      default:
        bytes = bytes.subarray(0, at);
    }
  }
  return bytes;
}

/** Writes `data` in random pieces with random pauses, as a slow or odd network would. */
async function writeInPieces(rng: Random, socket: Socket, data: Buffer, deadline: number): Promise<void> {
  let at = 0;
  while (at < data.length && !socket.destroyed && Date.now() < deadline) {
    const piece = rng.chance(0.5) ? data.length - at : rng.int(1, Math.min(4096, data.length - at));
    socket.write(data.subarray(at, at + piece));
    at += piece;
    if (rng.chance(0.3)) await delay(rng.int(0, 5));
  }
}

/** Resolves with the first of `event`, 'error' or 'close' (never rejects: a socket error is an outcome here). */
function settled(socket: Socket, event: string): Promise<string> {
  return new Promise((resolve) => {
    const done = (name: string) => () => {
      socket.off(event, onEvent);
      socket.off('error', onError);
      socket.off('close', onClose);
      resolve(name);
    };
    const onEvent = done(event);
    const onError = done('error');
    const onClose = done('close');
    socket.once(event, onEvent);
    socket.once('error', onError);
    socket.once('close', onClose);
  });
}

class Tally {
  sessions = 0;
  fuzzerErrors = 0;
  clientResets = 0;
  bytesSent = 0;
  readonly closeCodes: Record<string, number> = {};
  readonly scenarios: Record<string, number> = {};
  readonly failures: string[] = [];
}

async function rawSession(
  rng: Random,
  target: FuzzTarget,
  scenario: Scenario,
  options: FuzzOptions,
  tally: Tally,
): Promise<void> {
  const socket = netConnect(target.port, '127.0.0.1');
  socket.on('error', () => {});
  let received = Buffer.alloc(0);
  let handshakeDone = false;
  socket.on('data', (chunk: Buffer) => {
    if (received.length > 1024 * 1024) return;
    received = Buffer.concat([received, chunk]);
    if (!handshakeDone) {
      const end = received.indexOf('\r\n\r\n');
      if (end === -1) return;
      handshakeDone = true;
      received = received.subarray(end + 4);
    }
    for (let parsed = parseFrame(received); parsed; parsed = parseFrame(received)) {
      if (parsed.frame.opcode === 0x8) {
        const code =
          parsed.frame.payload.length >= 2 ? String(parsed.frame.payload.readUInt16BE(0)) : 'empty';
        tally.closeCodes[code] = (tally.closeCodes[code] ?? 0) + 1;
      }
      received = received.subarray(parsed.length);
    }
  });
  const deadline = Date.now() + 1000;
  try {
    if ((await withTimeout(settled(socket, 'connect'), 2000)) !== 'connect') return;
    const compression = options.compression === true;
    if (scenario === 'early-disconnect') {
      const whole = Buffer.concat([
        Buffer.from(handshake(rng, target.port, compression)),
        ...frames(rng, compression),
      ]);
      const cut = rng.int(0, whole.length);
      socket.write(whole.subarray(0, cut));
      tally.bytesSent += cut;
      await delay(rng.int(0, 30));
      if (rng.chance(0.5)) socket.end();
      else socket.destroy();
      return;
    }
    const head =
      scenario === 'bad-handshake'
        ? badHandshake(rng, target.port, compression)
        : Buffer.from(handshake(rng, target.port, compression));
    await writeInPieces(rng, socket, head, deadline);
    tally.bytesSent += head.length;
    if (rng.chance(0.7))
      await withTimeout(new Promise<void>((resolve) => socket.once('data', () => resolve())), 500);
    let body: Buffer;
    if (scenario === 'garbage') body = rng.bytes(rng.int(1, 5000));
    else if (scenario === 'mutated-frames') body = mutate(rng, Buffer.concat(frames(rng, compression)));
    else body = Buffer.concat(frames(rng, compression));
    await writeInPieces(rng, socket, body, deadline);
    tally.bytesSent += body.length;
    // End the session at a random moment: right away, half-closed, or once the server is done with it.
    const ending = rng.int(0, 2);
    if (ending === 0) socket.destroy();
    else if (ending === 1) socket.end();
    await withTimeout(settled(socket, 'close'), rng.int(0, 300));
  } finally {
    socket.destroy();
  }
}

async function wsClientSession(
  rng: Random,
  target: FuzzTarget,
  options: FuzzOptions,
  tally: Tally,
): Promise<void> {
  const opening = TestClient.open(`ws://127.0.0.1:${target.port}/ws`, {
    perMessageDeflate: options.compression === true && rng.chance(0.7),
    handshakeTimeout: 5000,
  }).catch(() => undefined);
  // Never leave a client behind: one that opens after we gave up is terminated when it does.
  const opened = await withTimeout(opening, 5000);
  if (opened === undefined) {
    void opening.then((late) => late?.ws.terminate());
    return;
  }
  const count = rng.int(0, 10);
  for (let i = 0; i < count && opened.ws.readyState === opened.ws.OPEN; i++) {
    const body = payload(rng);
    opened.ws.send(rng.chance(0.5) ? body : body.toString('utf8'), { binary: rng.chance(0.5) });
    tally.bytesSent += body.length;
    if (rng.chance(0.3)) await delay(rng.int(0, 10));
  }
  const ending = rng.int(0, 2);
  if (ending === 0) opened.ws.terminate();
  else if (ending === 1) opened.ws.close(rng.pick([1000, 1001, 3000, 4000]));
  else await withTimeout(opened.close(), 1000);
  opened.ws.terminate();
}

/** The well-behaved client: a message every 100 ms, each must come back within 3 s. */
async function canary(
  target: FuzzTarget,
  until: () => boolean,
  tally: Tally,
): Promise<{ roundTrips: number; maxMs: number }> {
  let roundTrips = 0;
  let maxMs = 0;
  let client: TestClient | undefined;
  try {
    client = await TestClient.open(`ws://127.0.0.1:${target.port}/ws`);
    for (let i = 0; !until() && i < 100_000; i++) {
      const token = `canary-${i}`;
      const started = Date.now();
      await client.send(token);
      // In broadcast mode fuzz messages arrive too: skip them until ours comes back.
      for (;;) {
        const reply = await client.next(3000);
        if (!reply.isBinary && reply.data.toString() === token) break;
      }
      roundTrips++;
      maxMs = Math.max(maxMs, Date.now() - started);
      await delay(100);
    }
  } catch (error) {
    tally.failures.push(`the well-behaved client was not served: ${(error as Error).message}`);
  } finally {
    await client?.close().catch(() => {});
  }
  return { roundTrips, maxMs };
}

async function waitForConnections(
  target: FuzzTarget,
  expected: number,
  timeoutMs: number,
): Promise<number | undefined> {
  const deadline = Date.now() + timeoutMs;
  let value: number | undefined;
  while (Date.now() < deadline) {
    value = await metricValue(target.metricsUrl, 'websocket_connections').catch(() => undefined);
    if (value === expected) return value;
    await delay(50);
  }
  return value;
}

export async function fuzz(target: FuzzTarget, options: FuzzOptions): Promise<FuzzReport> {
  const tally = new Tally();
  const log = options.log ?? (() => {});
  const deadline = Date.now() + options.durationMs;
  const maxSessions = options.maxSessions ?? 1_000_000;
  const before = await waitForConnections(target, 0, 5000);
  if (before !== 0) tally.failures.push(`websocket_connections was ${before} before fuzzing, expected 0`);
  // A reset seen by one of our own sockets that Node reports as uncaught (e.g. from an aborted
  // ws client handshake) is a normal network outcome of fuzzing, not a server failure; anything
  // else uncaught is the fuzzer's bug and is reported.
  const onUncaught = (error: NodeJS.ErrnoException): void => {
    if (error.code === 'ECONNRESET' || error.code === 'EPIPE') tally.clientResets++;
    else {
      tally.fuzzerErrors++;
      log(`fuzz: uncaught client-side error: ${error.stack ?? error}`);
    }
  };
  process.on('uncaughtException', onUncaught);
  const canaryRun = canary(target, () => Date.now() >= deadline, tally);
  const worker = async (id: number): Promise<void> => {
    const rng = new Random(options.seed * 1000 + id);
    while (Date.now() < deadline && tally.sessions < maxSessions && tally.failures.length === 0) {
      tally.sessions++;
      const scenario = rng.pick(SCENARIOS);
      tally.scenarios[scenario] = (tally.scenarios[scenario] ?? 0) + 1;
      try {
        if (scenario === 'ws-client') await wsClientSession(rng, target, options, tally);
        else await rawSession(rng, target, scenario, options, tally);
      } catch (error) {
        // A client-side exception is the fuzzer's own bug, not the server's: report it, keep going.
        tally.fuzzerErrors++;
        log(`fuzz: client-side error in a ${scenario} session: ${(error as Error).stack ?? error}`);
      }
      if (!target.alive()) {
        tally.failures.push(`the server died during a ${scenario} session`);
        return;
      }
    }
  };
  await Promise.all(Array.from({ length: options.concurrency ?? 8 }, (_, id) => worker(id)));
  const { roundTrips, maxMs } = await canaryRun;
  process.off('uncaughtException', onUncaught);
  log(
    `fuzz: ${tally.sessions} sessions, ${roundTrips} canary round trips (max ${maxMs} ms); waiting for connections to drain`,
  );
  // Every fuzz socket is destroyed and the canary closed: the gauge must come back to exactly 0.
  const drainStarted = Date.now();
  const after = await waitForConnections(target, 0, 10_000);
  log(`fuzz: connections drained in ${Date.now() - drainStarted} ms`);
  if (after !== 0) tally.failures.push(`websocket_connections is ${after} after fuzzing, expected exactly 0`);
  const accepted = await metricValue(target.metricsUrl, 'websocket_connections_total').catch(() => undefined);
  const ended = await metricValue(target.metricsUrl, 'websocket_disconnections_total').catch(() => undefined);
  if (accepted !== ended)
    tally.failures.push(`connections_total ${accepted} != disconnections_total ${ended}`);
  if (!target.alive()) tally.failures.push('the server is not running after fuzzing');
  if (roundTrips === 0 && !tally.failures.some((f) => f.includes('well-behaved'))) {
    tally.failures.push('the well-behaved client completed no round trip');
  }
  return {
    seed: options.seed,
    sessions: tally.sessions,
    bytesSent: tally.bytesSent,
    closeCodes: tally.closeCodes,
    scenarios: tally.scenarios,
    canaryRoundTrips: roundTrips,
    canaryMaxMs: maxMs,
    fuzzerErrors: tally.fuzzerErrors,
    failures: tally.failures,
  };
}
