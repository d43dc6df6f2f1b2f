import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { matchWebSocketPath, pathOf } from './routes.js';

/**
 * The HTTP server of the WebSocket port. It serves no metrics: a plain request
 * to the WebSocket path gets 426 (RFC 7231 §6.5.15, with the Upgrade header it
 * needs), anything else 404. Upgrades go to `onUpgrade`.
 */
export function createWebSocketHttpServer(
  onUpgrade: (request: IncomingMessage, socket: import('node:stream').Duplex, head: Buffer) => void,
): Server {
  const server = createServer(handlePlainRequest);
  server.on('upgrade', onUpgrade);
  return server;
}

function handlePlainRequest(request: IncomingMessage, response: ServerResponse): void {
  if (matchWebSocketPath(pathOf(request.url)).kind === 'websocket') {
    const body =
      '426 Upgrade Required: this endpoint speaks WebSocket (RFC 6455); connect with a WebSocket client\n';
    response.writeHead(426, {
      Upgrade: 'websocket',
      Connection: 'Upgrade',
      'Sec-WebSocket-Version': '13',
      'Content-Type': 'text/plain; charset=utf-8',
      'Content-Length': Buffer.byteLength(body),
    });
    response.end(body);
    return;
  }
  const body = '404 Not Found\n';
  response.writeHead(404, {
    'Content-Type': 'text/plain; charset=utf-8',
    'Content-Length': Buffer.byteLength(body),
  });
  response.end(body);
}
