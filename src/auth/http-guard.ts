import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AuthFailureReason } from '../stats.js';
import { describeRoom } from './patterns.js';
import { credentialOf, type TokenVerifier } from './verifier.js';

type Route = (request: IncomingMessage, response: ServerResponse) => void;

/**
 * Told about every plain request refused for its token (issue 15: every refusal is counted and
 * logged at a bounded rate, like a refused upgrade). `detail` never carries the token.
 */
export type HttpRefusal = (
  request: IncomingMessage,
  status: number,
  reason: AuthFailureReason,
  detail: string,
) => void;

/**
 * With --auth=jwt a plain route that shows live state (the console's GET /stats:
 * connection counts, the busiest rooms' names) needs a valid token too, in
 * `Authorization: Bearer` as the console sends it; any verified token will do.
 */
export function requireToken(route: Route, verifier: TokenVerifier, refused: HttpRefusal): Route {
  return function routeWithToken(request, response) {
    const token = /^Bearer +(\S+)$/i.exec(request.headers.authorization ?? '')?.[1];
    if (token === undefined) {
      refused(request, 401, 'missing', 'no token (Authorization: Bearer)');
      refuse(response, 'Bearer realm="wshub"');
      return;
    }
    verifier.verify(token).then((verification) => {
      if (verification.ok) {
        route(request, response);
        return;
      }
      // No keys yet (--auth-jwks-url): the token may well be good; come back, as the upgrade says.
      if (verification.reason === 'keys_unavailable') {
        refused(request, 503, verification.reason, verification.detail);
        refuse(response, undefined, 'cannot verify tokens now: no keys');
        return;
      }
      refused(request, 401, verification.reason, verification.detail);
      refuse(response, 'Bearer realm="wshub", error="invalid_token"');
    });
  };
}

function refuse(
  response: ServerResponse,
  challenge: string | undefined,
  error = 'a valid token is required (Authorization: Bearer)',
): void {
  const body = `${JSON.stringify({ error })}\n`;
  response.writeHead(challenge === undefined ? 503 : 401, {
    'Content-Type': 'application/json',
    'Content-Length': Buffer.byteLength(body),
    'Cache-Control': 'no-store',
    ...(challenge === undefined ? { 'Retry-After': '5' } : { 'WWW-Authenticate': challenge }),
  });
  response.end(body);
}

/**
 * A plain GET of a WebSocket path with --auth=jwt (issue 15) gets the answer its upgrade would
 * get — 401 (no, a malformed or an invalid token), 403 (the token's rooms do not cover the room),
 * 503 (no keys yet) — and the usual 426 otherwise. A browser is never told why a WebSocket
 * handshake failed; wshub/client asks this way after one failed, so a page can tell "log in
 * again" from "the server is down". The answer says no more than the handshake itself does;
 * it is readable cross-origin (no credentials, the token is in the query as on the handshake).
 * A refusal is counted and logged (`refused`) as any other: it is a request the server refused.
 */
export function tokenCheckForWebSocketPaths(
  verifier: TokenVerifier,
  refused: HttpRefusal,
): (request: IncomingMessage, response: ServerResponse, room: string, next: () => void) => void {
  const refuseWith = (
    request: IncomingMessage,
    response: ServerResponse,
    status: number,
    reason: AuthFailureReason,
    challenge: string | undefined,
    detail: string,
  ): void => {
    refused(request, status, reason, detail);
    answer(response, status, challenge, detail);
  };
  return function checkTokenOfWebSocketPath(request, response, room, next) {
    const credential = credentialOf(request);
    if (credential.kind === 'missing') {
      const detail = 'no token (Authorization: Bearer or ?access_token=)';
      refuseWith(request, response, 401, 'missing', 'Bearer realm="wshub"', detail);
      return;
    }
    if (credential.kind === 'malformed') {
      const challenge = 'Bearer realm="wshub", error="invalid_request"';
      refuseWith(request, response, 401, 'malformed', challenge, credential.detail);
      return;
    }
    verifier.verify(credential.token).then((verification) => {
      if (!verification.ok) {
        if (verification.reason === 'keys_unavailable') {
          const detail = 'cannot verify tokens now: no keys';
          refuseWith(request, response, 503, 'keys_unavailable', undefined, detail);
        } else {
          const challenge = 'Bearer realm="wshub", error="invalid_token"';
          refuseWith(request, response, 401, verification.reason, challenge, verification.detail);
        }
      } else if (!verification.identity.mayJoin(room)) {
        const challenge = 'Bearer realm="wshub", error="insufficient_scope"';
        const detail = `the token's "rooms" do not cover ${describeRoom(room)}`;
        refuseWith(request, response, 403, 'room', challenge, detail);
      } else {
        response.setHeader('Access-Control-Allow-Origin', '*');
        next();
      }
    });
  };
}

function answer(
  response: ServerResponse,
  status: number,
  challenge: string | undefined,
  detail: string,
): void {
  const body = `${JSON.stringify({ error: detail, status })}\n`;
  response.writeHead(status, {
    'Content-Type': 'application/json',
    'Content-Length': Buffer.byteLength(body),
    'Cache-Control': 'no-store',
    'Access-Control-Allow-Origin': '*',
    ...(challenge === undefined ? {} : { 'WWW-Authenticate': challenge }),
    ...(status === 503 ? { 'Retry-After': '5' } : {}),
  });
  response.end(body);
}
