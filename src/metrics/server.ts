import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Registry } from 'prom-client';
import type { Health } from '../lifecycle/health.js';
import { pathOf } from '../transport/routes.js';

/** What /metrics serves: a prom-client Registry, or the primary's aggregate of its workers' (--workers). */
export type MetricsSource = Pick<Registry, 'metrics' | 'contentType'>;

/** The metrics port: /metrics (Prometheus text format), /livez and /readyz. */
export function createMetricsServer(registry: MetricsSource, health: Health): Server {
  return createServer(function handleMetricsRequest(request: IncomingMessage, response: ServerResponse) {
    const path = pathOf(request.url);
    if (request.method !== 'GET' && request.method !== 'HEAD') {
      reply(response, 405, 'method not allowed\n', { Allow: 'GET, HEAD' });
      return;
    }
    if (path === '/metrics') {
      registry.metrics().then(
        (text) => reply(response, 200, text, { 'Content-Type': registry.contentType }),
        (error: Error) => reply(response, 500, `metrics collection failed: ${error.message}\n`),
      );
    } else if (path === '/livez') {
      reply(response, 200, 'ok\n');
    } else if (path === '/readyz') {
      reply(response, ...readinessReply(health));
    } else {
      reply(response, 404, '404 Not Found\n');
    }
  });
}

/** 200 or 503, a first line a probe log can show, then one line per component that describes itself. */
export function readinessReply(health: Health): [status: number, body: string] {
  const state = health.readiness();
  const headline = !state.ready
    ? `not ready: ${state.failing.join(', ')}`
    : state.degraded.length > 0
      ? `ready (degraded: ${state.degraded.join(', ')})`
      : 'ready';
  return [state.ready ? 200 : 503, [headline, ...state.details].map((line) => `${line}\n`).join('')];
}

function reply(
  response: ServerResponse,
  status: number,
  body: string,
  headers: Record<string, string> = {},
): void {
  response.writeHead(status, {
    'Content-Type': 'text/plain; charset=utf-8',
    'Content-Length': Buffer.byteLength(body),
    ...headers,
  });
  response.end(body);
}
