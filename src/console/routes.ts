import { readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { hashPolicy } from '../charts/document.js';
import type { PlainRoute } from '../transport/http-server.js';
import { consolePage } from './page.js';
import type { ConsoleSnapshot } from './snapshot.js';

export interface ConsoleSources {
  readonly mode: string;
  /** 1, or the --workers count (the figures are then the whole cluster's). */
  readonly workers: number;
  /** --ping-interval: the page takes ping percentiles over a window at least this long. */
  readonly pingIntervalMs: number;
  /** This process's figures, or with --workers the cluster's (asked of the primary). */
  readonly snapshot: () => ConsoleSnapshot | Promise<ConsoleSnapshot>;
  /** --history-size > 0: the page's client asks for wshub.v1 (positions, resume). */
  readonly history?: boolean;
}

/**
 * The console's endpoints on the WebSocket port (off with --no-console):
 * `GET /` the page, `GET /stats` the live figures as JSON (connection count,
 * counters, ping buckets, busiest rooms), which the page polls once a second. Same origin as the WebSocket endpoint, so no CORS is needed and
 * the page works through the same ingress the WebSocket traffic takes.
 */
export function consoleRoutes(sources: ConsoleSources): ReadonlyMap<string, PlainRoute> {
  const built = consolePage();
  const page = Buffer.from(
    built.html.replace('<body>', `<body data-history="${sources.history === true ? 'on' : 'off'}">`),
  );
  // Only the page's own inline scripts and style run (and the client library it imports,
  // GET /client.js: 'self'); it may talk only to its own origin.
  const policy = hashPolicy(built.scripts, built.style, [
    "connect-src 'self' ws: wss:",
    "frame-ancestors 'none'",
  ]).replace(/(script-src [^;]*)/, "$1 'self'");
  const library = clientLibrary();
  return new Map<string, PlainRoute>([
    [
      '/',
      function serveConsolePage(request, response) {
        if (!allowGetOnly(request, response)) return;
        response.writeHead(200, {
          'Content-Type': 'text/html; charset=utf-8',
          'Content-Length': page.length,
          'Content-Security-Policy': policy,
          'X-Content-Type-Options': 'nosniff',
          'Referrer-Policy': 'no-referrer',
          'Cache-Control': 'no-cache',
        });
        response.end(request.method === 'HEAD' ? undefined : page);
      },
    ],
    [
      '/client.js',
      function serveClientLibrary(request, response) {
        if (!allowGetOnly(request, response)) return;
        response.writeHead(200, {
          'Content-Type': 'text/javascript; charset=utf-8',
          'Content-Length': library.length,
          'X-Content-Type-Options': 'nosniff',
          'Cache-Control': 'no-cache',
        });
        response.end(request.method === 'HEAD' ? undefined : library);
      },
    ],
    [
      '/stats',
      function serveStats(request, response) {
        if (!allowGetOnly(request, response)) return;
        Promise.resolve()
          .then(sources.snapshot)
          .then(
            (snapshot) =>
              answerJson(request, response, 200, {
                mode: sources.mode,
                workers: sources.workers,
                pingIntervalMs: sources.pingIntervalMs,
                ...snapshot,
              }),
            // --workers: the primary did not answer (it is stopping, or overloaded).
            (error: Error) =>
              answerJson(request, response, 503, { error: `cluster figures unavailable: ${error.message}` }),
          );
      },
    ],
  ]);
}

function answerJson(
  request: IncomingMessage,
  response: ServerResponse,
  status: number,
  value: unknown,
): void {
  const body = `${JSON.stringify(value)}\n`;
  response.writeHead(status, {
    'Content-Type': 'application/json',
    'Content-Length': Buffer.byteLength(body),
    'Cache-Control': 'no-store',
    'X-Content-Type-Options': 'nosniff',
  });
  response.end(request.method === 'HEAD' ? undefined : body);
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

/** The browser build of `wshub/client` (src/sdk/client.ts compiled: no imports), without its source-map comment. */
function clientLibrary(): Buffer {
  const source = readFileSync(new URL('../sdk/client.js', import.meta.url), 'utf8');
  return Buffer.from(source.replace(/\n\/\/# sourceMappingURL=.*\n?$/, '\n'));
}
