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

/** The wire bytes of a message as one unfragmented frame: [header] or [header, payload]. */
export function frameMessage(message: OutboundMessage): readonly Buffer[] {
  return Sender.frame(message.data, message.isBinary ? BINARY_FRAME : TEXT_FRAME);
}

/**
 * Writes one frame. A frame is written whole and synchronously, so it can never
 * interleave with a frame ws's own sender writes (close, ping, pong): ws writes
 * synchronously too while no extension is active, which is the only case this is used in.
 * The seam for per-event-loop-turn corking: every framed write goes through here.
 */
export function writeFrame(socket: Duplex, wire: readonly Buffer[]): void {
  if (wire.length === 2) {
    socket.cork();
    socket.write(wire[0] as Buffer);
    socket.write(wire[1] as Buffer);
    socket.uncork();
  } else {
    socket.write(wire[0] as Buffer);
  }
}

export interface OutboundOptions {
  readonly stats: Stats;
  /** --max-buffered-bytes: how much may wait in a connection's outbound buffer. */
  readonly maxBufferedBytes: number;
  /** A message was dropped because `target` cannot keep up (counted already); it is to be disconnected. */
  readonly onSlowConsumer: (target: OutboundTarget, buffered: number) => void;
}

/**
 * The outbound half of the message path: frames a message once (cached on the
 * message), enforces the per-connection buffer limit and writes. It never
 * waits: a full buffer means the receiver is too slow, and the message is
 * dropped for that receiver alone.
 */
export class Outbound {
  constructor(private readonly options: OutboundOptions) {}

  deliver(target: OutboundTarget, message: OutboundMessage): void {
    if (target.readyState !== OPEN) return;
    const size = message.data.length;
    const buffered = target.bufferedAmount;
    // Past the limit already: the receiver is not keeping up. Judged on what is waiting, not on the
    // new message's size, so a large message never cuts off a client that keeps up; what waits for
    // one client is bounded by the limit plus one message.
    if (buffered > this.options.maxBufferedBytes) {
      this.options.stats.messagesDropped.slow_consumer++;
      this.options.onSlowConsumer(target, buffered);
      return;
    }
    const socket = target.framedSocket;
    if (socket === undefined) {
      target.send(message.data, { binary: message.isBinary });
    } else {
      message.wire ??= frameMessage(message);
      writeFrame(socket, message.wire);
    }
    const stats = this.options.stats;
    stats.messagesDelivered++;
    stats.bytesSent += size;
  }
}
