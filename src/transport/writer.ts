import { writeSync as fsWriteSync } from 'node:fs';
import type { Duplex } from 'node:stream';
import type { ZlibOptions } from 'node:zlib';
import type { OutboundMessage } from '../hub/message.js';
import type { Stats } from '../stats.js';
import { deflateMessage } from './compression.js';
import {
  closeFrame,
  frameMessage,
  framePayload,
  OPCODE_BINARY,
  OPCODE_TEXT,
  PING_FRAME,
  pongFrame,
} from './frames.js';
import { descriptorOpen } from './ws-adapter.js';

/** readyState values, as RFC 6455 / the WebSocket API name them. */
export const CONNECTING = 0;
export const OPEN = 1;
export const CLOSING = 2;
export const CLOSED = 3;

/** Close-handshake flags (Writer.handshake). */
const CLOSE_SENT = 1;
const CLOSE_RECEIVED = 2;
/** The receiver failed: no close frame will be read, so none is waited for. */
const READ_FAILED = 4;

/** How long a closing connection waits for the peer's close frame and FIN before it is cut (ws's default). */
export const CLOSE_TIMEOUT_MS = 30_000;

/** Up to this many bytes, the frames of one turn are concatenated into one buffer (one write, one send). */
const CONCAT_MAX = 256 * 1024;

/**
 * The writer of one connection (issue 14): the only code that writes to a client's
 * transport. Data frames (a message's shared pre-framed bytes, its shared compressed
 * frame, or bytes of this connection alone), ping, pong and close all pass here, in the
 * order they were asked for: a control frame first writes the data frames corked before
 * it. It owns the close handshake (RFC 6455 §7.1: send a close frame, wait for the
 * peer's, end the TCP connection, cut it after CLOSE_TIMEOUT_MS), the `--max-buffered-bytes`
 * limit (a message for a writer past it is dropped and the writer reported as a slow
 * consumer) and the choice between a direct write(2) and the stream.
 *
 * It writes to any Duplex: a TCP socket (with the direct-write fast path), a TLS socket,
 * or an HTTP/2 stream (RFC 8441: pass the stream as `transport` and -1 as `fd`; ending
 * the stream ends the WebSocket). State is a few fields; behaviour lives on the
 * prototype and in the shared WriterGroup: no closure, listener or timer per writer
 * (one timer only while a close waits for the peer).
 */
export class Writer<Owner = unknown> {
  state = OPEN;
  /** CLOSE_SENT | CLOSE_RECEIVED | READ_FAILED. */
  handshake = 0;
  /** Frames delivered in this event-loop turn, not yet written (see WriterGroup). */
  pendingFirst: OutboundMessage | undefined = undefined;
  pendingRest: OutboundMessage[] | undefined = undefined;
  pendingCount = 0;
  pendingBytes = 0;
  closeTimer: NodeJS.Timeout | undefined = undefined;

  constructor(
    readonly group: WriterGroup<Owner>,
    /** What frames are written to. */
    readonly transport: Duplex,
    /** transport's descriptor for direct writes (ws-adapter descriptorOf), or -1. */
    readonly fd: number,
    /** 0, or the server window of the negotiated permessage-deflate (RFC 7692 §7.1.2.1). */
    readonly deflateWindowBits: number,
    /** Handed back to the group's slow-consumer callback. */
    readonly owner: Owner,
  ) {}

  /** Bytes accepted but not yet handed to the kernel: the stream's queue and this turn's corked frames. */
  get bufferedAmount(): number {
    return this.transport.writableLength + this.pendingBytes;
  }

  /** A data message, written at the end of this event-loop turn with the others (corked). */
  deliver(message: OutboundMessage): void {
    this.group.deliver(this, message);
  }

  /** Writes this turn's corked frames now. */
  flush(): void {
    if (this.pendingCount > 0) this.group.flush(this);
  }

  /** A ping (RFC 6455 §5.5.2), after the frames corked before it. False when the connection is not open. */
  ping(): boolean {
    if (this.state !== OPEN) return false;
    this.flush();
    this.write(PING_FRAME);
    return true;
  }

  /**
   * The pong answering a ping (§5.5.3), after the frames corked before it. A client that
   * pings but does not read would make pongs pile up: past --max-buffered-bytes it is a
   * slow consumer, as for data.
   */
  pong(data: Buffer): void {
    if (this.state !== OPEN) return;
    const buffered = this.bufferedAmount;
    if (buffered > this.group.maxBufferedBytes) {
      this.group.slowConsumer(this, buffered);
      return;
    }
    this.flush();
    this.write(pongFrame(data));
  }

  /**
   * Starts the close handshake (§7.1.2): the frames corked before, then a close frame
   * with `code` (none: an empty close body) and `text`; the TCP connection is ended once
   * the peer's close frame has arrived too (or its frames cannot be read), and cut after
   * CLOSE_TIMEOUT_MS if it never does. Called again while closing, it ends the TCP
   * connection once both close frames have passed.
   */
  close(code: number | undefined, text: string | Buffer = ''): void {
    if (this.state === CLOSED) return;
    if (this.state === CLOSING) {
      if ((this.handshake & CLOSE_SENT) !== 0 && (this.handshake & (CLOSE_RECEIVED | READ_FAILED)) !== 0) {
        this.end();
      }
      return;
    }
    this.flush();
    this.state = CLOSING;
    this.write(closeFrame(code, typeof text === 'string' ? text : text.toString('utf8')));
    this.handshake |= CLOSE_SENT;
    if ((this.handshake & (CLOSE_RECEIVED | READ_FAILED)) !== 0) this.end();
    if (this.state !== CLOSED) this.closeTimer = setTimeout(closeTimedOut, this.group.closeTimeoutMs, this);
  }

  /** The peer's close frame arrived (the receiver concluded). */
  closeReceived(): void {
    this.handshake |= CLOSE_RECEIVED;
  }

  /** The receiver failed: no close frame will be read. */
  readFailed(): void {
    this.handshake |= READ_FAILED;
  }

  get readFailedAlready(): boolean {
    return (this.handshake & READ_FAILED) !== 0;
  }

  /** No more client frames are parsed: the close frame arrived or the receiver failed. */
  get readDone(): boolean {
    return (this.handshake & (CLOSE_RECEIVED | READ_FAILED)) !== 0;
  }

  /** The peer ended its side (TCP FIN): what is corked goes out, then this side ends too. */
  peerEnded(): void {
    this.flush();
    if (this.state === OPEN) this.state = CLOSING;
    this.end();
  }

  /** Cuts the connection without a close frame; corked frames are discarded with it. */
  terminate(): void {
    if (this.state === CLOSED) return;
    this.state = CLOSING;
    this.discardPending();
    this.transport.destroy();
  }

  /** The transport has closed: nothing more is written, the close timer stops. */
  transportClosed(): void {
    this.state = CLOSED;
    this.discardPending();
    if (this.closeTimer !== undefined) {
      clearTimeout(this.closeTimer);
      this.closeTimer = undefined;
    }
  }

  /** Ends the transport once (a repeated end() makes Node build an error nobody receives). */
  private end(): void {
    const transport = this.transport;
    if (!transport.writableEnded && !transport.destroyed) transport.end();
  }

  private discardPending(): void {
    if (this.pendingCount === 0) return;
    this.pendingFirst = undefined;
    if (this.pendingRest !== undefined) this.pendingRest.length = 0;
    this.pendingCount = 0;
    this.pendingBytes = 0;
  }

  /**
   * Writes bytes as one write, straight to the descriptor when the stream holds nothing
   * (see writeDirect), else through the stream. A frame is always written whole and
   * synchronously, so frames never interleave.
   */
  write(buffer: Buffer): void {
    const transport = this.transport;
    if (transport.writableEnded || transport.destroyed) return;
    if (this.fd < 0 || !this.writeDirect(buffer)) transport.write(buffer);
  }

  /** Several buffers as one write (the stream's cork), or one. */
  writeAll(wire: readonly Buffer[]): void {
    if (wire.length === 1) {
      this.write(wire[0] as Buffer);
      return;
    }
    const transport = this.transport;
    if (transport.writableEnded || transport.destroyed) return;
    transport.cork();
    for (const buffer of wire) transport.write(buffer);
    transport.uncork();
  }

  /**
   * One write(2) to the descriptor, past the stream machinery (issue 5, one message in
   * flight: per delivery, Writable.write, a WriteWrap and an after-write tick cost as much
   * user-space time as the rest of the delivery). Only while the socket still has its
   * descriptor (ws-adapter descriptorOpen) and its stream holds nothing (the stream's
   * length counts a write until libuv completes it, so nothing is queued in libuv
   * either): the bytes cannot overtake earlier ones. A partial write queues the rest
   * through the stream. False when it did not write (a full kernel buffer, EAGAIN; any
   * error such as EPIPE, which the stream then reports in the usual way): the caller
   * writes through the stream.
   */
  private writeDirect(buffer: Buffer): boolean {
    const transport = this.transport;
    if (transport.writableLength !== 0 || !descriptorOpen(transport)) return false;
    let written: number;
    try {
      written = this.group.writeSync(this.fd, buffer);
    } catch {
      return false;
    }
    if (written < buffer.length) transport.write(buffer.subarray(written));
    return true;
  }
}

function closeTimedOut(writer: { closeTimer: NodeJS.Timeout | undefined; readonly transport: Duplex }): void {
  writer.closeTimer = undefined;
  writer.transport.destroy();
}

export interface WriterGroupOptions<Owner> {
  readonly stats: Stats;
  /** --max-buffered-bytes: how much may wait in a connection's outbound buffer. */
  readonly maxBufferedBytes: number;
  /** A message was dropped because `writer` cannot keep up (counted already); it is to be disconnected. */
  readonly onSlowConsumer: (writer: Writer<Owner>, buffered: number) => void;
  /** With --compression: messages from this size up are compressed (--compression-threshold, as ws does). */
  readonly deflateThreshold?: number;
  /** zlib options of compressed messages. */
  readonly deflateOptions?: ZlibOptions;
  /** Tests: a stand-in for fs.writeSync (partial writes, EAGAIN). */
  readonly writeSync?: (fd: number, buffer: Buffer) => number;
  /** Tests: a shorter close timeout. */
  readonly closeTimeoutMs?: number;
}

/** The last concatenation built in a flush for one kind of receiver, reused by every receiver of the same messages. */
class JoinMemo {
  first: OutboundMessage | undefined = undefined;
  rest: OutboundMessage[] = [];
  wire: readonly Buffer[] = [];
}

/**
 * What the writers of one server share: the end-of-turn flush, the frames of a message
 * (framed once, compressed once per server window: RFC 7692 §7.1.1.1, each message from
 * an empty history), and the concatenations receivers of the same messages share.
 *
 * Corking (issue 5): frames delivered during one event-loop turn are not written at
 * once; the writer is marked and, at the end of the turn (process.nextTick), everything
 * bound for one transport goes out in one write. A broadcast of 16 messages to 1,000
 * clients is 1,000 writes, not 16,000. Receivers of the same sequence of messages (a
 * room) share one concatenated buffer, built once: no allocation per receiver.
 */
export class WriterGroup<Owner = unknown> {
  private dirty: Writer<Owner>[] = [];
  private flushScheduled = false;
  /** Per kind of receiver (index: deflateWindowBits, 0 for plain frames), the last concatenation of this flush. */
  private readonly memos: JoinMemo[] = Array.from({ length: 16 }, () => new JoinMemo());
  private memosUsed = 0;
  private readonly deflateThreshold: number;
  private readonly deflateOptions: ZlibOptions;
  readonly maxBufferedBytes: number;
  readonly closeTimeoutMs: number;
  readonly writeSync: (fd: number, buffer: Buffer) => number;

  constructor(private readonly options: WriterGroupOptions<Owner>) {
    this.deflateThreshold = options.deflateThreshold ?? 0;
    this.deflateOptions = options.deflateOptions ?? {};
    this.maxBufferedBytes = options.maxBufferedBytes;
    this.closeTimeoutMs = options.closeTimeoutMs ?? CLOSE_TIMEOUT_MS;
    this.writeSync = options.writeSync ?? fsWriteSync;
  }

  /** The slow-consumer policy: counted, reported (the owner closes it with 1008). */
  slowConsumer(writer: Writer<Owner>, buffered: number): void {
    this.options.stats.messagesDropped.slow_consumer++;
    this.options.onSlowConsumer(writer, buffered);
  }

  deliver(writer: Writer<Owner>, message: OutboundMessage): void {
    if (writer.state !== OPEN) return;
    const size = message.data.length;
    const buffered = writer.bufferedAmount;
    // Past the limit already: the receiver is not keeping up. Judged on what is waiting, not on the
    // new message's size, so a large message never cuts off a client that keeps up; what waits for
    // one client is bounded by the limit plus one message.
    if (buffered > this.maxBufferedBytes) {
      this.slowConsumer(writer, buffered);
      return;
    }
    const bits = writer.deflateWindowBits;
    if (bits === 0) message.wire ??= frameMessage(message);
    else this.deflatedWire(message, bits);
    if (writer.pendingCount === 0) {
      writer.pendingFirst = message;
      this.dirty.push(writer);
      if (!this.flushScheduled) {
        this.flushScheduled = true;
        process.nextTick(flushGroup, this);
      }
    } else {
      writer.pendingRest ??= [];
      writer.pendingRest.push(message);
    }
    writer.pendingCount++;
    writer.pendingBytes += size;
    const stats = this.options.stats;
    stats.messagesDelivered++;
    stats.bytesSent += size;
  }

  /** Writes every writer's pending frames (end of the event-loop turn). */
  flushAll(): void {
    this.flushScheduled = false;
    const dirty = this.dirty;
    // Writes never re-enter deliver() synchronously (stream errors are emitted on a later tick).
    for (let i = 0; i < dirty.length; i++) this.flush(dirty[i] as Writer<Owner>);
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

  /** Writes `writer`'s pending frames now, in one write. */
  flush(writer: Writer<Owner>): void {
    const count = writer.pendingCount;
    if (count === 0) return;
    const first = writer.pendingFirst as OutboundMessage;
    const rest = writer.pendingRest;
    writer.pendingFirst = undefined;
    writer.pendingCount = 0;
    writer.pendingBytes = 0;
    if (writer.state !== OPEN) {
      if (rest !== undefined) rest.length = 0;
      return;
    }
    const bits = writer.deflateWindowBits;
    this.options.stats.socketWrites++;
    if (count === 1) {
      writer.writeAll(bits === 0 ? (first.wire as readonly Buffer[]) : this.deflatedWire(first, bits));
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
    writer.writeAll(memo.wire);
  }

  /**
   * The frame of `message` for receivers with server window `bits`: compressed once per
   * window size and cached on the message (RFC 7692 §7.2.1: raw DEFLATE from an empty
   * history; valid whether or not context takeover was negotiated, since a sender never
   * has to refer back); below the threshold, the plain frame (RSV1 clear), as ws sends it.
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
    const wire = framePayload(payload, message.isBinary ? OPCODE_BINARY : OPCODE_TEXT, true);
    // The metric counts broadcasts compressed once for many receivers, not one client's own messages.
    if (message.fanOut) this.options.stats.sharedCompressions++;
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

function flushGroup(group: { flushAll(): void }): void {
  group.flushAll();
}
