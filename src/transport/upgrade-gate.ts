import type { IncomingMessage } from 'node:http';
import type { Identity } from '../auth/claims.js';
import { describeRoom } from '../auth/patterns.js';
import { credentialOf, type TokenVerifier, type Verification } from '../auth/verifier.js';
import { type Position, parsePosition } from '../history/history.js';
import { type AuthFailureReason, REJECT_REASONS, type RejectReason } from '../stats.js';
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
  /** --auth=jwt: every upgrade needs a token this verifies (issue 15). */
  readonly verifier?: TokenVerifier | undefined;
  /** Open connections allowed per token `sub`; 0 is unlimited. */
  readonly maxConnectionsPerUser?: number;
  /**
   * With --workers: --max-connections-per-user counted by the primary for the whole cluster
   * (maxConnectionsPerUser is then 0 here). A handshake takes one of its user's slots once the
   * token is verified, and gives it back when it is refused, abandoned, or its connection closes.
   */
  readonly sharedUserLimit?: SharedUserLimit | undefined;
}

/** Where a user's slots are counted when the workers of --workers share the per-user limit (issue 15). */
export interface SharedUserLimit {
  /** --max-connections-per-user (for the refusal's wording). */
  readonly limit: number;
  /** `granted`: the user had fewer than the limit; `full`; `unavailable`: the primary did not answer. */
  acquire(user: string): Promise<'granted' | 'full' | 'unavailable'>;
  release(user: string): void;
}

/** A verified token; with a shared per-user limit, the user whose slot this handshake holds. */
export type Authentication = Verification & { readonly heldSlot?: string };

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
      /** With --auth=jwt, before verification: the token (never logged). Pass the admission to authenticate(). */
      readonly token?: string | undefined;
      /** With --auth=jwt, after admitAuthenticated(): who connects and what it may do. */
      readonly identity?: Identity | undefined;
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
      /** Set when the access policy refused it (wshub_auth_failures_total). */
      readonly authFailure?: AuthFailureReason | undefined;
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
  private readonly openByUser = new Map<string, number>();
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
    const full = this.capacityRefusal(clientAddress);
    if (full !== undefined) return full;
    const since = sinceOf(request.url);
    if (since === null) {
      return refusal(
        clientAddress,
        'invalid_position',
        400,
        'since must be EPOCH:OFFSET, as in a welcome frame',
      );
    }
    let faults: FaultPlan | undefined;
    let received: ReceivedRequest | undefined;
    if (this.options.allowFaultInjection) {
      const parsed = parseFaultQuery(request.url);
      if (!parsed.ok) return refusal(clientAddress, 'invalid_fault_injection', 400, parsed.detail);
      faults = parsed.plan;
      if (faults?.hello === true) received = describeRequest(request);
    }
    if (this.options.verifier !== undefined) {
      // RFC 6750 §3.1: a request without credentials gets the challenge and no error code.
      const credential = credentialOf(request);
      if (credential.kind === 'missing') {
        return authRefusal(
          clientAddress,
          'missing',
          401,
          'no token (Authorization: Bearer or ?access_token=)',
          {
            'WWW-Authenticate': `Bearer realm="${REALM}"`,
          },
        );
      }
      if (credential.kind === 'malformed') {
        return authRefusal(clientAddress, 'malformed', 401, credential.detail, {
          'WWW-Authenticate': challenge('invalid_request', credential.detail),
        });
      }
      return {
        ok: true,
        route: match.route,
        clientAddress,
        faults,
        since,
        received,
        token: credential.token,
      };
    }
    return (
      injectedRefusal(clientAddress, faults) ?? {
        ok: true,
        route: match.route,
        clientAddress,
        faults,
        since,
        received,
      }
    );
  }

  /** Draining and the connection limits: checked on admit(), and again once a token is verified. */
  private capacityRefusal(clientAddress: string): Admission | undefined {
    if (this.draining) {
      return refusal(clientAddress, 'shutting_down', 503, 'server is shutting down', retryAfter());
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
    return undefined;
  }

  /**
   * Verifies the token of an admission that carries one. The only asynchronous
   * step of admission; what it decides is applied by admitAuthenticated().
   */
  async authenticate(admission: Extract<Admission, { ok: true }>): Promise<Authentication> {
    const verification = await (this.options.verifier as TokenVerifier).verify(admission.token as string);
    const shared = this.options.sharedUserLimit;
    // The room is checked first: a token refused with 403 takes no slot.
    if (shared === undefined || !verification.ok || !verification.identity.mayJoin(admission.route.room)) {
      return verification;
    }
    const user = verification.identity.user;
    const slot = await shared.acquire(user);
    if (slot === 'granted') return { ...verification, heldSlot: user };
    return {
      ok: false,
      reason: 'user_limit',
      detail:
        slot === 'full'
          ? `more than ${shared.limit} connections for this user`
          : 'cannot check the per-user connection limit now',
    };
  }

  /** A handshake whose client went away after authenticate(): its user's slot is given back. */
  abandon(authentication: Authentication): void {
    if (authentication.heldSlot !== undefined) this.options.sharedUserLimit?.release(authentication.heldSlot);
  }

  /** An admitted handshake that did not become a connection (ws refused it): its slot is given back. */
  notOpened(admission: Extract<Admission, { ok: true }>): void {
    const user = admission.identity?.user;
    if (user !== undefined) this.options.sharedUserLimit?.release(user);
  }

  /**
   * The rest of admission once the token is verified, synchronous like admit():
   * the caller completes the upgrade in the same turn, so no other connection
   * is admitted between this check and opened() and no limit is overshot.
   * Draining and the limits are checked again: they may have changed while the
   * token was being verified. Then the room (403) and the per-user limit (429).
   */
  admitAuthenticated(admission: Extract<Admission, { ok: true }>, authentication: Authentication): Admission {
    const decided = this.decideAuthenticated(admission, authentication);
    if (!decided.ok) this.abandon(authentication);
    return decided;
  }

  private decideAuthenticated(
    admission: Extract<Admission, { ok: true }>,
    verification: Authentication,
  ): Admission {
    const { clientAddress, route } = admission;
    if (!verification.ok) {
      // The keys could not be fetched: the token may well be good; ask the client to come back.
      if (verification.reason === 'keys_unavailable') {
        return authRefusal(
          clientAddress,
          'keys_unavailable',
          503,
          'cannot verify tokens now: no keys',
          retryAfter(),
        );
      }
      // The per-user limit as the primary counts it (--workers).
      if (verification.reason === 'user_limit') {
        return authRefusal(clientAddress, 'user_limit', 429, verification.detail, retryAfter());
      }
      return authRefusal(clientAddress, verification.reason, 401, verification.detail, {
        'WWW-Authenticate': challenge('invalid_token', verification.detail),
      });
    }
    const full = this.capacityRefusal(clientAddress);
    if (full !== undefined) return full;
    const { identity } = verification;
    if (!identity.mayJoin(route.room)) {
      const detail = `the token's "rooms" do not cover ${describeRoom(route.room)}`;
      return authRefusal(clientAddress, 'room', 403, detail, {
        'WWW-Authenticate': challenge('insufficient_scope', detail),
      });
    }
    const perUser = this.options.maxConnectionsPerUser ?? 0;
    if (perUser > 0 && (this.openByUser.get(identity.user) ?? 0) >= perUser) {
      return authRefusal(
        clientAddress,
        'user_limit',
        429,
        `more than ${perUser} connections for this user`,
        retryAfter(),
      );
    }
    return (
      injectedRefusal(clientAddress, admission.faults) ?? {
        ok: true,
        route,
        clientAddress,
        faults: admission.faults,
        since: admission.since,
        received: admission.received,
        identity,
      }
    );
  }

  /**
   * A connection admitted for `clientAddress` is open. ws completes an upgrade
   * synchronously (no verifyClient), so no other request is admitted between
   * admit() and this call, and a limit can never be overshot.
   */
  opened(clientAddress: string, user?: string): void {
    this.open++;
    increment(this.openByAddress, clientAddress);
    if (user !== undefined) increment(this.openByUser, user);
  }

  /** A connection reported to opened() has closed. */
  closed(clientAddress: string, user?: string): void {
    if (!decrement(this.openByAddress, clientAddress)) return;
    this.open--;
    if (user !== undefined && decrement(this.openByUser, user)) this.options.sharedUserLimit?.release(user);
  }

  /** Distinct users (token `sub`) with at least one open connection. */
  get trackedUsers(): number {
    return this.openByUser.size;
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

/**
 * ?status=CODE (--allow-fault-injection): the last of the checks, so only a handshake the server
 * would have accepted (its token verified, with --auth=jwt) is refused as the client asked.
 */
function injectedRefusal(clientAddress: string, plan: FaultPlan | undefined): Admission | undefined {
  if (plan?.status === undefined) return undefined;
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

function retryAfter(): Record<string, string> {
  return { 'Retry-After': String(RETRY_AFTER_SECONDS) };
}

function increment(counts: Map<string, number>, key: string): void {
  counts.set(key, (counts.get(key) ?? 0) + 1);
}

/** Counts down; a key leaves the map at zero. False when the key was not there. */
function decrement(counts: Map<string, number>, key: string): boolean {
  const count = counts.get(key);
  if (count === undefined) return false;
  if (count <= 1) counts.delete(key);
  else counts.set(key, count - 1);
  return true;
}

const REALM = 'wshub';

/** RFC 6750 §3: error_description allows no '"' or '\\'. */
function challenge(error: string, description: string): string {
  return `Bearer realm="${REALM}", error="${error}", error_description="${description.replace(/["\\]/g, "'")}"`;
}

const AUTH_REJECT_REASONS: Readonly<Record<number, RejectReason>> = {
  401: 'unauthorized',
  403: 'forbidden',
  429: 'max_connections_per_user',
  503: 'auth_unavailable',
};

function authRefusal(
  clientAddress: string,
  authFailure: AuthFailureReason,
  status: number,
  detail: string,
  headers: Record<string, string>,
): Admission {
  const reason = AUTH_REJECT_REASONS[status] as RejectReason;
  return { ok: false, reason, status, detail, headers, clientAddress, authFailure };
}
