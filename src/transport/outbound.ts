import { writeSync } from 'node:fs';
import type { Duplex } from 'node:stream';
import type { ZlibOptions } from 'node:zlib';
import * as wsModule from 'ws';
import type { OutboundMessage } from '../hub/message.js';
import type { Stats } from '../stats.js';
import { deflateMessage } from './compression.js';

/** The part of a connection the outbound path needs (implemented by Connection). */
export interface OutboundTarget {
  readonly readyState: number;
  /** Bytes written but not yet handed to the kernel (ws: socket buffer + sender queue). */
  readonly bufferedAmount: number;
  /**
   * The socket to write pre-framed bytes to, or undefined when frames must go
   * through ws's own sender (an extension was negotiated whose bytes differ per
   * connection: permessage-deflate with context takeover).
   */
  readonly framedSocket: Duplex | undefined;
  /** framedSocket's descriptor when it is a plain TCP socket (see directWriteFd), else -1. */
  readonly framedFd: number;
  /**
   * 0: no extension, receivers share the plain frame. 8-15: permessage-deflate
   * without server context takeover and this server window: receivers share the
   * message's compressed frame (see sharedDeflateWindowBits).
   */
  readonly deflateWindowBits: number;
  /**
   * Whether ws's own sender is idle (nothing queued or being compressed), so a
   * pre-framed write cannot overtake one of its frames. Always true without an extension.
   */
  readonly senderIdle: boolean;
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
const TEXT_DEFLATED_FRAME: FrameOptions = { ...TEXT_FRAME, rsv1: true };
const BINARY_DEFLATED_FRAME: FrameOptions = { ...BINARY_FRAME, rsv1: true };

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
  return framePayload(message.data, message.isBinary, false);
}

/** One final frame of `payload`; `compressed` sets RSV1 (RFC 7692 §6: the "Per-Message Compressed" bit). */
function framePayload(payload: Buffer, isBinary: boolean, compressed: boolean): readonly Buffer[] {
  if (payload.length > SINGLE_BUFFER_MAX) {
    const options = compressed
      ? isBinary
        ? BINARY_DEFLATED_FRAME
        : TEXT_DEFLATED_FRAME
      : isBinary
        ? BINARY_FRAME
        : TEXT_FRAME;
    return Sender.frame(payload, options);
  }
  // RFC 6455 §5.2: FIN + opcode, then a 7-bit or 16-bit length; server frames carry no mask.
  const headerLength = payload.length < 126 ? 2 : 4;
  const frame = Buffer.allocUnsafe(headerLength + payload.length);
  frame[0] = 0x80 | (compressed ? 0x40 : 0) | (isBinary ? 0x2 : 0x1);
  if (headerLength === 2) {
    frame[1] = payload.length;
  } else {
    frame[1] = 126;
    frame.writeUInt16BE(payload.length, 2);
  }
  payload.copy(frame, headerLength);
  return [frame];
}

/**
 * Writes frames as one write: a frame is written whole and synchronously, so it
 * can never interleave with a frame ws's own sender writes (close, ping, pong):
 * ws writes synchronously too while its sender is idle (always without an
 * extension; with permessage-deflate Outbound checks `senderIdle` first), and
 * Connection flushes its pending frames before any of those.
 */
export function writeFrames(socket: Duplex, wire: readonly Buffer[], fd = -1): void {
  if (wire.length === 1) {
    const buffer = wire[0] as Buffer;
    if (fd < 0 || !writeDirect(socket, fd, buffer)) socket.write(buffer);
    return;
  }
  socket.cork();
  for (const buffer of wire) socket.write(buffer);
  socket.uncork();
}

/** The libuv handle of a socket (net.Socket `_handle`; null once the socket is destroyed). */
interface StreamHandle {
  readonly fd?: number;
}
type SocketWithHandle = Duplex & { _handle?: StreamHandle | null; encrypted?: boolean };

/**
 * The descriptor frames may be written to directly (writeDirect): a plain TCP
 * socket's, or -1 (TLS: the descriptor carries ciphertext; no descriptor on
 * this platform). Read once per connection: the handle's `fd` is a native accessor.
 */
export function directWriteFd(socket: Duplex): number {
  const { _handle: handle, encrypted } = socket as SocketWithHandle;
  if (handle == null || encrypted === true) return -1;
  const fd = handle.fd;
  return typeof fd === 'number' && fd >= 0 ? fd : -1;
}

/**
 * Writes `buffer` to a plain TCP socket's descriptor `fd` with one write(2), past
 * the stream machinery (issue 5, one message in flight: per delivery,
 * Writable.write, a WriteWrap and an after-write tick cost as much user-space
 * time as the rest of the delivery). Only while the socket has its handle (it is
 * dropped, synchronously, when the descriptor is closed, so `fd` is never another
 * connection's) and its stream holds nothing (the stream's length counts a write
 * until libuv completes it, so nothing is queued in libuv either): the bytes
 * cannot overtake earlier ones. A partial write queues the rest through the
 * stream. Returns false when it did not write (a full kernel buffer, EAGAIN; any
 * error such as EPIPE, which the stream then reports in the usual way): the
 * caller writes through the stream.
 */
function writeDirect(socket: Duplex, fd: number, buffer: Buffer): boolean {
  if ((socket as SocketWithHandle)._handle == null || socket.writableLength !== 0 || socket.writableEnded) {
    return false;
  }
  let written: number;
  try {
    written = writeSync(fd, buffer);
  } catch {
    return false;
  }
  if (written < buffer.length) socket.write(buffer.subarray(written));
  return true;
}

export interface OutboundOptions {
  readonly stats: Stats;
  /** --max-buffered-bytes: how much may wait in a connection's outbound buffer. */
  readonly maxBufferedBytes: number;
  /** A message was dropped because `target` cannot keep up (counted already); it is to be disconnected. */
  readonly onSlowConsumer: (target: OutboundTarget, buffered: number) => void;
  /** With --compression: messages from this size up are compressed (--compression-threshold, as ws does). */
  readonly deflateThreshold?: number;
  /** zlib options for a message compressed once for many receivers. */
  readonly deflateOptions?: ZlibOptions;
}

/** The last concatenation built in a flush for one kind of receiver, reused by every receiver of the same messages. */
class JoinMemo {
  first: OutboundMessage | undefined = undefined;
  rest: OutboundMessage[] = [];
  wire: readonly Buffer[] = [];
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
  /** Per kind of receiver (index: deflateWindowBits, 0 for plain frames), the last concatenation of this flush. */
  private readonly memos: JoinMemo[] = Array.from({ length: 16 }, () => new JoinMemo());
  private memosUsed = 0;
  private readonly deflateThreshold: number;
  private readonly deflateOptions: ZlibOptions;

  constructor(private readonly options: OutboundOptions) {
    this.deflateThreshold = options.deflateThreshold ?? 0;
    this.deflateOptions = options.deflateOptions ?? {};
  }

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
    const bits = target.deflateWindowBits;
    if (target.framedSocket === undefined || (bits !== 0 && !message.fanOut)) {
      // ws compresses for this connection alone; frames corked before go out first, in order.
      if (target.pendingCount > 0) this.flush(target);
      target.send(message.data, { binary: message.isBinary });
    } else {
      if (bits === 0) message.wire ??= frameMessage(message);
      else this.deflatedWire(message, bits);
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
    if (this.memosUsed !== 0) {
      this.memosUsed = 0;
      for (const memo of this.memos) {
        memo.first = undefined;
        memo.rest.length = 0;
        memo.wire = [];
      }
    }
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
    const bits = target.deflateWindowBits;
    if (bits !== 0 && !target.senderIdle) {
      // ws is still compressing or has frames queued (e.g. a message it sent itself):
      // a direct write would overtake them, so these messages queue behind them in ws.
      target.send(first.data, { binary: first.isBinary });
      if (rest !== undefined) {
        for (const message of rest) target.send(message.data, { binary: message.isBinary });
        rest.length = 0;
      }
      return;
    }
    this.options.stats.socketWrites++;
    if (count === 1) {
      writeFrames(
        socket,
        bits === 0 ? (first.wire as readonly Buffer[]) : this.deflatedWire(first, bits),
        target.framedFd,
      );
      return;
    }
    const messages = rest as OutboundMessage[];
    const memo = this.memos[bits] as JoinMemo;
    if (!memoMatches(memo, first, messages)) {
      memo.first = first;
      memo.rest = messages.slice();
      memo.wire = this.joinFrames(first, messages, bits);
      this.memosUsed++;
    }
    messages.length = 0;
    writeFrames(socket, memo.wire, target.framedFd);
  }

  /**
   * The frame of `message` for receivers with server window `bits`: compressed
   * once per window size and cached on the message; below the threshold, the
   * plain frame, as ws sends it (RSV1 clear).
   */
  private deflatedWire(message: OutboundMessage, bits: number): readonly Buffer[] {
    if (message.deflatedBits === bits) return message.deflated as readonly Buffer[];
    if (message.data.length < this.deflateThreshold) {
      message.wire ??= frameMessage(message);
      return message.wire;
    }
    const cached = message.moreDeflated?.get(bits);
    if (cached !== undefined) return cached;
    const payload = deflateMessage(message.data, bits, this.deflateOptions);
    const wire = framePayload(payload, message.isBinary, true);
    this.options.stats.sharedCompressions++;
    if (message.deflatedBits === 0) {
      message.deflated = wire;
      message.deflatedBits = bits;
    } else {
      message.moreDeflated ??= new Map();
      message.moreDeflated.set(bits, wire);
    }
    return wire;
  }

  /** The frames of several messages, concatenated into one buffer when small enough. */
  private joinFrames(
    first: OutboundMessage,
    rest: readonly OutboundMessage[],
    bits: number,
  ): readonly Buffer[] {
    const parts: Buffer[] = [];
    for (let i = -1; i < rest.length; i++) {
      const message = i < 0 ? first : (rest[i] as OutboundMessage);
      const wire = bits === 0 ? (message.wire as readonly Buffer[]) : this.deflatedWire(message, bits);
      for (const buffer of wire) parts.push(buffer);
    }
    let total = 0;
    for (const buffer of parts) total += buffer.length;
    return total <= CONCAT_MAX ? [Buffer.concat(parts, total)] : parts;
  }
}

function memoMatches(memo: JoinMemo, first: OutboundMessage, rest: OutboundMessage[]): boolean {
  const memoRest = memo.rest;
  if (first !== memo.first || rest.length !== memoRest.length) return false;
  for (let i = 0; i < rest.length; i++) if (rest[i] !== memoRest[i]) return false;
  return true;
}

function flushOutbound(outbound: Outbound): void {
  outbound.flushAll();
}
