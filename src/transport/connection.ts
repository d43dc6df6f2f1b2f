import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { DISCONNECT, type Disconnect, type DisconnectReason } from '../disconnects.js';
import type { Peer } from '../hub/hub.js';
import { OutboundMessage } from '../hub/message.js';
import type { Fields } from '../log.js';
import type { HttpVersion } from '../stats.js';
import { formatPeer } from './address.js';
import type { FaultPlan } from './fault-injection.js';
import { isHttp2Stream } from './http2.js';
import { CLOSED, CONNECTING, type Writer } from './writer.js';
import { ReceiverBase, type ReceiverOptions, releaseExtensions } from './ws-adapter.js';

/** What a connection reports its events to (the transport). */
export interface ConnectionOwner {
  receive(connection: Connection, data: Buffer, isBinary: boolean): void;
  closed(connection: Connection, code: number): void;
  failed(connection: Connection, error: Error & { code?: string }): DisconnectReason;
  ponged(connection: Connection): void;
  /** A ping left unanswered because the client asked for ?ignore-pings (fault injection). */
  pingIgnored(connection: Connection): void;
}

/** What a client asked to be done to its connection (--allow-fault-injection), and its messages held by ?delay. */
export interface FaultState {
  readonly plan: FaultPlan;
  delayedMessages: number;
  delayedBytes: number;
  /** Messages handled so far (?close-after). */
  messages: number;
  /** ?close-in: cleared when the connection ends first. */
  closeTimer: NodeJS.Timeout | undefined;
}

/** The options ws's handshake passes to setSocket (lib/websocket-server.js completeUpgrade; ws-adapter shape 1). */
interface SetSocketOptions {
  readonly allowSynchronousEvents?: boolean;
  readonly maxPayload?: number;
  readonly maxFragments?: number;
  readonly maxBufferedChunks?: number;
  readonly skipUTF8Validation?: boolean;
}

const NO_EXTENSIONS: object = Object.freeze({});
/** The connection a socket belongs to (the socket's listeners are shared functions). */
const kConnection = Symbol('wshub.connection');
type ConnectionSocket = Duplex & { [kConnection]: Connection };

/**
 * ws's frame parser for one connection. Its events (message, ping, pong, conclude, error,
 * drain, finish) go straight to the connection from `emit`: no listener per event and
 * connection (each an entry in a table every idle connection would keep). Defined once;
 * nothing of ws is replaced at run time.
 */
class ConnectionReceiver extends ReceiverBase {
  constructor(
    options: ReceiverOptions,
    readonly connection: Connection,
  ) {
    super(options);
  }

  override emit(event: string | symbol, ...args: unknown[]): boolean {
    const connection = this.connection;
    switch (event) {
      case 'message':
        connection.received(args[0] as Buffer, args[1] as boolean);
        return true;
      case 'ping':
        connection.pinged(args[0] as Buffer);
        return true;
      case 'pong':
        connection.owner?.ponged(connection);
        return true;
      case 'conclude':
        connection.concluded(args[0] as number, args[1] as Buffer);
        return true;
      case 'error':
        // Handled here: a Writable's 'error' without a listener would be thrown.
        connection.receiverFailed(args[0] as Error & { code?: string });
        return true;
      case 'drain':
        connection.socket?.resume();
        return true;
      case 'finish':
        if (connection.writer?.state === CLOSED) connection.reportClose();
        return true;
    }
    return super.emit(event, ...args);
  }
}

/**
 * What a connection may send (issue 15), for connections under an access
 * policy: a token, --no-client-publish or --max-messages-per-second. Others
 * have none, so the message path checks one field. The room is fixed for the
 * life of a connection, so whether it may publish is decided once, at accept.
 */
export interface ConnectionGuard {
  /** The token's `sub`; '' without --auth=jwt. */
  readonly user: string;
  readonly mayPublish: boolean;
  /** performance.now() when the token expires; 0: never. */
  readonly expiresAt: number;
  /** The --max-messages-per-second bucket. */
  tokens: number;
  refilledAt: number;
}

/**
 * One client connection. ws's WebSocketServer completes the handshake and hands the socket
 * to `setSocket` (ws-adapter shape 1); from there the connection is wshub's: ws's `Receiver`
 * parses the client's frames, and the connection's `Writer` (writer.ts) writes every byte
 * the client receives. ws's WebSocket and Sender are not used (issue 14).
 *
 * Per-connection state is a few fields on this object and on its writer: no closure,
 * listener or timer of its own (the socket's four listeners are shared functions). Every
 * field costs 8 bytes per connection (a double another 16, boxed), so what can be derived
 * is derived (`peer`) and what few connections use lives in an object only they have
 * (`faults`). Idle memory per connection is an issue-5 target (bench/README.md).
 */
export class Connection implements Peer {
  id = 0;
  room = '';
  owner: ConnectionOwner | undefined = undefined;
  /** Written by ws's handshake: the negotiated extensions (ws-adapter shape 1). */
  _extensions: object = NO_EXTENSIONS;
  /** Written by ws's handshake when the client offered subprotocols (ws-adapter shape 1). */
  _protocol = '';
  socket: Duplex | null = null;
  receiver: ConnectionReceiver | null = null;
  writer: Writer<Connection> | undefined = undefined;
  /** The close code the peer sent (1005: a close frame without one), or 1006 when none arrived. */
  closeCode = 1006;
  /** The address connection limits count this connection under (see UpgradeGate). */
  clientAddress = '';
  /** Set when the server decides to end the connection, before it closes. */
  serverCloseReason: DisconnectReason | undefined = undefined;
  /** Only for a client whose fault-injection plan acts on its messages. */
  faults: FaultState | undefined = undefined;
  /** Only for a connection under an access policy (see ConnectionGuard). */
  guard: ConnectionGuard | undefined = undefined;

  // Keepalive state (transport/keepalive.ts); times are performance.now() milliseconds.
  /** Data messages received; the keepalive sweep compares it with `messagesSeen` to see activity. */
  messagesReceived = 0;
  messagesSeen = 0;
  /** Set only with an idle timeout. */
  lastActiveAt = 0;
  /** When the outstanding ping was sent, or -1 when no ping is outstanding. */
  pingSentAt = -1;
  nextPingAt = Number.POSITIVE_INFINITY;
  /** When the connection reaches --max-connection-lifetime; 0 without one (an integer: no boxed double). */
  expiresAt = 0;

  /** The signature ws's handshake constructs `options.WebSocket` with (address null: a server-side socket). */
  constructor(_address?: null, _protocols?: undefined, _options?: object) {}

  /**
   * Called by ws's handshake with the upgraded socket (ws-adapter shape 1): the receiver
   * and the socket's listeners, as ws's WebSocket#setSocket sets them up, with no autoPong
   * (the connection answers pings through its writer) and no Sender.
   */
  setSocket(socket: Duplex, head: Buffer, options: SetSocketOptions): void {
    this.socket = socket;
    this.receiver = new ConnectionReceiver(
      {
        allowSynchronousEvents: options.allowSynchronousEvents,
        binaryType: 'nodebuffer',
        extensions: this._extensions,
        isServer: true,
        maxPayload: options.maxPayload,
        maxFragments: options.maxFragments,
        maxBufferedChunks: options.maxBufferedChunks,
        skipUTF8Validation: options.skipUTF8Validation,
      },
      this,
    );
    (socket as ConnectionSocket)[kConnection] = this;
    const tcp = socket as Partial<Socket>;
    // Absent when the socket is a plain Duplex (an HTTP/2 stream).
    if (typeof tcp.setTimeout === 'function') tcp.setTimeout(0);
    if (typeof tcp.setNoDelay === 'function') tcp.setNoDelay();
    if (head.length > 0) socket.unshift(head);
    socket.on('close', socketOnClose);
    socket.on('data', socketOnData);
    socket.on('end', socketOnEnd);
    socket.on('error', socketOnError);
  }

  /** CONNECTING until accepted, then the writer's state (OPEN, CLOSING, CLOSED). */
  get readyState(): number {
    return this.writer?.state ?? CONNECTING;
  }

  /** The negotiated extensions as the Sec-WebSocket-Extensions names them ('' for none). */
  get extensions(): string {
    return Object.keys(this._extensions).join();
  }

  /** The subprotocol ws selected ('' for none). */
  get protocol(): string {
    return this._protocol;
  }

  /**
   * The client as the logs show it (192.168.1.100:54321), computed when a line is
   * written rather than stored: Node caches the socket's peer address once the
   * upgrade gate has read it, so it is still known after the socket has closed.
   */
  get peer(): string {
    const socket = this.socket as Socket | null;
    return socket === null ? 'unknown' : formatPeer(socket.remoteAddress, socket.remotePort);
  }

  /** Which HTTP version carried the handshake: '2' for an extended CONNECT on an HTTP/2 stream (RFC 8441). */
  get httpVersion(): HttpVersion {
    return isHttp2Stream(this.socket) ? '2' : '1.1';
  }

  /** The error that ended the socket, if one did (Node keeps it on the stream). */
  get socketError(): NodeJS.ErrnoException | null {
    return (this.socket?.errored as NodeJS.ErrnoException | null | undefined) ?? null;
  }

  /** Bytes waiting for this client: in the socket's stream, and corked for this turn. */
  get queuedBytes(): number {
    return this.writer?.bufferedAmount ?? 0;
  }

  deliver(message: OutboundMessage): void {
    this.writer?.deliver(message);
  }

  /** A message of this connection alone (e.g. ?hello), in order with everything delivered before it. */
  send(data: string | Buffer, isBinary = false): void {
    this.writer?.deliver(new OutboundMessage(typeof data === 'string' ? Buffer.from(data) : data, isBinary));
  }

  ping(): boolean {
    return this.writer?.ping() ?? false;
  }

  /** Closes with the catalogue entry's close frame (none: cuts the connection) and records why. */
  disconnect(disconnect: Disconnect): void {
    this.serverCloseReason ??= disconnect.reason;
    if (disconnect.code === undefined) this.terminate();
    else this.writer?.close(disconnect.code, disconnect.text);
  }

  /** Closes with a code and text of the client's choosing (?close=<code>&reason=<text>), counted under `reason`. */
  closeWith(reason: DisconnectReason, code: number, text: string): void {
    this.serverCloseReason ??= reason;
    this.writer?.close(code, text);
  }

  /** Drops the TCP connection without a close frame, counted under `reason` (?drop). */
  cut(reason: DisconnectReason): void {
    this.serverCloseReason = reason;
    this.terminate();
  }

  /** Drops the TCP connection without a close handshake (see disconnect for a counted one). */
  terminate(): void {
    if (this.writer !== undefined) this.writer.terminate();
    else this.socket?.destroy();
  }

  // The receiver's events (ConnectionReceiver.emit).

  received(data: Buffer, isBinary: boolean): void {
    this.owner?.receive(this, data, isBinary);
  }

  /** RFC 6455 §5.5.2: a ping is answered with a pong carrying its data, as soon as possible. */
  pinged(data: Buffer): void {
    if (this.faults?.plan.ignorePings === true) {
      this.owner?.pingIgnored(this);
      return;
    }
    this.writer?.pong(data);
  }

  /** The peer's close frame (§5.5.1): no more frames are read; it is answered with the same code and text. */
  concluded(code: number, reason: Buffer): void {
    this.closeCode = code;
    const writer = this.writer;
    if (writer === undefined || writer.state === CLOSED) return;
    writer.closeReceived();
    // The socket may be paused for the receiver's backpressure: it is read to its end (FIN), unparsed.
    process.nextTick(resumeSocket, this.socket);
    writer.close(code === 1005 ? undefined : code, reason);
  }

  /** A protocol error (or a limit) in the client's frames: closed with the code the catalogue pairs with it. */
  receiverFailed(error: Error & { code?: string }): void {
    const writer = this.writer;
    if (writer === undefined) return;
    const first = !writer.readFailedAlready;
    writer.readFailed();
    const reason = first ? (this.owner?.failed(this, error) ?? 'protocol_error') : undefined;
    if (writer.state === CLOSED) {
      this.reportClose();
    } else if (reason !== undefined) {
      process.nextTick(resumeSocket, this.socket);
      writer.close(DISCONNECT[reason].code, DISCONNECT[reason].text);
    }
  }

  /** Reports the close once the socket has closed and the receiver is done (as ws's emitClose). */
  reportClose(): void {
    const receiver = this.receiver;
    if (receiver === null) return;
    this.receiver = null;
    releaseExtensions(this._extensions);
    this.owner?.closed(this, this.closeCode);
  }
}

function resumeSocket(socket: Duplex | null): void {
  socket?.resume();
}

// The socket's listeners (as ws's socketOn* in lib/websocket.js), shared by every connection.

function socketOnData(this: ConnectionSocket, chunk: Buffer): void {
  const connection = this[kConnection];
  const writer = connection.writer;
  // After the peer's close frame or a protocol error, the rest is read and dropped (§5.5.1).
  if (writer?.readDone) return;
  const receiver = connection.receiver;
  if (receiver !== null && !receiver.write(chunk)) this.pause();
}

function socketOnEnd(this: ConnectionSocket): void {
  const connection = this[kConnection];
  const receiver = connection.receiver;
  if (receiver !== null && !receiver.writableEnded) receiver.end();
  connection.writer?.peerEnded();
}

function socketOnError(this: ConnectionSocket): void {
  // The error stays on the stream (socket.errored): the transport reads it at the close.
  this.destroy();
}

function socketOnClose(this: ConnectionSocket): void {
  const connection = this[kConnection];
  const writer = connection.writer;
  writer?.transportClosed();
  const receiver = connection.receiver;
  if (receiver === null) return;
  // Bytes read but not yet parsed (a paused socket) still reach the receiver, unless its
  // reading is over (close frame, error, FIN).
  if (!this.readableEnded && (writer === undefined || !writer.readDone) && this.readableLength !== 0) {
    receiver.write(this.read(this.readableLength) as Buffer);
  }
  if (!receiver.writableEnded) receiver.end();
  // The receiver may still be inflating a message: the close is reported when it finishes.
  if (receiver.writableFinished || receiver.errored !== null || writer?.readFailedAlready === true) {
    connection.reportClose();
  }
}

/** The log fields that identify a connection (issue 8: JSON logs join on them). */
export function connectionFields(connection: Connection): Fields {
  return {
    remote_addr: connection.peer,
    conn_id: connection.id,
    room: connection.room,
    http_version: connection.httpVersion,
  };
}
