import { formatDuration, parseDuration } from '../config/duration.js';

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
}

export const MAX_FAULT_DELAY_MS = 10_000;
/** Messages one connection may have waiting on ?delay; past it the connection is closed (memory stays bounded). */
export const MAX_DELAYED_MESSAGES = 1000;
/** RFC 6455 §5.5: a control frame carries at most 125 bytes, 2 of them the code. */
const MAX_REASON_BYTES = 123;
const KNOWN = ['delay', 'close', 'reason', 'drop', 'immediately', 'hello'] as const;

export type FaultParse =
  | { readonly ok: true; readonly plan: FaultPlan | undefined }
  | { readonly ok: false; readonly detail: string };

/** RFC 6455 §7.4: 1000 is the only standard code an application may send; 3000-4999 are for applications. */
export function isSendableCloseCode(code: number): boolean {
  return code === 1000 || (code >= 3000 && code <= 4999);
}

/** The plan in words, for the log line of a connection that asked for faults. */
export function describeFaults(plan: FaultPlan): string {
  const parts: string[] = [];
  if (plan.hello) parts.push('hello');
  if (plan.delayMs > 0) parts.push(`delay ${formatDuration(plan.delayMs)}`);
  const when = plan.immediately ? 'immediately' : 'after the next message';
  if (plan.close !== undefined) parts.push(`close ${plan.close.code} ${when}`);
  if (plan.drop) parts.push(`drop ${when}`);
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
  if (closeCode !== null) {
    const code = /^\d{4}$/.test(closeCode) ? Number(closeCode) : Number.NaN;
    if (!isSendableCloseCode(code)) return fail('close must be 1000 or a code from 3000 to 4999');
    if (reason !== null && Buffer.byteLength(reason) > MAX_REASON_BYTES) {
      return fail(`reason must be at most ${MAX_REASON_BYTES} bytes (RFC 6455 §5.5)`);
    }
    close = { code, reason: reason ?? '' };
  } else if (reason !== null) {
    return fail('reason needs close=CODE');
  }

  const drop = query.has('drop');
  if (drop && close !== undefined) return fail('close and drop cannot be combined');
  const immediately = query.has('immediately');
  if (immediately && close === undefined && !drop) return fail('immediately needs close=CODE or drop');
  if (immediately && delayMs > 0) return fail('delay has no effect with immediately');

  return { ok: true, plan: { delayMs, close, drop, immediately, hello: query.has('hello') } };
}
