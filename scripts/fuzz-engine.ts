import { createHash } from 'node:crypto';
import { connect as netConnect, type Socket } from 'node:net';
import { deflateRawSync } from 'node:zlib';
import { clientFrame, TestClient } from '../test/helpers/clients.js';
import { metricValue } from '../test/helpers/metrics.js';
import {
  CLOSE_CODE_OF as ATTACK_CLOSE_CODES,
  KINDS as ATTACK_KINDS,
  type AttackKind,
  anyMasked,
  rejected,
} from '../test/helpers/receiver-attack.js';

/**
 * The fuzzer behind `npm run fuzz` and test/fuzz.test.ts (issue 14: replayable).
 *
 * Every byte a session sends, and every pause between its writes, is a pure function of
 * (seed, session index, options): `planSession` builds the plan before anything is sent, and a
 * server's answers never change it. So a run is bounded by a count of sessions, not the clock,
 * and the digest of all plans (`transcript sha256=…`, the last line `npm run fuzz` prints) is the
 * same for the same seed and options on any machine. A failure (the server died, a session or
 * the well-behaved client got no answer in time, a wrong close code) writes the seed and the
 * plans of the sessions in flight to a file that `npm run fuzz -- --replay=FILE` sends again.
 * Traffic goes to 127.0.0.1 only; every wait is bounded.
 */
export interface FuzzTarget {
  readonly port: number;
  readonly metricsUrl: string;
  /** True while the server process is alive (a spawned server); checked after every session. */
  readonly alive: () => boolean;
}

/** What a plan depends on besides the seed: changing any of these changes the transcript. */
export interface PlanOptions {
  /** The server negotiates permessage-deflate: offer it and send compressed frames. */
  readonly compression: boolean;
  /** The server's --max-message-size: the largest message a session sends. */
  readonly maxMessageSize: number;
  /** The server's --max-fragments. */
  readonly maxFragments: number;
}

export interface FuzzOptions extends PlanOptions {
  readonly seed: number;
  readonly sessions: number;
  /** Sessions in flight at once (does not change the plans, only how they overlap). */
  readonly concurrency: number;
  /** Where a failure is written (the default: fuzz-failure-<seed>.json in the working directory). */
  readonly failureFile?: string;
  readonly log?: (line: string) => void;
}

/** One write of a session: its bytes, then a pause; `awaitReply`: first wait (bounded) for the server to answer. */
export interface Step {
  readonly bytes: Buffer;
  readonly pauseMs: number;
  readonly awaitReply?: boolean;
}

export type Ending = 'destroy' | 'end' | 'await-close';

export interface SessionPlan {
  readonly index: number;
  readonly scenario: Scenario;
  readonly steps: readonly Step[];
  readonly ending: Ending;
  /** The close codes the server may answer with (a session built to be refused, or closed cleanly); empty: any. */
  readonly expectClose: readonly number[];
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
  /** Everything that went wrong; empty when the server passed. */
  readonly failures: readonly string[];
  /** sha256 of every planned session (hex). */
  readonly transcript: string;
  /** The failure file written, if any. */
  readonly failureFile?: string;
}

/** mulberry32: small, fast, seedable. */
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

export const SCENARIOS = [
  'garbage',
  'mutated-frames',
  'valid-frames',
  'bad-handshake',
  'early-disconnect',
  'clean-close',
  'rejected-frame',
] as const;
export type Scenario = (typeof SCENARIOS)[number];

/** Frames wshub must refuse, with the close code RFC 6455 §7.4.1 (and ws) give them. */
const REJECTIONS = [
  ...ATTACK_KINDS,
  'reserved-opcode',
  'reserved-bits',
  'oversize-control',
  'orphan-continuation',
  'too-large',
  'corrupt-deflate',
] as const;
type Rejection = (typeof REJECTIONS)[number];

function rejectionFrame(rng: Random, kind: Rejection, options: PlanOptions): { bytes: Buffer; code: number } {
  if ((ATTACK_KINDS as readonly string[]).includes(kind)) {
    const attack = kind as AttackKind;
    return { bytes: rejected(attack, options.maxFragments), code: ATTACK_CLOSE_CODES[attack] };
  }
  switch (kind) {
    case 'reserved-opcode':
      return {
        bytes: clientFrame(rng.pick([3, 4, 5, 6, 7, 11, 12, 13, 14, 15]), rng.bytes(rng.int(0, 20))),
        code: 1002,
      };
    case 'reserved-bits':
      return { bytes: clientFrame(0x2, rng.bytes(10), { rsv: rng.pick([0x10, 0x20, 0x30]) }), code: 1002 };
    case 'oversize-control':
      return { bytes: clientFrame(0x9, rng.bytes(rng.int(126, 300))), code: 1002 };
    case 'orphan-continuation':
      return { bytes: clientFrame(0x0, rng.bytes(rng.int(0, 20))), code: 1002 };
    case 'too-large': {
      // Only the header: the length alone is refused (RFC 6455 §10.4).
      const header = Buffer.alloc(14);
      header[0] = 0x82;
      header[1] = 0x80 | 127;
      header.writeBigUInt64BE(BigInt(options.maxMessageSize + rng.int(1, 1000)), 2);
      return { bytes: header, code: 1009 };
    }
    default:
      // corrupt-deflate: RSV1 with bytes that are not a DEFLATE stream (RFC 7692 §7.2.2 → 1007).
      return {
        bytes: clientFrame(0x2, Buffer.from([0xff, 0xff, 0xff, 0xff, 0x00]), { rsv: 0x40 }),
        code: 1007,
      };
  }
}

function handshake(rng: Random, path: string, compression: boolean, alwaysOffer = false): string {
  const lines = [
    `GET ${path} HTTP/1.1`,
    'Host: 127.0.0.1',
    'Upgrade: websocket',
    'Connection: Upgrade',
    `Sec-WebSocket-Key: ${rng.bytes(16).toString('base64')}`,
    'Sec-WebSocket-Version: 13',
  ];
  if (compression && (alwaysOffer || rng.chance(0.6))) {
    // Offers the server accepts as they are (wshub requires server_no_context_takeover).
    const params = ['permessage-deflate'];
    if (rng.chance(0.5)) params.push('client_max_window_bits');
    if (rng.chance(0.3)) params.push('server_no_context_takeover');
    if (rng.chance(0.2)) params.push('client_no_context_takeover');
    lines.push(`Sec-WebSocket-Extensions: ${params.join('; ')}`);
  }
  return `${lines.join('\r\n')}\r\n\r\n`;
}

/** A handshake with one thing wrong (or a few). */
function badHandshake(rng: Random, path: string, compression: boolean): Buffer {
  const lines = handshake(rng, path, compression).split('\r\n').slice(0, -2);
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

/** Text payloads are valid UTF-8 (or the message would be refused); binary ones anything. */
function payload(rng: Random, text: boolean): Buffer {
  const size = rng.pick([0, 1, 2, 5, 125, 126, 127, 1000, 65_535, 65_536, rng.int(0, 4000)]);
  return text ? validUtf8(rng, size) : rng.bytes(size);
}

const deflateCache = new Map<string, Buffer>();
/** RFC 7692 §7.2.1: raw DEFLATE, the final 00 00 ff ff removed. Memoized: large repeats are common. */
function deflateMessage(body: Buffer, key?: string): Buffer {
  const cached = key === undefined ? undefined : deflateCache.get(key);
  if (cached) return cached;
  const compressed = deflateRawSync(body, { finishFlush: 2 /* Z_SYNC_FLUSH */ }).subarray(0, -4);
  if (key !== undefined) deflateCache.set(key, compressed);
  return compressed;
}

/**
 * A message that inflates to up to --max-message-size from a few KiB: it takes several
 * event-loop turns to inflate, while the frames behind it queue in ws's receiver (the window of
 * the receiver crash of issue 14).
 */
function slowToInflate(rng: Random, options: PlanOptions): Buffer {
  const size = rng.pick([options.maxMessageSize, Math.floor(options.maxMessageSize / 2), 256 * 1024]);
  const byte = rng.pick([0x61, 0x20, 0x7b]);
  const compressed = deflateMessage(Buffer.alloc(size, byte), `${size}:${byte}`);
  return clientFrame(rng.chance(0.5) ? 0x1 : 0x2, compressed, { rsv: 0x40 });
}

/** Valid frames: messages (some fragmented, some compressed), pings and pongs; no close. */
function validFrames(rng: Random, options: PlanOptions, compressed: boolean, count: number): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < count; i++) {
    const roll = rng.next();
    if (compressed && roll < 0.15) {
      out.push(slowToInflate(rng, options));
    } else if (roll < 0.55) {
      const text = rng.chance(0.5);
      const body = payload(rng, text);
      if (compressed && rng.chance(0.4))
        out.push(clientFrame(text ? 0x1 : 0x2, deflateMessage(body), { rsv: 0x40 }));
      else out.push(clientFrame(text ? 0x1 : 0x2, body));
    } else if (roll < 0.8) {
      // Fragmented; text is split on byte boundaries (valid once reassembled), pings in between.
      const text = rng.chance(0.5);
      const body = payload(rng, text);
      const pieces = rng.int(2, 6);
      const step = Math.max(1, Math.ceil(body.length / pieces));
      for (let at = 0, first = true; first || at < body.length; at += step, first = false) {
        const last = at + step >= body.length;
        out.push(clientFrame(first ? (text ? 0x1 : 0x2) : 0x0, body.subarray(at, at + step), { fin: last }));
        if (!last && rng.chance(0.2)) out.push(clientFrame(0x9, rng.bytes(rng.int(0, 125))));
      }
    } else {
      out.push(clientFrame(rng.pick([0x9, 0xa]), rng.bytes(rng.int(0, 125))));
    }
  }
  return out;
}

/** Anything, including closes with any code and the frames of REJECTIONS: for mutation and mixes. */
function anyFrames(rng: Random, options: PlanOptions, compressed: boolean): Buffer[] {
  const out: Buffer[] = [];
  const count = rng.int(1, 12);
  for (let i = 0; i < count; i++) {
    const roll = rng.next();
    if (roll < 0.7) out.push(...validFrames(rng, options, compressed, 1));
    else if (roll < 0.85) {
      const code = rng.pick([1000, 1001, 1002, 1005, 1006, 3000, 4999, 999, 0, 5000, rng.int(0, 65535)]);
      const reason = rng.chance(0.7) ? validUtf8(rng, rng.int(0, 60)) : rng.bytes(rng.int(0, 60));
      out.push(
        clientFrame(0x8, Buffer.concat([Buffer.from([code >> 8, code & 0xff]), reason]).subarray(0, 125)),
      );
    } else out.push(rejectionFrame(rng, rng.pick(REJECTIONS), options).bytes);
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

/** `data` cut into random pieces with random pauses, as a slow or odd network delivers it. */
function inPieces(rng: Random, data: Buffer): Step[] {
  const steps: Step[] = [];
  let at = 0;
  while (at < data.length) {
    const piece = rng.chance(0.5) ? data.length - at : rng.int(1, Math.min(4096, data.length - at));
    steps.push({ bytes: data.subarray(at, at + piece), pauseMs: rng.chance(0.3) ? rng.int(0, 5) : 0 });
    at += piece;
  }
  return steps;
}

/** One write per frame, 2–8 ms apart: the server reads them one by one (within the inflate window of issue 14). */
const paced = (rng: Random, frames: readonly Buffer[]): Step[] =>
  frames.map((bytes) => ({ bytes, pauseMs: rng.int(2, 8) }));

const PATHS = ['/ws', '/ws/a', '/ws/b'];
/** A session's RNG: from the seed and its index only, whatever ran before it. */
const sessionRandom = (seed: number, index: number): Random =>
  new Random((Math.imul(seed >>> 0, 0x9e3779b1) ^ Math.imul(index + 1, 0x85ebca6b)) >>> 0);

/** The whole plan of session `index` of a run with `seed`: a pure function. */
export function planSession(seed: number, index: number, options: PlanOptions): SessionPlan {
  const rng = sessionRandom(seed, index);
  const scenario = rng.pick(SCENARIOS);
  // A session that expects a close code has a room of its own: in broadcast mode another
  // session's messages could otherwise make it a slow consumer (1008), which is not a bug.
  const path =
    scenario === 'clean-close' || scenario === 'rejected-frame' ? `/ws/s${index}` : rng.pick(PATHS);
  const compression = options.compression;
  const plan = (steps: Step[], ending: Ending, expectClose: readonly number[] = []): SessionPlan => ({
    index,
    scenario,
    steps,
    ending,
    expectClose,
  });
  switch (scenario) {
    case 'early-disconnect': {
      const offered = handshake(rng, path, compression);
      const whole = Buffer.concat([
        Buffer.from(offered),
        ...anyFrames(rng, options, offeredDeflate(offered)),
      ]);
      const cut = rng.int(0, whole.length);
      return plan(
        [{ bytes: whole.subarray(0, cut), pauseMs: rng.int(0, 30) }],
        rng.chance(0.5) ? 'end' : 'destroy',
      );
    }
    case 'bad-handshake':
      return plan(inPieces(rng, badHandshake(rng, path, compression)), rng.pick(['destroy', 'end'] as const));
    case 'clean-close': {
      // A client that does everything right ends with 1000 and must get 1000 back (RFC 6455 §5.5.1).
      const offered = handshake(rng, path, compression);
      const frames = validFrames(rng, options, offeredDeflate(offered), rng.int(0, 8));
      frames.push(clientFrame(0x8, Buffer.from([0x03, 0xe8])));
      return plan(
        [{ bytes: Buffer.from(offered), pauseMs: 0, awaitReply: true }, ...paced(rng, frames)],
        'await-close',
        [1000],
      );
    }
    case 'rejected-frame': {
      // Valid traffic, one frame the server must refuse, more frames behind it, one write each.
      const offered = handshake(rng, path, compression, true);
      const deflate = offeredDeflate(offered);
      const frames = validFrames(rng, options, deflate, rng.int(0, 4));
      if (deflate && rng.chance(0.6)) frames.push(slowToInflate(rng, options));
      const kinds = deflate ? REJECTIONS : REJECTIONS.filter((kind) => kind !== 'corrupt-deflate');
      const bad = rejectionFrame(rng, rng.pick(kinds), options);
      frames.push(bad.bytes);
      for (let i = rng.int(1, 3); i > 0; i--)
        frames.push(rng.chance(0.5) ? anyMasked() : clientFrame(0x1, validUtf8(rng, rng.int(0, 200))));
      return plan(
        [{ bytes: Buffer.from(offered), pauseMs: 0, awaitReply: true }, ...paced(rng, frames)],
        'await-close',
        [bad.code],
      );
    }
    default: {
      const offered = handshake(rng, path, compression);
      const deflate = offeredDeflate(offered);
      let body: Buffer;
      if (scenario === 'garbage') body = rng.bytes(rng.int(1, 5000));
      else if (scenario === 'mutated-frames')
        body = mutate(rng, Buffer.concat(anyFrames(rng, options, deflate)));
      else body = Buffer.concat(anyFrames(rng, options, deflate));
      const steps = [
        { bytes: Buffer.from(offered), pauseMs: 0, awaitReply: rng.chance(0.7) },
        ...(rng.chance(0.5) ? paced(rng, [body]) : inPieces(rng, body)),
      ];
      return plan(steps, rng.pick(['destroy', 'end', 'await-close'] as const));
    }
  }
}

/** Whether the handshake offers permessage-deflate (wshub accepts every offer `handshake` makes). */
const offeredDeflate = (request: string): boolean => request.includes('permessage-deflate');

/** Feeds a plan into a running transcript digest (lengths first, so no two plans hash alike by concatenation). */
function digestPlan(hash: ReturnType<typeof createHash>, plan: SessionPlan): void {
  hash.update(
    `${plan.index} ${plan.scenario} ${plan.ending} ${plan.expectClose.join(',')} ${plan.steps.length}\n`,
  );
  for (const step of plan.steps) {
    hash.update(`${step.bytes.length} ${step.pauseMs} ${step.awaitReply === true ? 1 : 0}\n`);
    hash.update(step.bytes);
  }
}

function transcriptHeader(
  hash: ReturnType<typeof createHash>,
  seed: number,
  options: PlanOptions,
  count: number,
): void {
  hash.update(
    `wshub-fuzz v1 seed=${seed} sessions=${count} compression=${options.compression} max-message-size=${options.maxMessageSize} max-fragments=${options.maxFragments}\n`,
  );
}

/** The transcript digest of a run, without running it. */
export function transcriptOf(seed: number, sessions: number, options: PlanOptions): string {
  const hash = createHash('sha256');
  transcriptHeader(hash, seed, options, sessions);
  for (let index = 0; index < sessions; index++) digestPlan(hash, planSession(seed, index, options));
  return hash.digest('hex');
}

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

/**
 * Reads what the server sends on a raw session: the HTTP response head, then frames, reporting
 * close codes. Data frames are skipped as they stream in, never buffered whole (a session may get
 * --max-message-size messages back), so memory and copying stay bounded.
 */
class ServerFrames {
  private pending: Buffer = Buffer.alloc(0);
  private headDone = false;
  /** Payload bytes of the current data frame still to skip. */
  private skip = 0;

  constructor(private readonly onClose: (code: number | 'empty') => void) {}

  push(chunk: Buffer): void {
    let data = chunk;
    if (this.skip > 0) {
      const skipped = Math.min(this.skip, data.length);
      this.skip -= skipped;
      data = data.subarray(skipped);
      if (data.length === 0) return;
    }
    this.pending = this.pending.length === 0 ? data : Buffer.concat([this.pending, data]);
    if (!this.headDone) {
      const end = this.pending.indexOf('\r\n\r\n');
      if (end === -1) {
        if (this.pending.length > 64 * 1024) this.pending = this.pending.subarray(-4);
        return;
      }
      this.headDone = true;
      this.pending = this.pending.subarray(end + 4);
    }
    for (;;) {
      const frame = this.pending;
      if (frame.length < 2) return;
      const short = (frame[1] as number) & 0x7f;
      const headerLength = short === 126 ? 4 : short === 127 ? 10 : 2;
      if (frame.length < headerLength) return;
      const length =
        short === 126 ? frame.readUInt16BE(2) : short === 127 ? Number(frame.readBigUInt64BE(2)) : short;
      const opcode = (frame[0] as number) & 0x0f;
      if (opcode === 0x8) {
        if (frame.length < headerLength + length) return;
        this.onClose(length >= 2 ? frame.readUInt16BE(headerLength) : 'empty');
        this.pending = frame.subarray(headerLength + length);
        continue;
      }
      const available = frame.length - headerLength;
      if (available >= length) {
        this.pending = frame.subarray(headerLength + length);
        continue;
      }
      this.skip = length - available;
      this.pending = Buffer.alloc(0);
      return;
    }
  }
}

/** How long a session waits for the server's close frame before calling it a hang. */
export const CLOSE_WAIT_MS = 20_000;

class Tally {
  sessions = 0;
  bytesSent = 0;
  readonly closeCodes: Record<string, number> = {};
  readonly scenarios: Record<string, number> = {};
  readonly failures: string[] = [];
  /** The plans of the sessions that failed (or were in flight when the server died). */
  readonly failing = new Map<number, SessionPlan>();
}

/** Sends one plan and checks what the server answered. */
async function runSession(plan: SessionPlan, target: FuzzTarget, tally: Tally): Promise<void> {
  const socket = netConnect(target.port, '127.0.0.1');
  socket.setNoDelay(true);
  socket.on('error', () => {});
  let firstClose: number | 'empty' | undefined;
  let onCloseFrame: () => void = () => {};
  let replied: () => void = () => {};
  const reader = new ServerFrames((code) => {
    if (firstClose !== undefined) return;
    firstClose = code;
    tally.closeCodes[code] = (tally.closeCodes[code] ?? 0) + 1;
    onCloseFrame();
  });
  socket.on('data', (chunk: Buffer) => {
    replied();
    reader.push(chunk);
  });
  const closeFrame = new Promise<void>((resolve) => {
    onCloseFrame = resolve;
  });
  try {
    if ((await withTimeout(settled(socket, 'connect'), 5000)) !== 'connect') {
      if (!target.alive()) return; // the death is the failure, reported once by runPlans
      tally.failures.push(`session ${plan.index} (${plan.scenario}): could not connect within 5 s`);
      tally.failing.set(plan.index, plan);
      return;
    }
    for (const step of plan.steps) {
      if (socket.destroyed) break;
      socket.write(step.bytes);
      tally.bytesSent += step.bytes.length;
      if (step.awaitReply) {
        await withTimeout(
          new Promise<void>((resolve) => {
            replied = resolve;
          }),
          2000,
        );
        replied = () => {};
      }
      if (step.pauseMs > 0) await delay(step.pauseMs);
    }
    if (plan.ending === 'destroy') return;
    if (plan.ending === 'end') {
      socket.end();
      await withTimeout(settled(socket, 'close'), 300);
      return;
    }
    const expecting = plan.expectClose.length > 0;
    await withTimeout<unknown>(
      expecting ? closeFrame : settled(socket, 'close'),
      expecting ? CLOSE_WAIT_MS : 300,
    );
    if (!expecting || !target.alive()) return;
    if (firstClose === undefined) {
      tally.failures.push(
        `session ${plan.index} (${plan.scenario}): no close frame within ${CLOSE_WAIT_MS / 1000} s (expected ${plan.expectClose.join(' or ')})`,
      );
      tally.failing.set(plan.index, plan);
    } else if (!plan.expectClose.includes(firstClose as number)) {
      tally.failures.push(
        `session ${plan.index} (${plan.scenario}): close code ${firstClose}, expected ${plan.expectClose.join(' or ')}`,
      );
      tally.failing.set(plan.index, plan);
    }
  } finally {
    socket.destroy();
  }
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

/** The well-behaved client: one round trip (bounded) every CANARY_EVERY sessions; a miss is a hang. */
const CANARY_EVERY = 16;
const CANARY_TIMEOUT_MS = 10_000;

class Canary {
  roundTrips = 0;
  private client: TestClient | undefined;
  private busy: Promise<void> | undefined;
  constructor(
    private readonly target: FuzzTarget,
    private readonly tally: Tally,
  ) {}

  async open(): Promise<void> {
    this.client = await TestClient.open(`ws://127.0.0.1:${this.target.port}/ws/canary`);
  }

  /** Starts a round trip unless one is running. */
  poke(): void {
    this.busy ??= this.roundTrip().finally(() => {
      this.busy = undefined;
    });
  }

  async roundTrip(): Promise<void> {
    const client = this.client;
    if (client === undefined) return;
    const token = `canary-${this.roundTrips}`;
    try {
      await client.send(token);
      for (;;) {
        const reply = await client.next(CANARY_TIMEOUT_MS);
        if (!reply.isBinary && reply.data.toString() === token) break;
      }
      this.roundTrips++;
    } catch (error) {
      if (this.tally.failures.length === 0 && this.target.alive()) {
        this.tally.failures.push(`hang: the well-behaved client got no answer: ${(error as Error).message}`);
      }
      this.client = undefined;
    }
  }

  async close(): Promise<void> {
    await this.busy;
    await this.client?.close().catch(() => {});
  }
}

/**
 * Runs sessions `indexes` (their plans) against the target, `concurrency` at a time, in index
 * order; stops starting new ones at the first failure. `plans` builds or looks up a plan.
 */
export async function runPlans(
  target: FuzzTarget,
  plans: (index: number) => SessionPlan,
  indexes: readonly number[],
  concurrency: number,
  log: (line: string) => void = () => {},
): Promise<Omit<FuzzReport, 'transcript' | 'seed'> & { readonly failing: readonly SessionPlan[] }> {
  const tally = new Tally();
  const before = await waitForConnections(target, 0, 5000);
  if (before !== 0) tally.failures.push(`websocket_connections was ${before} before fuzzing, expected 0`);
  const canary = new Canary(target, tally);
  try {
    await canary.open();
  } catch (error) {
    tally.failures.push(`the well-behaved client could not connect: ${(error as Error).message}`);
  }
  const inFlight = new Map<number, SessionPlan>();
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < indexes.length && tally.failures.length === 0) {
      const plan = plans(indexes[next++] as number);
      tally.sessions++;
      tally.scenarios[plan.scenario] = (tally.scenarios[plan.scenario] ?? 0) + 1;
      inFlight.set(plan.index, plan);
      await runSession(plan, target, tally);
      if (!target.alive()) {
        if (!tally.failures.some((failure) => failure.startsWith('the server died'))) {
          tally.failures.push(
            `the server died (sessions in flight: ${[...inFlight.keys()].join(', ')}; the last to start: ${plan.index})`,
          );
          for (const flying of inFlight.values()) tally.failing.set(flying.index, flying);
        }
        return;
      }
      inFlight.delete(plan.index);
      if (tally.sessions % CANARY_EVERY === 0) canary.poke();
      if (tally.sessions % 1000 === 0) log(`fuzz: ${tally.sessions} sessions`);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, concurrency) }, worker));
  if (tally.failures.length === 0) await canary.roundTrip();
  await canary.close();
  if (target.alive()) {
    // Every session socket is destroyed and the canary closed: the gauge must come back to exactly 0.
    const after = await waitForConnections(target, 0, 10_000);
    if (after !== 0)
      tally.failures.push(`websocket_connections is ${after} after fuzzing, expected exactly 0`);
    const accepted = await metricValue(target.metricsUrl, 'websocket_connections_total').catch(
      () => undefined,
    );
    const ended = await metricValue(target.metricsUrl, 'websocket_disconnections_total').catch(
      () => undefined,
    );
    if (accepted !== ended)
      tally.failures.push(`connections_total ${accepted} != disconnections_total ${ended}`);
  } else if (!tally.failures.some((failure) => failure.startsWith('the server died'))) {
    tally.failures.push('the server is not running after fuzzing');
  }
  return {
    sessions: tally.sessions,
    bytesSent: tally.bytesSent,
    closeCodes: tally.closeCodes,
    scenarios: tally.scenarios,
    canaryRoundTrips: canary.roundTrips,
    failures: tally.failures,
    failing: [...tally.failing.values()].sort((a, b) => a.index - b.index),
  };
}

/** A run of `options.sessions` planned sessions; the transcript covers all of them, even after a failure. */
export async function fuzz(
  target: FuzzTarget,
  options: FuzzOptions,
): Promise<FuzzReport & { failing: readonly SessionPlan[] }> {
  const hash = createHash('sha256');
  transcriptHeader(hash, options.seed, options, options.sessions);
  let digested = 0;
  const plans = (index: number): SessionPlan => {
    const plan = planSession(options.seed, index, options);
    // Sessions start in index order, so the digest can follow them.
    if (index === digested) {
      digestPlan(hash, plan);
      digested++;
    }
    return plan;
  };
  const indexes = Array.from({ length: options.sessions }, (_, index) => index);
  const result = await runPlans(target, plans, indexes, options.concurrency, options.log);
  for (; digested < options.sessions; digested++)
    digestPlan(hash, planSession(options.seed, digested, options));
  return { ...result, seed: options.seed, transcript: hash.digest('hex') };
}

/** The file a failure writes: enough to send the same bytes again. */
export interface FailureRecord {
  readonly wshubFuzz: 1;
  readonly seed: number;
  readonly options: PlanOptions & { readonly sessions: number; readonly concurrency: number };
  readonly serverFlags: readonly string[];
  readonly failures: readonly string[];
  readonly sessions: ReadonlyArray<{
    readonly index: number;
    readonly scenario: Scenario;
    readonly ending: Ending;
    readonly expectClose: readonly number[];
    readonly steps: ReadonlyArray<{
      readonly base64: string;
      readonly pauseMs: number;
      readonly awaitReply: boolean;
    }>;
  }>;
}

export function failureRecord(
  seed: number,
  options: FailureRecord['options'],
  serverFlags: readonly string[],
  failures: readonly string[],
  failing: readonly SessionPlan[],
): FailureRecord {
  return {
    wshubFuzz: 1,
    seed,
    options,
    serverFlags,
    failures,
    sessions: failing.map((plan) => ({
      index: plan.index,
      scenario: plan.scenario,
      ending: plan.ending,
      expectClose: plan.expectClose,
      steps: plan.steps.map((step) => ({
        base64: step.bytes.toString('base64'),
        pauseMs: step.pauseMs,
        awaitReply: step.awaitReply === true,
      })),
    })),
  };
}

/** The plans of a failure file, as they were sent. */
export function plansOf(record: FailureRecord): SessionPlan[] {
  return record.sessions.map((session) => ({
    index: session.index,
    scenario: session.scenario,
    ending: session.ending,
    expectClose: session.expectClose,
    steps: session.steps.map((step) => ({
      bytes: Buffer.from(step.base64, 'base64'),
      pauseMs: step.pauseMs,
      awaitReply: step.awaitReply,
    })),
  }));
}

/** The transcript digest of a set of plans (a replay prints it: the same bytes as the failing run sent). */
export function transcriptOfPlans(seed: number, options: PlanOptions, plans: readonly SessionPlan[]): string {
  const hash = createHash('sha256');
  transcriptHeader(hash, seed, options, plans.length);
  for (const plan of plans) digestPlan(hash, plan);
  return hash.digest('hex');
}
