import type { IncomingMessage } from 'node:http';
import type { IncomingHttpHeaders } from 'node:http2';
import type { TLSSocket } from 'node:tls';
import { formatDuration, parseDuration } from '../config/duration.js';
import type { FaultKnob, Stats } from '../stats.js';

/**
 * Fault injection (issue 8): a client opts in per connection with the query
 * string of its WebSocket URL, and only when the server runs with
 * --allow-fault-injection (otherwise the query is ignored). Parsing is pure;
 * the transport carries the plan out.
 *
 *   ?delay=200ms              every message is handled that much later (echo: echoed late)
 *   ?close=4000&reason=bye    the next message is handled, then the server closes with 4000 "bye"
 *   ?close=4000&immediately   the server closes right after the handshake
 *   ?drop                     on the next message the server drops the TCP connection, no close frame
 *   ?drop&immediately         ... right after the handshake
 *   ?hello                    the first message from the server names the replica (hostname, instance)
 *                             and reports what reached it (headers, HTTP version, forwarding chain, TLS)
 *   ?status=503&retry-after=5 the handshake is refused with that status (issue 17)
 *   ?close-after=3            the server closes (close=CODE, default 1000) after the client's 3rd message
 *   ?close-in=2s              ... that long after the handshake
 *   ?ignore-pings             the server stops answering the client's pings
 */
export interface FaultPlan {
  /** Milliseconds to hold each message before handling it (0: none). */
  readonly delayMs: number;
  /** Close with this code and reason, after the next message or `immediately`. */
  readonly close: { readonly code: number; readonly reason: string } | undefined;
  /** Drop the TCP connection without a close frame, on the next message or `immediately`. */
  readonly drop: boolean;
  readonly immediately: boolean;
  readonly hello: boolean;
  /** Refuse the handshake with this status (4xx/5xx) and, when given, a Retry-After of that many seconds. */
  readonly status: { readonly code: number; readonly retryAfter: number | undefined } | undefined;
  /** Close (with `close`, else 1000) once this many of the client's messages have been handled. */
  readonly closeAfter: number | undefined;
  /** Close (with `close`, else 1000) this many milliseconds after the handshake. */
  readonly closeInMs: number | undefined;
  /** Do not answer the client's pings (RFC 6455 §5.5.2 says a server must: this is the fault). */
  readonly ignorePings: boolean;
}

/** Counts each knob of a plan once (wshub_fault_injections_total{knob}): per connection, or per refused handshake. */
export function countKnobs(stats: Stats, plan: FaultPlan): void {
  const counts = stats.faultInjections;
  const count = (knob: FaultKnob, asked: boolean): void => {
    if (asked) counts[knob]++;
  };
  count('delay', plan.delayMs > 0);
  count('close', closesOnNextMessage(plan));
  count('drop', plan.drop);
  count('hello', plan.hello);
  count('status', plan.status !== undefined);
  count('close_after', plan.closeAfter !== undefined);
  count('close_in', plan.closeInMs !== undefined);
  count('ignore_pings', plan.ignorePings);
}

export const MAX_FAULT_DELAY_MS = 10_000;
/** Messages one connection may have waiting on ?delay; past it the connection is closed (memory stays bounded). */
export const MAX_DELAYED_MESSAGES = 1000;
export const MAX_CLOSE_AFTER = 1_000_000;
export const MAX_CLOSE_IN_MS = 60 * 60_000;
/** A day: longer than any client or proxy honours, short enough to stay a number everyone parses. */
export const MAX_RETRY_AFTER_SECONDS = 86_400;
/** RFC 6455 §5.5: a control frame carries at most 125 bytes, 2 of them the code. */
const MAX_REASON_BYTES = 123;
const KNOWN = [
  'delay',
  'close',
  'reason',
  'drop',
  'immediately',
  'hello',
  'status',
  'retry-after',
  'close-after',
  'close-in',
  'ignore-pings',
] as const;

export type FaultParse =
  | { readonly ok: true; readonly plan: FaultPlan | undefined }
  | { readonly ok: false; readonly detail: string };

/**
 * A close code an endpoint may put on the wire: the codes RFC 6455 §7.4.1 defines for endpoints to
 * send (1000-1003, 1007-1011) and those IANA registered since (1012 service restart, 1013 try again
 * later, 1014 bad gateway), and 3000-4999 (§7.4.2: libraries, frameworks, applications). Never 1004
 * (reserved), 1005, 1006 or 1015 (§7.4.1: "MUST NOT be set as a status code in a Close control frame").
 */
export function isSendableCloseCode(code: number): boolean {
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999);
}

const CLOSE_CODES_ALLOWED = 'close must be a code a server may send: 1000-1003, 1007-1014 or 3000-4999';

/** The plan in words, for the log line of a connection that asked for faults. */
export function describeFaults(plan: FaultPlan): string {
  const parts: string[] = [];
  if (plan.hello) parts.push('hello');
  if (plan.delayMs > 0) parts.push(`delay ${formatDuration(plan.delayMs)}`);
  const when = plan.immediately ? 'immediately' : 'after the next message';
  if (plan.close !== undefined && closesOnNextMessage(plan)) parts.push(`close ${plan.close.code} ${when}`);
  if (plan.drop) parts.push(`drop ${when}`);
  const code = plan.close?.code ?? 1000;
  if (plan.closeAfter !== undefined) parts.push(`close ${code} after ${plan.closeAfter} messages`);
  if (plan.closeInMs !== undefined) parts.push(`close ${code} in ${formatDuration(plan.closeInMs)}`);
  if (plan.ignorePings) parts.push('ignore pings');
  if (plan.status !== undefined) {
    const retry = plan.status.retryAfter;
    parts.push(`refuse with ${plan.status.code}${retry === undefined ? '' : ` (Retry-After ${retry})`}`);
  }
  return parts.join(', ');
}

/** Reads the fault knobs from a request URL's query; other query parameters are left alone. */
export function parseFaultQuery(url: string | undefined): FaultParse {
  const queryStart = url?.indexOf('?') ?? -1;
  if (url === undefined || queryStart === -1) return { ok: true, plan: undefined };
  const query = new URLSearchParams(url.slice(queryStart + 1));
  if (!KNOWN.some((name) => query.has(name))) return { ok: true, plan: undefined };
  const fail = (detail: string): FaultParse => ({ ok: false, detail });

  let delayMs = 0;
  const delay = query.get('delay');
  if (delay !== null) {
    const parsed = parseDuration(delay);
    if (parsed === undefined || parsed > MAX_FAULT_DELAY_MS) {
      return fail(`delay must be a duration from 0 to ${formatDuration(MAX_FAULT_DELAY_MS)}, such as 200ms`);
    }
    delayMs = parsed;
  }

  let close: FaultPlan['close'];
  const closeCode = query.get('close');
  const reason = query.get('reason');
  if (reason !== null && Buffer.byteLength(reason) > MAX_REASON_BYTES) {
    return fail(`reason must be at most ${MAX_REASON_BYTES} bytes of UTF-8 (RFC 6455 §5.5)`);
  }
  if (closeCode !== null) {
    const code = /^\d{4}$/.test(closeCode) ? Number(closeCode) : Number.NaN;
    if (!isSendableCloseCode(code)) return fail(CLOSE_CODES_ALLOWED);
    close = { code, reason: reason ?? '' };
  }

  let closeAfter: number | undefined;
  const after = query.get('close-after');
  if (after !== null) {
    closeAfter = /^\d{1,7}$/.test(after) ? Number(after) : Number.NaN;
    if (!(closeAfter >= 1 && closeAfter <= MAX_CLOSE_AFTER)) {
      return fail(`close-after must be a number of messages from 1 to ${MAX_CLOSE_AFTER}`);
    }
  }
  let closeInMs: number | undefined;
  const closeIn = query.get('close-in');
  if (closeIn !== null) {
    closeInMs = parseDuration(closeIn);
    if (closeInMs === undefined || closeInMs > MAX_CLOSE_IN_MS) {
      return fail(`close-in must be a duration from 0 to ${formatDuration(MAX_CLOSE_IN_MS)}, such as 2s`);
    }
  }
  const timed = closeAfter !== undefined || closeInMs !== undefined;
  // ?close-after / ?close-in bring their own code and text (close=, reason=; 1000 and none by default).
  if (close === undefined && reason !== null) {
    if (!timed) return fail('reason needs close=CODE, close-after=N or close-in=DURATION');
    close = { code: 1000, reason };
  }

  const drop = query.has('drop');
  if (drop && close !== undefined) return fail('close and drop cannot be combined');
  if (drop && timed) return fail('close-after and close-in cannot be combined with drop');
  const immediately = query.has('immediately');
  if (immediately && close === undefined && !drop) return fail('immediately needs close=CODE or drop');
  if (immediately && timed) return fail('close-after and close-in cannot be combined with immediately');
  if (immediately && delayMs > 0) return fail('delay has no effect with immediately');

  let status: FaultPlan['status'];
  const statusCode = query.get('status');
  const retryAfter = query.get('retry-after');
  if (statusCode !== null) {
    const code = /^[45]\d\d$/.test(statusCode) ? Number(statusCode) : Number.NaN;
    if (Number.isNaN(code)) return fail('status must be an HTTP status from 400 to 599');
    let seconds: number | undefined;
    if (retryAfter !== null) {
      seconds = /^\d{1,5}$/.test(retryAfter) ? Number(retryAfter) : Number.NaN;
      if (!(seconds <= MAX_RETRY_AFTER_SECONDS)) {
        return fail(`retry-after must be whole seconds from 0 to ${MAX_RETRY_AFTER_SECONDS}`);
      }
    }
    // The handshake is refused: nothing that acts on an open connection could happen.
    const others = KNOWN.filter((name) => name !== 'status' && name !== 'retry-after' && query.has(name));
    if (others.length > 0) {
      return fail(`status refuses the handshake: it cannot be combined with ${others.join(', ')}`);
    }
    status = { code, retryAfter: seconds };
  } else if (retryAfter !== null) {
    return fail('retry-after needs status=CODE');
  }

  return {
    ok: true,
    plan: {
      delayMs,
      close,
      drop,
      immediately,
      hello: query.has('hello'),
      status,
      closeAfter,
      closeInMs,
      ignorePings: query.has('ignore-pings'),
    },
  };
}

/** ?close=CODE without ?close-after / ?close-in: the close comes after the next message (issue 8). */
export function closesOnNextMessage(plan: FaultPlan): boolean {
  return plan.close !== undefined && plan.closeAfter === undefined && plan.closeInMs === undefined;
}

/** Request header fields whose values ?hello never echoes: credentials, whatever a proxy or application calls them. */
const SECRET_HEADER =
  /^(authorization|proxy-authorization|cookie)$|token|secret|passw|api-?key|credential|session|jwt/i;
/** Query parameters whose values ?hello never echoes: access_token and the like. */
const SECRET_PARAMETER = /token|secret|passw|auth|key|sig|session|jwt|credential|code/i;
const REDACTED = '[redacted]';
/** Fields a proxy adds to say where a request came from and through whom (RFC 7239, the X-Forwarded-* convention, RFC 9110 §7.6.3). */
const FORWARDING_HEADER = /^(forwarded|via|x-real-ip|x-forwarded-.+)$/;

/** A request target with the values of secret-looking query parameters replaced. */
export function redactTarget(target: string): string {
  const queryStart = target.indexOf('?');
  if (queryStart === -1) return target;
  const query = new URLSearchParams(target.slice(queryStart + 1));
  let redacted = false;
  for (const name of new Set(query.keys())) {
    if (SECRET_PARAMETER.test(name)) {
      query.set(name, REDACTED);
      redacted = true;
    }
  }
  return redacted ? `${target.slice(0, queryStart)}?${query.toString()}` : target;
}

/** What ?hello reports about the request that reached the server (issue 17). */
export interface ReceivedRequest {
  /** '1.1' for an Upgrade, '2' for an extended CONNECT (RFC 8441). */
  readonly http_version: string;
  readonly method: string;
  /** The request target, secret-looking query values redacted. */
  readonly path: string;
  /** Every header field as received (HTTP/2 pseudo-headers included), credentials redacted. */
  readonly headers: Readonly<Record<string, string>>;
  /** The forwarding chain proxies added (Forwarded, X-Forwarded-*, Via, X-Real-IP); {} when none did. */
  readonly forwarded: Readonly<Record<string, string>>;
  /** With TLS: the protocol version and the ALPN protocol negotiated (null when none was); null without TLS. */
  readonly tls: { readonly version: string | null; readonly alpn: string | null } | null;
}

/** What an HTTP/2 stream's view as an upgrade request carries beyond HTTP/1.1's (handshake.ts http1ViewOf). */
export interface Http2RequestView {
  /** The HTTP/2 header fields as received, pseudo-headers included. */
  readonly receivedHeaders: IncomingHttpHeaders;
  /** The HTTP/2 connection's socket: TLS is negotiated on it, not on the stream. */
  readonly connectionSocket: unknown;
}

/**
 * What ?hello reports about the request that reached the server (issue 17): the headers as
 * received, the HTTP version, the forwarding chain, and the TLS version and ALPN. Values of
 * credentials (Authorization, Cookie, token-like header fields and query parameters) are redacted.
 */
export function describeRequest(request: IncomingMessage): ReceivedRequest {
  const view = request as IncomingMessage & Partial<Http2RequestView>;
  const http2 = view.receivedHeaders !== undefined;
  const received: Readonly<Record<string, string | string[] | undefined>> =
    view.receivedHeaders ?? request.headers;
  const headers: Record<string, string> = {};
  const forwarded: Record<string, string> = {};
  for (const [name, value] of Object.entries(received)) {
    if (value === undefined) continue;
    const text = Array.isArray(value) ? value.join(', ') : String(value);
    headers[name] = SECRET_HEADER.test(name) ? REDACTED : name === ':path' ? redactTarget(text) : text;
    if (FORWARDING_HEADER.test(name)) forwarded[name] = headers[name];
  }
  const socket = (http2 ? view.connectionSocket : request.socket) as Partial<TLSSocket> | undefined;
  const tls =
    socket?.encrypted === true
      ? {
          version: socket.getProtocol?.() ?? null,
          alpn: typeof socket.alpnProtocol === 'string' ? socket.alpnProtocol : null,
        }
      : null;
  return {
    http_version: http2 ? '2' : request.httpVersion,
    method: http2 ? 'CONNECT' : (request.method ?? 'GET'),
    path: redactTarget(request.url ?? '/'),
    headers,
    forwarded,
    tls,
  };
}
