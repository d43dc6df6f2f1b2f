/**
 * The wshub client library (issue 16): `import { connect } from 'wshub/client'`.
 * This file runs in browsers as is (no imports, the global WebSocket); in Node
 * the package's "node" export (node.ts) passes `ws` or Node's own WebSocket.
 *
 * It speaks the wshub.v1 subprotocol: reconnects by itself with exponential
 * backoff and full jitter (so a drained node does not cause a reconnect storm),
 * resumes from the last position it saw (?since=EPOCH:OFFSET, on whichever node
 * the load balancer picks), drops duplicates (by position, and the positioned
 * copy of a `pending` message by its id), and tells the application when the
 * server cannot resume (`onReset`). Against a server without history it
 * falls back to plain messages without positions.
 */

/** The subset of the WHATWG WebSocket this library uses (browsers, Node's global WebSocket, `ws`). */
export interface WebSocketLike {
  readonly readyState: number;
  readonly protocol: string;
  binaryType: string;
  onopen: ((event: unknown) => void) | null;
  onmessage: ((event: { data: unknown }) => void) | null;
  onclose: ((event: { code: number; reason: string }) => void) | null;
  onerror: ((event: unknown) => void) | null;
  send(data: string | ArrayBufferView | ArrayBuffer): void;
  close(code?: number, reason?: string): void;
}

export type WebSocketConstructor = new (url: string, protocols?: string | string[]) => WebSocketLike;

export interface Position {
  readonly epoch: string;
  readonly offset: number;
}

export interface Message {
  readonly room: string;
  /** A string for text messages, bytes for binary ones. */
  readonly data: string | Uint8Array;
  /**
   * Absent when the server has no history (no wshub.v1): then there is nothing to resume from;
   * and on a pending message.
   */
  readonly position?: Position;
  /**
   * True when the message was published on the node this client is connected to while Redis
   * could not give it its position (Redis down or frozen): the server hands it over at once
   * instead of pausing. Its position comes later, silently (the library drops the positioned
   * copy); messages other nodes published meanwhile may then arrive after it, although Redis
   * ordered them before it.
   */
  readonly pending?: boolean;
}

export interface ResetInfo {
  readonly room: string;
  /** Where the stream continues from. */
  readonly position: Position;
  /** The position the client had (undefined on a first connection). */
  readonly previous: Position | undefined;
}

export interface ConnectOptions {
  /**
   * Bearer token sent as the `access_token` query parameter on every (re)connection. A function
   * is called before each one, so a token replaced by the application (or refreshed after the
   * server closed with 1008 "token expired") is the one the next connection uses.
   */
  readonly token?: string | (() => string | Promise<string>);
  /** Start from this position (e.g. saved by the application) instead of the room's current one. */
  readonly since?: Position;
  /** First reconnection delay cap in ms (default 250); it doubles per failed attempt. */
  readonly minDelayMs?: number;
  /** Largest reconnection delay in ms (default 30,000). */
  readonly maxDelayMs?: number;
  /**
   * Ask for wshub.v1 (default true). false: plain frames, for a server without --history-size:
   * a browser fails a handshake whose answer lacks the subprotocol it asked for, and tells the page
   * nothing about why (in Node, with `ws`, the client notices and falls back by itself).
   */
  readonly subprotocol?: boolean;
  /** WebSocket implementation; default: the global one. */
  readonly WebSocket?: WebSocketConstructor;
  readonly onMessage?: (message: Message) => void;
  /** The server could not continue from the last position: messages in between may be missing. */
  readonly onReset?: (info: ResetInfo) => void;
  /** Connected (after a welcome with wshub.v1); `resumed` when it continued from an earlier position. */
  readonly onOpen?: (info: { readonly position?: Position; readonly resumed: boolean }) => void;
  /**
   * The server refused the handshake with 401 (no, an invalid or an expired token) or 403 (the
   * token's rooms do not cover this room), RFC 6750. Retrying with the same token cannot succeed,
   * so the client stops (onClose without `retryInMs`) unless this returns true: the application
   * has a new token (the `token` function returns it) and wants the reconnection to go on.
   * The status comes from `ws`'s error in Node; a browser is not told why a handshake failed, so
   * the client then asks with a plain GET of the same URL, which wshub --auth=jwt answers with the
   * status the handshake got (a cross-origin page needs nothing more: the answer is CORS-readable).
   */
  readonly onRefused?: (info: { readonly status: 401 | 403; readonly room: string }) => boolean | undefined;
  /**
   * A connection ended; `retryInMs` is undefined when the client was closed for good. `drained`:
   * the server asked this client to reconnect first (a `reconnect` frame: the node is going away,
   * or the connection reached the server's lifetime; `reason` says which), so the retry is a resume
   * within the server's window, not a backoff after a failure.
   */
  readonly onClose?: (info: {
    readonly code: number;
    readonly reason: string;
    readonly retryInMs?: number;
    readonly drained?: boolean;
    /** The HTTP status of a refused handshake, when the WebSocket implementation reports it. */
    readonly status?: number;
  }) => void;
}

export interface WshubClient {
  /** Sends a message to the room; false when not connected (nothing is queued). */
  send(data: string | ArrayBufferView | ArrayBuffer): boolean;
  /** Closes for good: no more reconnections. */
  close(code?: number, reason?: string): void;
  /** The last position received, for the application to save. */
  readonly position: Position | undefined;
  readonly state: 'connecting' | 'open' | 'waiting' | 'closed';
}

const SUBPROTOCOL = 'wshub.v1';
const OPEN = 1;
/** Ids of pending messages remembered until their positioned copy comes; beyond, the oldest is forgotten. */
const MAX_PENDING_IDS = 100_000;

interface ServerFrame {
  readonly type?: string;
  readonly room?: string;
  readonly id?: string;
  readonly epoch?: string;
  readonly offset?: number;
  readonly data?: string;
  readonly data_b64?: string;
  readonly within_ms?: number;
}

/** The largest `within_ms` a reconnect frame is trusted with (a server bug must not park a client). */
const MAX_RECONNECT_WITHIN_MS = 60_000;

function decodeBase64(text: string): Uint8Array {
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

/**
 * Connects to a wshub WebSocket URL (`wss://host/ws` or `wss://host/ws/<room>`)
 * and stays connected until close().
 */
export function connect(url: string, options: ConnectOptions = {}): WshubClient {
  const Socket = options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
  if (Socket === undefined) throw new Error('no WebSocket implementation: pass options.WebSocket');
  const minDelay = options.minDelayMs ?? 250;
  const maxDelay = options.maxDelayMs ?? 30_000;
  let position: Position | undefined = options.since;
  /** The position this connection asked to resume from (a reset right after the welcome refers to it). */
  let requested: Position | undefined;
  let socket: WebSocketLike | undefined;
  let state: WshubClient['state'] = 'connecting';
  let attempt = 0;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let closedForGood = false;
  /** Cleared when the server does not speak wshub.v1 and the WebSocket refuses that (`ws` does). */
  let offerV1 = options.subprotocol ?? true;
  /** Set by a `reconnect` frame on this connection: the window to come back within once it closes. */
  let drainedWithinMs: number | undefined;
  /** The HTTP status of the current connection's refused handshake, when reported. */
  let refusedStatus: number | undefined;

  const urlFor = async (): Promise<string> => {
    const target = new URL(url);
    requested = position;
    if (position !== undefined) target.searchParams.set('since', `${position.epoch}:${position.offset}`);
    const token = typeof options.token === 'function' ? await options.token() : options.token;
    if (token !== undefined && token !== '') target.searchParams.set('access_token', token);
    return target.toString();
  };

  /** Ids of the pending messages delivered whose positioned copy has not come yet (kept across reconnections and resets). */
  const pendingIds = new Set<string>();

  const dataOf = (frame: ServerFrame): string | Uint8Array =>
    frame.data_b64 !== undefined ? decodeBase64(frame.data_b64) : (frame.data ?? '');

  const onFrame = (text: string): void => {
    let frame: ServerFrame;
    try {
      frame = JSON.parse(text) as ServerFrame;
    } catch {
      return;
    }
    const room = frame.room ?? '';
    if (frame.type === 'reconnect') {
      // The node is going away (a drain) or the connection reached its lifetime: its close (1001)
      // follows. Come back, to whichever node the load balancer picks, from the last position,
      // within the server's window with full jitter.
      const within = Number(frame.within_ms);
      drainedWithinMs = Number.isFinite(within) ? Math.min(Math.max(within, 0), MAX_RECONNECT_WITHIN_MS) : 0;
      return;
    }
    if (frame.type === 'pending') {
      if (typeof frame.id !== 'string' || pendingIds.has(frame.id)) return;
      if (pendingIds.size >= MAX_PENDING_IDS) pendingIds.delete(pendingIds.values().next().value as string);
      pendingIds.add(frame.id);
      options.onMessage?.({ room, data: dataOf(frame), pending: true });
      return;
    }
    if (typeof frame.epoch !== 'string' || typeof frame.offset !== 'number') return;
    const here: Position = { epoch: frame.epoch, offset: frame.offset };
    switch (frame.type) {
      case 'welcome': {
        const resumed =
          position !== undefined && position.epoch === here.epoch && position.offset === here.offset;
        position = here;
        attempt = 0;
        options.onOpen?.({ position: here, resumed });
        break;
      }
      case 'reset': {
        const previous = requested ?? position;
        requested = undefined;
        position = here;
        options.onReset?.({ room, position: here, previous });
        break;
      }
      case 'message': {
        // A message at or before the last position was already delivered (a resume overlapping live delivery).
        if (position !== undefined && position.epoch === here.epoch && here.offset <= position.offset) {
          if (frame.id !== undefined) pendingIds.delete(frame.id);
          return;
        }
        position = here;
        requested = undefined;
        // The positioned copy of a message delivered as pending: only the position is new.
        if (frame.id !== undefined && pendingIds.delete(frame.id)) return;
        options.onMessage?.({ room, data: dataOf(frame), position: here });
        break;
      }
    }
  };

  const open = async (): Promise<void> => {
    state = 'connecting';
    let target: string;
    try {
      target = await urlFor();
    } catch {
      retry(1006, 'token unavailable');
      return;
    }
    if (closedForGood) return;
    const ws = offerV1 ? new Socket(target, SUBPROTOCOL) : new Socket(target);
    socket = ws;
    drainedWithinMs = undefined;
    ws.binaryType = 'arraybuffer';
    let opened = false;
    ws.onopen = () => {
      opened = true;
      state = 'open';
      // Without wshub.v1 (no history on the server) there is no welcome: this is the open.
      if (ws.protocol !== SUBPROTOCOL) {
        attempt = 0;
        options.onOpen?.({ resumed: false });
      }
    };
    ws.onmessage = (event) => {
      const { data } = event;
      if (ws.protocol === SUBPROTOCOL) {
        if (typeof data === 'string') onFrame(data);
        return;
      }
      const room = new URL(url).pathname.replace(/^\/ws\/?/, '');
      options.onMessage?.({
        room,
        data: typeof data === 'string' ? data : new Uint8Array(data as ArrayBuffer),
      });
    };
    ws.onerror = (event) => {
      const message = String((event as { message?: unknown } | undefined)?.message);
      // Browsers accept an answer without a subprotocol; `ws` fails the handshake instead.
      if (/no subprotocol/i.test(message)) {
        offerV1 = false;
        attempt = 0;
      }
      // `ws` words a refused handshake "Unexpected server response: 403".
      const status = /Unexpected server response: (\d{3})/.exec(message)?.[1];
      if (status !== undefined) refusedStatus = Number(status);
    };
    ws.onclose = (event) => {
      if (socket !== ws) return;
      socket = undefined;
      const status = refusedStatus;
      refusedStatus = undefined;
      // A browser says nothing about a failed handshake (1006 before open): ask the server why.
      if (status === undefined && !opened && event.code === 1006 && !closedForGood) {
        void probeRefusal(target).then((probed) => closed(event.code, event.reason, probed));
        return;
      }
      closed(event.code, event.reason, status);
    };
  };

  /** A connection ended, `status` the HTTP status of its refused handshake when known. */
  const closed = (code: number, reason: string, status: number | undefined): void => {
    if ((status === 401 || status === 403) && !closedForGood) {
      const room = new URL(url).pathname.replace(/^\/ws\/?/, '');
      if (options.onRefused?.({ status, room }) !== true) closedForGood = true;
    }
    retry(code, reason, status);
  };

  /**
   * With --auth=jwt, a plain GET of the WebSocket URL gets the answer its handshake got (401 or
   * 403; otherwise 426). One request per failed handshake, paced by the backoff; a server without
   * auth, a network error or a cross-origin answer it may not read: unknown, and retried as before.
   */
  const probeRefusal = async (target: string): Promise<number | undefined> => {
    if (typeof fetch !== 'function') return undefined;
    try {
      const http = new URL(target);
      http.protocol = http.protocol === 'wss:' ? 'https:' : 'http:';
      const timeout = (AbortSignal as { timeout?: (ms: number) => AbortSignal }).timeout?.(5000);
      const init = { cache: 'no-store', credentials: 'omit', signal: timeout };
      const response = await fetch(http, init as RequestInit);
      return response.status === 401 || response.status === 403 ? response.status : undefined;
    } catch {
      return undefined;
    }
  };

  const retry = (code: number, reason: string, status?: number): void => {
    if (closedForGood) {
      state = 'closed';
      options.onClose?.(status === undefined ? { code, reason } : { code, reason, status });
      return;
    }
    const drained = drainedWithinMs;
    drainedWithinMs = undefined;
    // Full jitter (a uniform delay up to the cap): reconnections of many clients spread out. After a
    // drain the cap is the server's window and the backoff starts over (nothing failed); otherwise
    // the cap doubles per failed attempt.
    const cap = drained ?? Math.min(maxDelay, minDelay * 2 ** Math.min(attempt, 20));
    const delay = Math.floor(Math.random() * cap);
    if (drained === undefined) attempt++;
    else attempt = 0;
    state = 'waiting';
    options.onClose?.({
      code,
      reason,
      retryInMs: delay,
      ...(drained === undefined ? {} : { drained: true }),
      ...(status === undefined ? {} : { status }),
    });
    timer = setTimeout(() => {
      timer = undefined;
      void open();
    }, delay);
  };

  void open();
  return {
    send(data) {
      if (socket === undefined || socket.readyState !== OPEN) return false;
      socket.send(data);
      return true;
    },
    close(code = 1000, reason = '') {
      closedForGood = true;
      if (timer !== undefined) clearTimeout(timer);
      timer = undefined;
      if (socket !== undefined) socket.close(code, reason);
      else {
        state = 'closed';
        options.onClose?.({ code, reason });
      }
    },
    get position() {
      return position;
    },
    get state() {
      return state;
    },
  };
}
