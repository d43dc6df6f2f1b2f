import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AuthFailureReason } from '../stats.js';
import type { TokenVerifier } from './verifier.js';

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
