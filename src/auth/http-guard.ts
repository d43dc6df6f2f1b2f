import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AuthFailureReason } from '../stats.js';
import { describeRoom } from './patterns.js';
import { credentialOf, type TokenVerifier } from './verifier.js';

type Route = (request: IncomingMessage, response: ServerResponse) => void;

/**
 * With --auth=jwt a plain route that shows live state (the console's GET /stats:
 * connection counts, the busiest rooms' names) needs a valid token too, in
 * `Authorization: Bearer` as the console sends it; any verified token will do.
 */
export function requireToken(
  route: Route,
  verifier: TokenVerifier,
  countFailure: (reason: AuthFailureReason) => void,
): Route {
  return function routeWithToken(request, response) {
    const token = /^Bearer +(\S+)$/i.exec(request.headers.authorization ?? '')?.[1];
    if (token === undefined) {
      countFailure('missing');
      refuse(response, 'Bearer realm="wshub"');
      return;
    }
    verifier.verify(token).then((verification) => {
      if (verification.ok) {
        route(request, response);
        return;
      }
      countFailure(verification.reason);
      refuse(response, 'Bearer realm="wshub", error="invalid_token"');
    });
  };
}

function refuse(response: ServerResponse, challenge: string): void {
  const body = '{"error":"a valid token is required (Authorization: Bearer)"}\n';
  response.writeHead(401, {
    'Content-Type': 'application/json',
    'Content-Length': Buffer.byteLength(body),
    'Cache-Control': 'no-store',
    'WWW-Authenticate': challenge,
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
 * Not counted as an auth failure: the handshake it explains already was.
 */
export function tokenCheckForWebSocketPaths(
  verifier: TokenVerifier,
): (request: IncomingMessage, response: ServerResponse, room: string, next: () => void) => void {
  return function checkTokenOfWebSocketPath(request, response, room, next) {
    const credential = credentialOf(request);
    if (credential.kind === 'missing') {
      answer(response, 401, 'Bearer realm="wshub"', 'no token (Authorization: Bearer or ?access_token=)');
      return;
    }
    if (credential.kind === 'malformed') {
      answer(response, 401, 'Bearer realm="wshub", error="invalid_request"', credential.detail);
      return;
    }
    verifier.verify(credential.token).then((verification) => {
      if (!verification.ok) {
        if (verification.reason === 'keys_unavailable')
          answer(response, 503, undefined, 'cannot verify tokens now: no keys');
        else answer(response, 401, 'Bearer realm="wshub", error="invalid_token"', verification.detail);
      } else if (!verification.identity.mayJoin(room)) {
        answer(
          response,
          403,
          'Bearer realm="wshub", error="insufficient_scope"',
          `the token's "rooms" do not cover ${describeRoom(room)}`,
        );
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
