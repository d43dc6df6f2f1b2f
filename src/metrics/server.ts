import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Registry } from 'prom-client';
import type { Health } from '../lifecycle/health.js';
import { pathOf } from '../transport/routes.js';

/** The metrics port: /metrics (Prometheus text format), /livez and /readyz. */
export function createMetricsServer(registry: Registry, health: Health): Server {
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
      const state = health.readiness();
      reply(
        response,
        state.ready ? 200 : 503,
        state.ready ? 'ready\n' : `not ready: ${state.failing.join(', ')}\n`,
      );
    } else {
      reply(response, 404, '404 Not Found\n');
    }
  });
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
