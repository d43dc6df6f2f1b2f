import type { IncomingMessage, ServerResponse } from 'node:http';
import {
  Http2ServerRequest,
  Http2ServerResponse,
  type IncomingHttpHeaders,
  type ServerHttp2Stream,
} from 'node:http2';
import { createRequire } from 'node:module';
import { Duplex, type Writable } from 'node:stream';
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
 * 6. ws's handshake over a stream that is not an HTTP/1.1 socket (--http2, RFC 8441,
 *    handleUpgradeOverStream below): completeUpgrade writes the 101 with ONE `socket.write()`
 *    before `setSocket()`, a refusal is ONE `socket.end()`. Checked at startup by running the
 *    handshake over an in-memory stream (checkHttp2Shapes). Fallback: --http2 serves HTTP/2
 *    without WebSockets (SETTINGS_ENABLE_CONNECT_PROTOCOL is not sent, RFC 8441 §3, so clients
 *    open their WebSockets with an HTTP/1.1 upgrade), logged.
 * 7. Node's HTTP/2 compatibility classes built for one stream (`new Http2ServerRequest(stream,
 *    headers, options, rawHeaders)`, `new Http2ServerResponse(stream)`; compatPairOf below), for
 *    the port's plain routes over HTTP/2. Checked at startup with --http2 (checkHttp2Shapes). No
 *    fallback: --http2 fails at startup with one line (WsShapeError), run without it.
 * 8. The client side of --http2 (`wshub client`, `wshub bench`): ws's WebSocket built without an
 *    address has `_isServer`, `setSocket()` and `emitClose()` (createClientWebSocket below).
 *    Checked when the subcommand starts (checkHttp2ClientShape). No fallback: one line, exit 2.
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

/** What checkWsShapes reads of ws (tests pass a library that lacks a part). */
export interface WsLibrary {
  readonly Receiver?: WsReceiverClass | undefined;
  readonly PerMessageDeflate?:
    | (new (
        options: object,
        isServer: boolean,
        maxPayload: number,
      ) => DeflateExtension & { accept?(offers: object[]): unknown })
    | undefined;
  readonly WebSocketServer?: { prototype: object } | undefined;
}

const ws = wsModule as unknown as WsLibrary;

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
 * (nothing can be served without them); returns the fallback for 3. `lib`: tests only.
 */
export function checkWsShapes(lib: WsLibrary = ws): WsShapes {
  const fatal: string[] = [];
  if (typeof lib.Receiver !== 'function') fatal.push('ws exports Receiver');
  else {
    const proto = lib.Receiver.prototype as { _write?: unknown; startLoop?: unknown };
    if (typeof proto._write !== 'function' || typeof proto.startLoop !== 'function') {
      fatal.push('Receiver has _write and startLoop');
    }
  }
  const completeUpgrade = (lib.WebSocketServer?.prototype as { completeUpgrade?: unknown } | undefined)
    ?.completeUpgrade;
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
  const compression = deflateShapeHolds(lib.PerMessageDeflate);
  if (!compression) {
    problems.push(
      `ws ${wsVersion()}: PerMessageDeflate#params/#cleanup not found; --compression is off (permessage-deflate is not negotiated)`,
    );
  }
  return { problems, compression };
}

/**
 * Shape 3, by use: a server-side PerMessageDeflate accepts an offer and exposes the agreement
 * as `params` (the window the writer compresses with), and frees itself with `cleanup()`.
 */
function deflateShapeHolds(Deflate: WsLibrary['PerMessageDeflate']): boolean {
  if (typeof Deflate !== 'function') return false;
  try {
    // isServer and maxPayload both ways: in the options (as ws 8.23 reads them) and as arguments.
    const extension = new Deflate(
      { serverNoContextTakeover: true, serverMaxWindowBits: 11, isServer: true, maxPayload: 0 },
      true,
      0,
    );
    extension.accept?.([{}]);
    const holds =
      negotiatedDeflateWindowBits({ [DEFLATE]: extension }) === 11 &&
      extension.params?.server_no_context_takeover === true &&
      typeof extension.cleanup === 'function';
    extension.cleanup?.();
    return holds;
  } catch {
    return false;
  }
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
export function createClientWebSocket(cancel: (ws: WebSocket) => void): WebSocket {
  const ws = new StreamClientWebSocket(null as unknown as string, undefined, {
    autoPong: true,
    closeTimeout: 30_000,
  } as unknown as WebSocket.ClientOptions);
  ws.cancelConnecting = cancel;
  (ws as unknown as SocketAttachable)._isServer = false;
  return ws;
}

/**
 * ws's terminate() of a WebSocket still connecting aborts its own HTTP/1.1 request; one opening
 * on an HTTP/2 stream has a stream to cancel instead. A subclass, defined once: no method of a ws
 * object is replaced per connection (issue 14).
 */
class StreamClientWebSocket extends WebSocket {
  cancelConnecting: ((ws: WebSocket) => void) | undefined = undefined;

  override terminate(): void {
    const cancel = this.cancelConnecting;
    if (this.readyState === WebSocket.CONNECTING && cancel !== undefined) cancel(this);
    else super.terminate();
  }
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

// --- The startup checks of shapes 6 to 8 (--http2).

/** A server-side connection class that records what ws's handshake gives it (shape 6's check). */
class HandshakeProbe {
  _extensions: object = {};
  _protocol = '';
  socket: Duplex | undefined = undefined;
  setSocket(socket: Duplex): void {
    this.socket = socket;
  }
}

/** An in-memory stream that records what reaches it (shape 6's check). */
class RecordingStream extends Duplex {
  readonly written: Buffer[] = [];
  override _read(): void {}
  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: () => void): void {
    this.written.push(chunk);
    callback();
  }
}

const PROBE_KEY = 'dGhlIHNhbXBsZSBub25jZQ=='; // RFC 6455 §1.3's example key

function probeRequest(version: string): IncomingMessage {
  return {
    method: 'GET',
    url: '/',
    headers: { upgrade: 'websocket', 'sec-websocket-key': PROBE_KEY, 'sec-websocket-version': version },
  } as unknown as IncomingMessage;
}

/**
 * Shape 6, by use: ws's handshake run over an in-memory stream through handleUpgradeOverStream
 * answers an admitted request with one 101 (and hands the stream to the connection class,
 * writing nothing to it), and a refused one (an unsupported version) with one 400.
 */
function streamHandshakeHolds(Server: typeof WebSocketServer): boolean {
  try {
    const wss = new Server({
      noServer: true,
      clientTracking: false,
      perMessageDeflate: false,
      WebSocket: HandshakeProbe as unknown as typeof WebSocket,
    });
    const admitted = new RecordingStream();
    const answers: HandshakeAnswer[] = [];
    let upgraded: unknown;
    handleUpgradeOverStream(
      wss,
      probeRequest('13'),
      admitted,
      (answer) => answers.push(answer),
      (connection) => {
        upgraded = connection;
      },
    );
    const probe = upgraded as HandshakeProbe | undefined;
    const accepted =
      answers.length === 1 &&
      answers[0]?.status === 101 &&
      probe?.socket === admitted &&
      admitted.written.length === 0;
    const refused = new RecordingStream();
    const refusals: HandshakeAnswer[] = [];
    handleUpgradeOverStream(
      wss,
      probeRequest('7'),
      refused,
      (answer) => refusals.push(answer),
      () => {},
    );
    admitted.destroy();
    refused.destroy();
    return accepted && refusals.length === 1 && refusals[0]?.status === 400 && refused.written.length === 0;
  } catch {
    return false;
  }
}

/** Shape 7, by use: Node's compat request and response built for one (stand-in) stream. */
function compatPairHolds(): boolean {
  try {
    const stream = new RecordingStream() as unknown as ServerHttp2Stream;
    const [request, response] = compatPairOf(
      stream,
      { ':method': 'GET', ':path': '/probe', ':authority': 'localhost', ':scheme': 'http' },
      [':method', 'GET', ':path', '/probe'],
    );
    const holds =
      request.method === 'GET' &&
      request.url === '/probe' &&
      request.headers[':authority'] === 'localhost' &&
      response.statusCode === 200 &&
      typeof response.writeHead === 'function';
    (stream as unknown as Duplex).destroy();
    return holds;
  } catch {
    return false;
  }
}

/** What --http2 may offer, and one line per shape that is missing (shapes 6 and 7). */
export interface Http2Shapes {
  /** Shape 6 holds: WebSockets over HTTP/2 (extended CONNECT, RFC 8441) may be offered. */
  readonly extendedConnect: boolean;
  readonly problems: readonly string[];
}

/**
 * Checks shapes 6 and 7 once, when --http2 starts. Throws WsShapeError when shape 7 is missing
 * (the port's plain routes cannot be served over HTTP/2); returns shape 6's fallback. `parts`: tests only.
 */
export function checkHttp2Shapes(
  parts: { server?: typeof WebSocketServer; compat?: () => boolean } = {},
): Http2Shapes {
  if (!(parts.compat ?? compatPairHolds)()) {
    throw new WsShapeError(
      `Node ${process.version} does not build its HTTP/2 compatibility request/response for a stream as wshub expects (new Http2ServerRequest(stream, headers, options, rawHeaders)); --http2 cannot serve the port's routes: run without --http2`,
    );
  }
  const extendedConnect = streamHandshakeHolds(parts.server ?? WebSocketServer);
  return {
    extendedConnect,
    problems: extendedConnect
      ? []
      : [
          `ws ${wsVersion()}: its handshake no longer answers in one write over a stream; --http2 serves HTTP/2 without WebSockets (no SETTINGS_ENABLE_CONNECT_PROTOCOL: clients open WebSockets over HTTP/1.1)`,
        ],
  };
}

/**
 * Shape 8, when `wshub client --http2` or `wshub bench --http2` starts: throws WsShapeError
 * (one line, exit 2) when ws's WebSocket cannot be built for a stream. `Ctor`: tests only.
 */
export function checkHttp2ClientShape(Ctor: typeof WebSocket = WebSocket): void {
  let holds = false;
  try {
    const proto = Ctor.prototype as unknown as Partial<SocketAttachable>;
    const probe = new Ctor(null as unknown as string, undefined, {} as WebSocket.ClientOptions);
    holds =
      typeof proto.setSocket === 'function' &&
      typeof proto.emitClose === 'function' &&
      typeof (probe as unknown as Partial<SocketAttachable>)._isServer === 'boolean' &&
      probe.readyState === Ctor.CONNECTING;
  } catch {
    holds = false;
  }
  if (!holds) {
    throw new WsShapeError(
      describeMissing([
        "a WebSocket built without an address has _isServer, setSocket and emitClose (WebSockets over HTTP/2 on the client's side)",
      ]),
    );
  }
}
