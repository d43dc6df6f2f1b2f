import type { IncomingMessage, ServerResponse } from 'node:http';
import {
  Http2ServerRequest,
  Http2ServerResponse,
  type IncomingHttpHeaders,
  type ServerHttp2Stream,
} from 'node:http2';
import { createRequire } from 'node:module';
import type { Duplex, Writable } from 'node:stream';
import { constants as zlibConstants } from 'node:zlib';
import * as wsModule from 'ws';
import { WebSocket, WebSocketServer } from 'ws';
import { ErrorCode, UsageError } from '../errors.js';
import type { Logger } from '../log.js';

/**
 * The ONE module that relies on what `ws` and Node do not document (issue 14). `ws` is
 * pinned to an exact version (package.json); every shape relied on here is checked once
 * at startup by `checkWsShapes()`, which names what is missing in one log line and
 * switches to the documented fallback (never a silent slow path), and each has a test
 * named for what it guards (ws-adapter.test.ts).
 *
 * What wshub takes from ws: the HTTP handshake (WebSocketServer.handleUpgrade, with
 * permessage-deflate negotiation) and the frame parser (`Receiver`). Everything written
 * to a client goes through wshub's own writer (writer.ts); ws's WebSocket and Sender
 * classes are not used for client connections.
 *
 * The private shapes:
 * 1. The handshake protocol of WebSocketServer.completeUpgrade (lib/websocket-server.js):
 *    it constructs `options.WebSocket` as `new C(null, undefined, options)`, assigns the
 *    negotiated extensions to `_extensions` and the subprotocol to `_protocol`, then calls
 *    `setSocket(socket, head, { maxPayload, maxFragments, maxBufferedChunks,
 *    allowSynchronousEvents, skipUTF8Validation })`. No fallback: without it no
 *    connection can be served, so startup fails with one line (`WsShapeError`).
 * 2. The `Receiver` class (exported, undocumented): its constructor options and its
 *    events `message`, `ping`, `pong`, `conclude`, `drain` and `error`, emitted through
 *    `this.emit` (the connection's receiver subclass gets them in `emit`, without six
 *    listeners per connection). No fallback (as 1).
 * 3. `PerMessageDeflate#params` (the negotiated parameters) and `#cleanup()` (frees the
 *    inflate stream). Fallback when missing: compression is not offered (`--compression`
 *    logs that it is off), since shared compressed frames could not be sized to the window.
 * 4. net.Socket `_handle` and `_handle.fd` (the libuv handle's descriptor), for the writer's
 *    direct write(2) fast path. Fallback: every write goes through the stream (slower for
 *    one-message turns, same bytes).
 * 5. `Receiver#_write` and `#_errored`, for the receiver guard against the permessage-deflate
 *    remote crash (installReceiverGuard below): the one sanctioned patch of ws, installed
 *    once per process. Fallbacks described there.
 */

/** ws's Receiver as wshub uses it: a Writable that parses client frames. */
export interface WsReceiver extends Writable {
  emit(event: string | symbol, ...args: unknown[]): boolean;
}

export interface ReceiverOptions {
  readonly allowSynchronousEvents?: boolean;
  readonly extensions: object;
  readonly isServer: true;
  readonly maxPayload?: number;
  readonly maxFragments?: number;
  readonly maxBufferedChunks?: number;
  readonly skipUTF8Validation?: boolean;
  readonly binaryType: 'nodebuffer';
}

type WsReceiverClass = new (options: ReceiverOptions) => WsReceiver;

const ws = wsModule as unknown as {
  Receiver?: WsReceiverClass;
  PerMessageDeflate?: { prototype: object; extensionName?: string };
};

/**
 * A shape ws does not have (an install other than the pinned version): wshub cannot serve
 * without it. A UsageError, so the process prints one line and exits 2, like any other
 * problem of the environment it was started in.
 */
export class WsShapeError extends UsageError {
  constructor(message: string) {
    super(ErrorCode.WS_INCOMPATIBLE, message);
  }
}

/** ws's frame parser class (shape 2). Subclassed once by the connection module, never patched per connection. */
export const ReceiverBase: WsReceiverClass =
  ws.Receiver ??
  // A class that fails at the first use with the same line checkWsShapes() logs at startup.
  (class {
    constructor() {
      throw new WsShapeError(describeMissing(['ws exports Receiver']));
    }
  } as unknown as WsReceiverClass);

const DEFLATE = 'permessage-deflate';

/** The negotiated permessage-deflate parameters (shape 3), normalized by ws. */
interface DeflateExtension {
  readonly params?: {
    readonly server_no_context_takeover?: boolean;
    readonly server_max_window_bits?: number;
  } | null;
  cleanup?(): void;
}

/**
 * The server window (bits, 8-15) of a connection's permessage-deflate agreement, or 0
 * when none was negotiated. RFC 7692 §7.1.2.1: no server_max_window_bits in the agreement
 * means the server may use up to 15. The writer compresses every message on its own
 * (server_no_context_takeover: wshub asks for it, and a sender may always start each
 * message from an empty history), with at most this window.
 */
export function negotiatedDeflateWindowBits(extensions: object | undefined): number {
  const extension = (extensions as Record<string, DeflateExtension | undefined> | undefined)?.[DEFLATE];
  const params = extension?.params;
  if (params == null) return 0;
  const bits = params.server_max_window_bits;
  return typeof bits === 'number' ? bits : zlibConstants.Z_DEFAULT_WINDOWBITS;
}

/** Frees the connection's inflate stream (ws's WebSocket does this when it emits 'close'). */
export function releaseExtensions(extensions: object | undefined): void {
  const extension = (extensions as Record<string, DeflateExtension | undefined> | undefined)?.[DEFLATE];
  extension?.cleanup?.();
}

/** net.Socket's libuv handle (shape 4): null once the descriptor is closed. */
type SocketWithHandle = Duplex & { _handle?: { readonly fd?: number } | null; encrypted?: boolean };

let directWrites = true;

/**
 * The descriptor a plain TCP socket's frames may be written to directly, or -1 (TLS: the
 * descriptor carries ciphertext; an HTTP/2 stream or any other Duplex has none; direct
 * writes switched off by checkWsShapes). Read once per connection: `fd` is a native accessor.
 */
export function descriptorOf(socket: Duplex): number {
  if (!directWrites) return -1;
  const { _handle: handle, encrypted } = socket as SocketWithHandle;
  if (handle == null || encrypted === true) return -1;
  const fd = handle.fd;
  return typeof fd === 'number' && fd >= 0 ? fd : -1;
}

/**
 * Whether the socket still owns its descriptor: Node drops the handle synchronously when
 * it closes the descriptor, so a number read by descriptorOf() is never another
 * connection's while this holds.
 */
export function descriptorOpen(socket: Duplex): boolean {
  return (socket as SocketWithHandle)._handle != null;
}

/** The result of the startup check. */
export interface WsShapes {
  /** One line per shape that is missing, with the fallback taken. */
  readonly problems: readonly string[];
  /** Shape 3 holds: permessage-deflate may be negotiated. */
  readonly compression: boolean;
}

function describeMissing(missing: readonly string[]): string {
  return `ws ${wsVersion()} lacks what wshub relies on (${missing.join('; ')}); wshub pins ws to an exact version, reinstall with npm ci`;
}

function wsVersion(): string {
  try {
    return (createRequire(import.meta.url)('ws/package.json') as { version: string }).version;
  } catch {
    return '(version unknown)';
  }
}

/**
 * Checks the private shapes of ws once, at startup. Throws WsShapeError for shapes 1 and 2
 * (nothing can be served without them); returns the fallback for 3.
 */
export function checkWsShapes(): WsShapes {
  const fatal: string[] = [];
  if (typeof ws.Receiver !== 'function') fatal.push('ws exports Receiver');
  else {
    const proto = ws.Receiver.prototype as { _write?: unknown; startLoop?: unknown };
    if (typeof proto._write !== 'function' || typeof proto.startLoop !== 'function') {
      fatal.push('Receiver has _write and startLoop');
    }
  }
  const completeUpgrade = (WebSocketServer.prototype as unknown as { completeUpgrade?: unknown })
    .completeUpgrade;
  const source =
    typeof completeUpgrade === 'function' ? Function.prototype.toString.call(completeUpgrade) : '';
  if (
    !/\.setSocket\(/.test(source) ||
    !/\._extensions\s*=/.test(source) ||
    !/new this\.options\.WebSocket\(/.test(source)
  ) {
    fatal.push(
      'WebSocketServer.completeUpgrade constructs options.WebSocket, sets _extensions and calls setSocket',
    );
  }
  if (fatal.length > 0) throw new WsShapeError(describeMissing(fatal));

  const problems: string[] = [];
  const deflateProto = ws.PerMessageDeflate?.prototype as { cleanup?: unknown; accept?: unknown } | undefined;
  const compression =
    typeof deflateProto?.cleanup === 'function' && typeof deflateProto.accept === 'function';
  if (!compression) {
    problems.push(
      `ws ${wsVersion()}: PerMessageDeflate#params/#cleanup not found; --compression is off (permessage-deflate is not negotiated)`,
    );
  }
  return { problems, compression };
}

/**
 * Shape 4, checked on the first plain TCP socket (there is none at startup): undefined when
 * its handle has a descriptor; otherwise direct writes are switched off for good and the
 * line to log says so.
 */
export function checkDescriptorShape(socket: Duplex): string | undefined {
  const { _handle: handle, encrypted } = socket as SocketWithHandle;
  if (!directWrites || encrypted === true || handle === null) return undefined;
  if (handle !== undefined && typeof handle.fd === 'number') return undefined;
  directWrites = false;
  return `Node ${process.version}: net.Socket _handle.fd not found; frames are written through the stream only (no direct write(2))`;
}

type Callback = (error?: Error | null) => void;
type StartLoop = (this: ReentryTracked, cb: Callback) => void;
interface ReentryTracked {
  [inLoop]?: boolean;
}
const inLoop = Symbol('wshub.receiverInLoop');
let reentryCheckInstalled = false;

/**
 * Tests only (never in production): makes a re-entry into a receiver's parse loop throw,
 * with a stack, instead of silently corrupting its state (issue 14: a callout — a message
 * handler, a write, a close — must never feed the receiver that is calling it out). Wraps
 * Receiver#startLoop once, for every receiver, before any connection exists. The loop's
 * own callback (the write's completion, after which Node may hand the receiver its next
 * buffered chunk) runs outside the loop, as ws intends.
 */
export function installReceiverReentryCheck(): void {
  if (reentryCheckInstalled || ws.Receiver === undefined) return;
  reentryCheckInstalled = true;
  const proto = ws.Receiver.prototype as unknown as { startLoop: StartLoop };
  const startLoop = proto.startLoop;
  proto.startLoop = function checkedStartLoop(this: ReentryTracked, cb: Callback): void {
    if (this[inLoop] === true) {
      throw new Error('re-entry into a ws Receiver parse loop (a callout fed the receiver that called it)');
    }
    this[inLoop] = true;
    try {
      startLoop.call(this, (error) => {
        this[inLoop] = false;
        cb(error);
      });
    } finally {
      this[inLoop] = false;
    }
  };
}

// The receiver guard (issue 14's remote crash).

/** The parts of ws's (undocumented) `Receiver` the guard relies on. */
export interface ReceiverInstance {
  /** Set by `Receiver.createError` the moment a frame is rejected (ws lib/receiver.js). */
  _errored?: unknown;
  write(chunk: Buffer): boolean;
  on(event: 'error', listener: (error: Error) => void): unknown;
  destroy(): unknown;
}
type WriteCallback = (error?: Error | null) => void;
type ReceiverWrite = (
  this: ReceiverInstance,
  chunk: Buffer,
  encoding: BufferEncoding,
  cb: WriteCallback,
) => void;
/** ws exports `Receiver` (lib/receiver.js) but @types/ws does not declare it. */
const Receiver = (wsModule as unknown as { Receiver?: ReceiverClass }).Receiver;

/**
 * Marks `Receiver.prototype` once the guard is on it, so installing is idempotent across the
 * transports of one process (tests build several). A global symbol, so a test preload
 * (test/helpers/unguarded-ws.ts) can mark the prototype first and show what happens without it.
 */
export const RECEIVER_GUARD_MARK = Symbol.for('wshub.wsReceiverGuard');
/** The fallback's own record that a receiver failed (used only when `_errored` is missing). */
const FAILED = Symbol('wshub.receiverFailed');

export interface ReceiverClass {
  new (options?: { isServer?: boolean }): ReceiverInstance;
  prototype: { _write?: ReceiverWrite } & Record<symbol, unknown>;
}

export type ReceiverGuardState =
  /** `_write` is wrapped and reads ws's own `_errored` flag (no cost per write beyond one check). */
  | 'errored-flag'
  /** `_errored` is missing, not a boolean or not set synchronously: the wrapper records failures itself. */
  | 'callback-fallback'
  /** ws has no `Receiver` or no `Receiver.prototype._write`: nothing to wrap, the server is exposed. */
  | 'unguarded'
  /** Something else (a test preload) marked the prototype first. */
  | 'preset';

/**
 * The remote crash of issue 14 (ws 8.23.0 and 8.23.1): with permessage-deflate, a client sends a
 * compressed frame that takes a few event-loop turns to inflate (W1), then a frame ws rejects only
 * after reading its mask (invalid UTF-8, invalid close code or reason, too many fragments: W2),
 * then any masked frame (W3). While W1 inflates, Node's Writable queues W2 and W3; when inflation
 * ends, `clearBuffer` calls `_write(W2)`, which fails synchronously and leaves the receiver in
 * GET_DATA with the mask cleared, and in the same loop calls `_write(W3)`: `_write` never checks
 * that the receiver already failed, so `getData` reads `this._mask[0]` of undefined and the
 * TypeError, thrown from a zlib callback, ends the process. The quieter symptom: a frame after a
 * rejected one can be emitted as a 'message' before the error. An errored receiver must drop all
 * further data; this wraps `_write` once per process (never per connection) to do that.
 */
export function installReceiverGuard(logger: Pick<Logger, 'warn' | 'error'>): ReceiverGuardState {
  return guardReceiverClass(Receiver, logger);
}

/** `installReceiverGuard` for a given class (tests pass subclasses whose shapes differ). */
export function guardReceiverClass(
  ReceiverCtor: ReceiverClass | undefined,
  logger: Pick<Logger, 'warn' | 'error'>,
): ReceiverGuardState {
  const proto = ReceiverCtor?.prototype;
  const original = proto?._write;
  if (ReceiverCtor === undefined || proto === undefined || typeof original !== 'function') {
    if (!unguardedLogged) {
      unguardedLogged = true;
      logger.error(
        'ws adapter: ws no longer exports Receiver with a _write method; the guard against the permessage-deflate receiver crash (issue 14) is NOT installed: pin ws to the version in package.json',
      );
    }
    return 'unguarded';
  }
  if (Object.hasOwn(proto, RECEIVER_GUARD_MARK)) {
    const state = proto[RECEIVER_GUARD_MARK];
    return state === 'errored-flag' || state === 'callback-fallback' ? state : 'preset';
  }
  let installed: ReceiverGuardState;
  if (erroredFlagWorks(ReceiverCtor)) {
    proto._write = function guardedWrite(this: ReceiverInstance, chunk, encoding, cb): void {
      if (this._errored === true) {
        cb();
        return;
      }
      original.call(this, chunk, encoding, cb);
    };
    installed = 'errored-flag';
  } else {
    // Fallback: every receiver error reaches the `_write` callback (synchronous rejections and
    // the inflate callback's alike), so the wrapper records it there. Costs one closure per
    // chunk the socket reads.
    proto._write = function guardedWrite(this: ReceiverInstance, chunk, encoding, cb): void {
      const self = this as ReceiverInstance & { [FAILED]?: true };
      if (self[FAILED]) {
        cb();
        return;
      }
      original.call(this, chunk, encoding, (error) => {
        if (error) self[FAILED] = true;
        cb(error);
      });
    };
    installed = 'callback-fallback';
    logger.warn(
      "ws adapter: ws's Receiver no longer sets _errored when it rejects a frame; the receiver guard (issue 14) records failures through the write callback instead (one closure per socket read)",
    );
  }
  proto[RECEIVER_GUARD_MARK] = installed;
  return installed;
}

let unguardedLogged = false;

/** Whether a bare receiver that rejects a frame sets `_errored` synchronously, as ws 8.23 does. */
function erroredFlagWorks(ReceiverCtor: ReceiverClass): boolean {
  try {
    const receiver = new ReceiverCtor({ isServer: true });
    if (receiver._errored !== false) return false;
    receiver.on('error', ignore);
    // An unmasked client frame: rejected synchronously ("MASK must be set", RFC 6455 §5.1).
    receiver.write(Buffer.from([0x82, 0x00]));
    const flagged = erroredOf(receiver) === true;
    receiver.destroy();
    return flagged;
  } catch {
    return false;
  }
}

function ignore(): void {}
const erroredOf = (receiver: ReceiverInstance): unknown => receiver._errored;

// --- WebSockets over HTTP/2 (issue 17): ws and Node used where they do not document it.

/** A handshake answer ws wrote as HTTP/1.1 text, as a status and headers another protocol can send. */
export interface HandshakeAnswer {
  readonly status: number;
  /** Header names in lower case; HTTP/1.1 connection-specific ones (Connection, Upgrade, Sec-WebSocket-Accept) removed. */
  readonly headers: Record<string, string>;
  readonly body: string;
}

/**
 * RFC 9113 §8.2.2: connection-specific header fields must not appear in HTTP/2; RFC 8441 §5:
 * Sec-WebSocket-Key/Accept are not used. What is left of ws's 101 is what the extended CONNECT
 * answer carries (Sec-WebSocket-Extensions, Sec-WebSocket-Protocol).
 */
const HTTP1_ONLY_HEADERS = new Set(['connection', 'upgrade', 'sec-websocket-accept', 'content-length']);

export function parseHttp1Answer(text: string): HandshakeAnswer {
  const end = text.indexOf('\r\n\r\n');
  const head = end === -1 ? text : text.slice(0, end);
  const body = end === -1 ? '' : text.slice(end + 4);
  const [statusLine = '', ...lines] = head.split('\r\n');
  const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(statusLine)?.[1] ?? 500);
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    const name = line.slice(0, colon).trim().toLowerCase();
    if (!HTTP1_ONLY_HEADERS.has(name)) headers[name] = line.slice(colon + 1).trim();
  }
  return { status, headers, body };
}

type Write = (chunk: unknown, ...rest: unknown[]) => unknown;
interface Interceptable {
  write: Write;
  end: Write;
}

/**
 * Runs ws's server handshake over a stream that is not an HTTP/1.1 socket: an HTTP/2 stream
 * answering an extended CONNECT (RFC 8441). ws negotiates exactly as for HTTP/1.1
 * (permessage-deflate, subprotocol) and answers in HTTP/1.1 text: the 101 with ONE
 * `socket.write()` immediately before `setSocket()` (ws 8 lib/websocket-server.js
 * `completeUpgrade`), a refusal with ONE `socket.end()` (`abortHandshake`). Both calls are taken
 * off the stream for the duration of this synchronous call and handed to `answer` as a status
 * and headers; every byte ws writes after is a WebSocket frame and goes to the stream.
 */
export function handleUpgradeOverStream(
  wss: WebSocketServer,
  request: IncomingMessage,
  stream: Duplex,
  answer: (reply: HandshakeAnswer) => void,
  callback: (ws: WebSocket, request: IncomingMessage) => void,
): void {
  const target = stream as unknown as Interceptable;
  const own = target as unknown as Record<string, unknown>;
  let answered = false;
  const restore = (): void => {
    delete own.write;
    delete own.end;
  };
  const intercept = (chunk: unknown): boolean => {
    restore();
    if (!answered) {
      answered = true;
      answer(parseHttp1Answer(String(chunk)));
    }
    return true;
  };
  target.write = intercept;
  target.end = function interceptEnd(chunk: unknown) {
    intercept(chunk);
    return stream;
  };
  try {
    wss.handleUpgrade(request, stream, Buffer.alloc(0), callback);
  } finally {
    restore();
  }
}

interface SocketAttachable {
  _isServer: boolean;
  setSocket(
    socket: Duplex,
    head: Buffer,
    options: { maxPayload: number; allowSynchronousEvents: boolean; skipUTF8Validation: boolean },
  ): void;
  emitClose(): void;
}

/**
 * A client-side WebSocket with no transport yet, for one that will run over an HTTP/2 stream
 * (RFC 8441). ws's client only opens its own HTTP/1.1 connection, so this does what its
 * `initAsClient` + upgrade handler do: a WebSocket built without an address (ws's server-side
 * constructor, lib/websocket.js), switched to the client role (`_isServer` false: its frames are
 * masked, RFC 6455 §5.3, and the server's must not be). Listeners are added before
 * `attachClientStream`, which emits 'open'.
 */
export function createClientWebSocket(): WebSocket {
  const ws = new WebSocket(null as unknown as string, undefined, {
    autoPong: true,
    closeTimeout: 30_000,
  } as unknown as WebSocket.ClientOptions);
  (ws as unknown as SocketAttachable)._isServer = false;
  return ws;
}

/** Attaches the stream of a 200 answer to an extended CONNECT (ws `setSocket`); no extension is negotiated. */
export function attachClientStream(ws: WebSocket, stream: Duplex, maxPayload: number): void {
  (ws as unknown as SocketAttachable).setSocket(stream, Buffer.alloc(0), {
    maxPayload,
    allowSynchronousEvents: true,
    skipUTF8Validation: false,
  });
}

/** A client WebSocket that never got a stream: 'error', then 'close' with 1006, as ws reports a failed handshake. */
export function failClientWebSocket(ws: WebSocket, error: Error): void {
  if (ws.readyState !== WebSocket.CONNECTING) return;
  ws.emit('error', error);
  (ws as unknown as SocketAttachable).emitClose();
}

type CompatRequest = new (
  stream: ServerHttp2Stream,
  headers: IncomingHttpHeaders,
  options: undefined,
  rawHeaders: string[],
) => Http2ServerRequest;
type CompatResponse = new (stream: ServerHttp2Stream) => Http2ServerResponse;

/**
 * A plain request on an HTTP/2 stream as the request/response pair of Node's compatibility API,
 * which the port's plain routes (console, /stats, /publish) use as they use HTTP/1.1's. Node
 * builds the same pair itself when a server has a 'request' listener (lib/internal/http2/compat.js
 * `onServerStream`); wshub builds it only for non-CONNECT streams, so a WebSocket stream carries
 * none of it. The route types are HTTP/1.1's: the compat classes implement the part they use
 * (method, url, headers, socket address, body events; writeHead, end).
 */
export function compatPairOf(
  stream: ServerHttp2Stream,
  headers: IncomingHttpHeaders,
  rawHeaders: string[],
): [IncomingMessage, ServerResponse] {
  const request = new (Http2ServerRequest as unknown as CompatRequest)(
    stream,
    headers,
    undefined,
    rawHeaders,
  );
  const response = new (Http2ServerResponse as unknown as CompatResponse)(stream);
  return [request as unknown as IncomingMessage, response as unknown as ServerResponse];
}
