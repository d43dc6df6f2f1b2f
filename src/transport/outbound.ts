import type { Duplex } from 'node:stream';
import * as wsModule from 'ws';
import type { OutboundMessage } from '../hub/message.js';
import type { Stats } from '../stats.js';

/** The part of a connection the outbound path needs (implemented by Connection). */
export interface OutboundTarget {
  readonly readyState: number;
  /** Bytes written but not yet handed to the kernel (ws: socket buffer + sender queue). */
  readonly bufferedAmount: number;
  /**
   * The socket to write pre-framed bytes to, or undefined when frames must go
   * through ws's own sender (an extension such as permessage-deflate was
   * negotiated, so the bytes differ per connection).
   */
  readonly framedSocket: Duplex | undefined;
  send(data: Buffer, options: { binary: boolean }): void;
  /** Frames delivered in this event-loop turn, not yet written (see Outbound). */
  pendingFirst: OutboundMessage | undefined;
  pendingRest: OutboundMessage[] | undefined;
  pendingCount: number;
  pendingBytes: number;
}

interface FrameOptions {
  readonly fin: boolean;
  readonly opcode: number;
  readonly mask: boolean;
  readonly readOnly: boolean;
  readonly rsv1: boolean;
}
// @types/ws does not declare Sender; ws exports it (lib/sender.js, wrapper.mjs).
const { Sender } = wsModule as unknown as {
  Sender: { frame(data: Buffer, options: FrameOptions): Buffer[] };
};
const OPEN = 1;
// Server frames are never masked (RFC 6455 §5.1); unmasked framing never writes to the payload.
const TEXT_FRAME: FrameOptions = { fin: true, opcode: 0x1, mask: false, readOnly: false, rsv1: false };
const BINARY_FRAME: FrameOptions = { fin: true, opcode: 0x2, mask: false, readOnly: false, rsv1: false };

/** Up to this payload size a frame is one buffer (header + payload copied once per message). */
const SINGLE_BUFFER_MAX = 4096;
/** Up to this many bytes, the frames of one turn are concatenated into one buffer (one write, one send). */
const CONCAT_MAX = 256 * 1024;

/**
 * The wire bytes of a message as one unfragmented frame: [header + payload] for
 * small messages (one buffer, one copy per message, however many receivers), or
 * [header, payload] for large ones (no copy).
 */
export function frameMessage(message: OutboundMessage): readonly Buffer[] {
  const data = message.data;
  if (data.length > SINGLE_BUFFER_MAX) {
    return Sender.frame(data, message.isBinary ? BINARY_FRAME : TEXT_FRAME);
  }
  // RFC 6455 §5.2: FIN + opcode, then a 7-bit or 16-bit length; server frames carry no mask.
  const headerLength = data.length < 126 ? 2 : 4;
  const frame = Buffer.allocUnsafe(headerLength + data.length);
  frame[0] = 0x80 | (message.isBinary ? 0x2 : 0x1);
  if (headerLength === 2) {
    frame[1] = data.length;
  } else {
    frame[1] = 126;
    frame.writeUInt16BE(data.length, 2);
  }
  data.copy(frame, headerLength);
  return [frame];
}

/**
 * Writes frames as one write: a frame is written whole and synchronously, so it
 * can never interleave with a frame ws's own sender writes (close, ping, pong):
 * ws writes synchronously too while no extension is active, which is the only
 * case this is used in, and Connection flushes its pending frames before any of those.
 */
export function writeFrames(socket: Duplex, wire: readonly Buffer[]): void {
  if (wire.length === 1) {
    socket.write(wire[0] as Buffer);
    return;
  }
  socket.cork();
  for (const buffer of wire) socket.write(buffer);
  socket.uncork();
}

export interface OutboundOptions {
  readonly stats: Stats;
  /** --max-buffered-bytes: how much may wait in a connection's outbound buffer. */
  readonly maxBufferedBytes: number;
  /** A message was dropped because `target` cannot keep up (counted already); it is to be disconnected. */
  readonly onSlowConsumer: (target: OutboundTarget, buffered: number) => void;
}

/**
 * The outbound path: frames a message once (cached on the message), enforces
 * the per-connection buffer limit and writes. It never waits: a full buffer
 * means the receiver is too slow, and the message is dropped for that receiver alone.
 *
 * Corking (issue 5): frames delivered during one event-loop turn are not written
 * at once; the connection is marked and, at the end of the turn (process.nextTick),
 * everything bound for one socket goes out in one write. A broadcast of 16
 * messages to 1,000 clients is 1,000 writes, not 16,000. Receivers of the same
 * sequence of messages (a room) share one concatenated buffer, built once: no
 * allocation per receiver. Pending state lives in four fields of the connection,
 * so the turn costs no closure, promise or array per receiver.
 */
export class Outbound {
  private dirty: OutboundTarget[] = [];
  private flushScheduled = false;
  /** The last concatenation built in this flush, reused by every receiver of the same messages. */
  private memoFirst: OutboundMessage | undefined = undefined;
  private memoRest: OutboundMessage[] = [];
  private memoWire: readonly Buffer[] = [];

  constructor(private readonly options: OutboundOptions) {}

  deliver(target: OutboundTarget, message: OutboundMessage): void {
    if (target.readyState !== OPEN) return;
    const size = message.data.length;
    const buffered = target.bufferedAmount + target.pendingBytes;
    // Past the limit already: the receiver is not keeping up. Judged on what is waiting, not on the
    // new message's size, so a large message never cuts off a client that keeps up; what waits for
    // one client is bounded by the limit plus one message.
    if (buffered > this.options.maxBufferedBytes) {
      this.options.stats.messagesDropped.slow_consumer++;
      this.options.onSlowConsumer(target, buffered);
      return;
    }
    if (target.framedSocket === undefined) {
      target.send(message.data, { binary: message.isBinary });
    } else {
      message.wire ??= frameMessage(message);
      if (target.pendingCount === 0) {
        target.pendingFirst = message;
        this.dirty.push(target);
        if (!this.flushScheduled) {
          this.flushScheduled = true;
          process.nextTick(flushOutbound, this);
        }
      } else {
        target.pendingRest ??= [];
        target.pendingRest.push(message);
      }
      target.pendingCount++;
      target.pendingBytes += size;
    }
    const stats = this.options.stats;
    stats.messagesDelivered++;
    stats.bytesSent += size;
  }

  /** Writes every connection's pending frames (end of the event-loop turn). */
  flushAll(): void {
    this.flushScheduled = false;
    const dirty = this.dirty;
    // Writes never re-enter deliver() synchronously (stream errors are emitted on a later tick).
    for (let i = 0; i < dirty.length; i++) this.flush(dirty[i] as OutboundTarget);
    dirty.length = 0;
    this.memoFirst = undefined;
    this.memoRest.length = 0;
    this.memoWire = [];
  }

  /** Writes `target`'s pending frames now, in one write (also before ws writes a control frame). */
  flush(target: OutboundTarget): void {
    const count = target.pendingCount;
    if (count === 0) return;
    const first = target.pendingFirst as OutboundMessage;
    const rest = target.pendingRest;
    target.pendingFirst = undefined;
    target.pendingCount = 0;
    target.pendingBytes = 0;
    const socket = target.framedSocket;
    if (socket === undefined || target.readyState !== OPEN) {
      if (rest !== undefined) rest.length = 0;
      return;
    }
    this.options.stats.socketWrites++;
    if (count === 1) {
      writeFrames(socket, first.wire as readonly Buffer[]);
      return;
    }
    const messages = rest as OutboundMessage[];
    if (!this.memoMatches(first, messages)) {
      this.memoFirst = first;
      this.memoRest = messages.slice();
      this.memoWire = joinFrames(first, messages);
    }
    messages.length = 0;
    writeFrames(socket, this.memoWire);
  }

  private memoMatches(first: OutboundMessage, rest: OutboundMessage[]): boolean {
    const memo = this.memoRest;
    if (first !== this.memoFirst || rest.length !== memo.length) return false;
    for (let i = 0; i < rest.length; i++) if (rest[i] !== memo[i]) return false;
    return true;
  }
}

function flushOutbound(outbound: Outbound): void {
  outbound.flushAll();
}

/** The frames of several messages, concatenated into one buffer when small enough. */
function joinFrames(first: OutboundMessage, rest: readonly OutboundMessage[]): readonly Buffer[] {
  const parts: Buffer[] = [...(first.wire as readonly Buffer[])];
  for (const message of rest) for (const buffer of message.wire as readonly Buffer[]) parts.push(buffer);
  let total = 0;
  for (const buffer of parts) total += buffer.length;
  return total <= CONCAT_MAX ? [Buffer.concat(parts, total)] : parts;
}
