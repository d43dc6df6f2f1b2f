import type { IncomingMessage } from 'node:http';
import { type Position, parsePosition } from '../history/history.js';
import { REJECT_REASONS, type RejectReason } from '../stats.js';
import { clientAddressOf, limitKey } from './address.js';
import { describeRequest, type FaultPlan, parseFaultQuery, type ReceivedRequest } from './fault-injection.js';
import { OriginAllowlist } from './origin.js';
import { matchWebSocketPath, pathOf, type WebSocketRoute } from './routes.js';

export { REJECT_REASONS, type RejectReason };

export interface GateOptions {
  /** Open connections allowed in total; 0 is unlimited. */
  readonly maxConnections: number;
  /** Open connections allowed from one client address; 0 is unlimited. */
  readonly maxConnectionsPerIp: number;
  /** Origin allowlist entries; empty allows every origin. */
  readonly allowedOrigins: readonly string[];
  /** Proxies in front of wshub whose X-Forwarded-For entries are trusted (0: none). */
  readonly trustProxyHops: number;
  /** Honour the fault-injection query (?delay, ?close, ?drop, ?hello, ?status, …); otherwise it is ignored. */
  readonly allowFaultInjection?: boolean;
}

const UNLIMITED: GateOptions = {
  maxConnections: 0,
  maxConnectionsPerIp: 0,
  allowedOrigins: [],
  trustProxyHops: 0,
};

export type Admission =
  | {
      readonly ok: true;
      readonly route: WebSocketRoute;
      readonly clientAddress: string;
      /** What the client asked to be done to its connection (only with --allow-fault-injection). */
      readonly faults?: FaultPlan | undefined;
      /** ?hello: what reached the server, for the hello message (only with --allow-fault-injection). */
      readonly received?: ReceivedRequest | undefined;
      /** ?since=EPOCH:OFFSET: the position a wshub.v1 client resumes from (issue 16). */
      readonly since?: Position | undefined;
    }
  | {
      readonly ok: false;
      readonly reason: RejectReason;
      readonly status: number;
      readonly headers?: Readonly<Record<string, string>>;
      /** One line for the response body and the log: what was wrong. */
      readonly detail: string;
      readonly clientAddress: string;
      /** ?status=CODE: the plan that asked for this refusal (counted as a fault injection). */
      readonly faults?: FaultPlan | undefined;
    };

/** Seconds a client refused by a connection limit (or a draining server) is asked to wait. */
export const RETRY_AFTER_SECONDS = 5;

/** RFC 6455 §4.1: the key is 16 random bytes, base64-encoded (24 characters ending in ==). */
const WEBSOCKET_KEY = /^[+/0-9A-Za-z]{22}==$/;

/**
 * Decides, before any WebSocket work is done, whether an upgrade request may
 * proceed. Pure policy: it answers, the transport acts. It also keeps the
 * open-connection counts the limits need; the transport reports every
 * connection it opens and closes, so the counts are exact however a
 * connection ends, and an address leaves the map when its count reaches zero.
 */
export class UpgradeGate {
  private draining = false;
  private open = 0;
  private readonly openByAddress = new Map<string, number>();
  private readonly origins: OriginAllowlist;

  constructor(private readonly options: GateOptions = UNLIMITED) {
    this.origins = new OriginAllowlist(options.allowedOrigins);
  }

  /** From now on every upgrade is refused with 503 (graceful shutdown has begun). */
  drain(): void {
    this.draining = true;
  }

  get isDraining(): boolean {
    return this.draining;
  }

  /** Distinct client addresses with at least one open connection. */
  get trackedAddresses(): number {
    return this.openByAddress.size;
  }

  admit(request: IncomingMessage): Admission {
    const { headers } = request;
    const clientAddress = limitKey(
      clientAddressOf(request.socket.remoteAddress, headers['x-forwarded-for'], this.options.trustProxyHops),
    );
    const match = matchWebSocketPath(pathOf(request.url));
    if (match.kind === 'not_found') {
      return refusal(clientAddress, 'not_found', 404, 'no WebSocket endpoint at this path');
    }
    // A path under /ws/ whose room name is not allowed: 400, the client asked for something malformed.
    if (match.kind === 'invalid_room') {
      return refusal(clientAddress, 'invalid_room', 400, 'room names are 1 to 64 of A-Z a-z 0-9 . _ -');
    }
    if (this.draining) {
      return refusal(clientAddress, 'shutting_down', 503, 'server is shutting down', retryAfter());
    }
    // RFC 6455 §4.2.1: what a valid opening handshake must carry. Checked here, not left
    // to ws, so that every refusal is counted and logged in one place.
    if (request.method !== 'GET') {
      return refusal(clientAddress, 'bad_handshake', 405, 'a WebSocket handshake must use GET', {
        Allow: 'GET',
      });
    }
    if (headers.upgrade?.toLowerCase() !== 'websocket') {
      return refusal(clientAddress, 'bad_handshake', 400, 'Upgrade header must be "websocket"');
    }
    const key = headers['sec-websocket-key'];
    if (key === undefined || !WEBSOCKET_KEY.test(key)) {
      return refusal(clientAddress, 'bad_handshake', 400, 'missing or invalid Sec-WebSocket-Key');
    }
    // §4.2.2: an unsupported version is answered with the versions the server speaks.
    if (headers['sec-websocket-version'] !== '13') {
      return refusal(clientAddress, 'bad_handshake', 400, 'Sec-WebSocket-Version must be 13', {
        'Sec-WebSocket-Version': '13',
      });
    }
    // Requests without Origin come from non-browser clients, which could send any
    // Origin they like; the allowlist protects browsers from cross-site use (RFC 6455 §10.2).
    const origin = headers.origin;
    if (origin !== undefined && !this.origins.allows(origin)) {
      return refusal(clientAddress, 'origin_not_allowed', 403, 'origin not allowed');
    }
    const { maxConnections, maxConnectionsPerIp } = this.options;
    if (maxConnections > 0 && this.open >= maxConnections) {
      return refusal(clientAddress, 'max_connections', 503, 'server connection limit reached', retryAfter());
    }
    if (maxConnectionsPerIp > 0 && (this.openByAddress.get(clientAddress) ?? 0) >= maxConnectionsPerIp) {
      return refusal(
        clientAddress,
        'max_connections_per_ip',
        503,
        'connection limit per address reached',
        retryAfter(),
      );
    }
    const since = sinceOf(request.url);
    if (since === null) {
      return refusal(
        clientAddress,
        'invalid_position',
        400,
        'since must be EPOCH:OFFSET, as in a welcome frame',
      );
    }
    if (this.options.allowFaultInjection) {
      const faults = parseFaultQuery(request.url);
      if (!faults.ok) return refusal(clientAddress, 'invalid_fault_injection', 400, faults.detail);
      const plan = faults.plan;
      // Last of the checks: a handshake the server would have accepted, refused as the client asked.
      if (plan?.status !== undefined) {
        const { code, retryAfter } = plan.status;
        return {
          ...refusal(
            clientAddress,
            'injected_status',
            code,
            `refused as the client asked (?status=${code})`,
            retryAfter === undefined ? undefined : { 'Retry-After': String(retryAfter) },
          ),
          faults: plan,
        };
      }
      const received = plan?.hello === true ? describeRequest(request) : undefined;
      return { ok: true, route: match.route, clientAddress, faults: plan, since, received };
    }
    return { ok: true, route: match.route, clientAddress, since };
  }

  /**
   * A connection admitted for `clientAddress` is open. ws completes an upgrade
   * synchronously (no verifyClient), so no other request is admitted between
   * admit() and this call, and a limit can never be overshot.
   */
  opened(clientAddress: string): void {
    this.open++;
    this.openByAddress.set(clientAddress, (this.openByAddress.get(clientAddress) ?? 0) + 1);
  }

  /** A connection reported to opened() has closed. */
  closed(clientAddress: string): void {
    const count = this.openByAddress.get(clientAddress);
    if (count === undefined) return;
    this.open--;
    if (count <= 1) this.openByAddress.delete(clientAddress);
    else this.openByAddress.set(clientAddress, count - 1);
  }
}

/** The ?since= of the request: undefined when absent, null when malformed. */
function sinceOf(url: string | undefined): Position | undefined | null {
  const query = url?.indexOf('?') ?? -1;
  if (url === undefined || query === -1 || !url.includes('since=', query)) return undefined;
  const value = new URLSearchParams(url.slice(query + 1)).get('since');
  if (value === null) return undefined;
  return parsePosition(value) ?? null;
}

function refusal(
  clientAddress: string,
  reason: RejectReason,
  status: number,
  detail: string,
  headers?: Record<string, string>,
): Admission {
  return { ok: false, reason, status, detail, headers, clientAddress };
}

function retryAfter(): Record<string, string> {
  return { 'Retry-After': String(RETRY_AFTER_SECONDS) };
}
