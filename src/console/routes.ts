import { createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { PlainRoute } from '../transport/http-server.js';
import { CONSOLE_HTML, CONSOLE_SCRIPT, CONSOLE_STYLE } from './page.js';

export interface ConsoleSources {
  readonly connectionCount: () => number;
  readonly mode: string;
}

const hashOf = (text: string): string => `'sha256-${createHash('sha256').update(text).digest('base64')}'`;

/** Only this page's own inline script and style run; it may talk only to its own origin. */
const CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  `script-src ${hashOf(CONSOLE_SCRIPT)}`,
  `style-src ${hashOf(CONSOLE_STYLE)}`,
  "connect-src 'self' ws: wss:",
  "frame-ancestors 'none'",
  "base-uri 'none'",
  "form-action 'none'",
].join('; ');

/**
 * The console's endpoints on the WebSocket port (off with --no-console):
 * `GET /` the page, `GET /stats` the live connection count as JSON, which the
 * page polls. Same origin as the WebSocket endpoint, so no CORS is needed and
 * the page works through the same ingress the WebSocket traffic takes.
 */
export function consoleRoutes(sources: ConsoleSources): ReadonlyMap<string, PlainRoute> {
  const page = Buffer.from(CONSOLE_HTML);
  return new Map<string, PlainRoute>([
    [
      '/',
      function serveConsolePage(request, response) {
        if (!allowGetOnly(request, response)) return;
        response.writeHead(200, {
          'Content-Type': 'text/html; charset=utf-8',
          'Content-Length': page.length,
          'Content-Security-Policy': CONTENT_SECURITY_POLICY,
          'X-Content-Type-Options': 'nosniff',
          'Referrer-Policy': 'no-referrer',
          'Cache-Control': 'no-cache',
        });
        response.end(request.method === 'HEAD' ? undefined : page);
      },
    ],
    [
      '/stats',
      function serveStats(request, response) {
        if (!allowGetOnly(request, response)) return;
        const body = `${JSON.stringify({ connections: sources.connectionCount(), mode: sources.mode })}\n`;
        response.writeHead(200, {
          'Content-Type': 'application/json',
          'Content-Length': Buffer.byteLength(body),
          'Cache-Control': 'no-store',
          'X-Content-Type-Options': 'nosniff',
        });
        response.end(request.method === 'HEAD' ? undefined : body);
      },
    ],
  ]);
}

function allowGetOnly(request: IncomingMessage, response: ServerResponse): boolean {
  if (request.method === 'GET' || request.method === 'HEAD') return true;
  const body = '405 Method Not Allowed\n';
  response.writeHead(405, {
    Allow: 'GET, HEAD',
    'Content-Type': 'text/plain; charset=utf-8',
    'Content-Length': Buffer.byteLength(body),
  });
  response.end(body);
  return false;
}
