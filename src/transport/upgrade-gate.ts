import type { IncomingMessage } from 'node:http';
import { matchWebSocketPath, pathOf, type WebSocketRoute } from './routes.js';

/** Why an upgrade was refused. A bounded set: these become metric labels. */
export const REJECT_REASONS = ['not_found', 'invalid_room', 'shutting_down'] as const;
export type RejectReason = (typeof REJECT_REASONS)[number];

export type Admission =
  | { readonly ok: true; readonly route: WebSocketRoute }
  | {
      readonly ok: false;
      readonly reason: RejectReason;
      readonly status: number;
      readonly headers?: Readonly<Record<string, string>>;
    };

/**
 * Decides, before any WebSocket work is done, whether an upgrade request may
 * proceed. Pure policy: it answers, the transport acts.
 */
export class UpgradeGate {
  private draining = false;

  /** From now on every upgrade is refused with 503 (graceful shutdown has begun). */
  drain(): void {
    this.draining = true;
  }

  get isDraining(): boolean {
    return this.draining;
  }

  admit(request: IncomingMessage): Admission {
    const match = matchWebSocketPath(pathOf(request.url));
    if (match.kind === 'not_found') return { ok: false, reason: 'not_found', status: 404 };
    // A path under /ws/ whose room name is not allowed: 400, the client asked for something malformed.
    if (match.kind === 'invalid_room') return { ok: false, reason: 'invalid_room', status: 400 };
    if (this.draining) {
      return { ok: false, reason: 'shutting_down', status: 503, headers: { 'Retry-After': '5' } };
    }
    return { ok: true, route: match.route };
  }
}
