import type { AddressInfo } from 'node:net';
import { type RawData, type WebSocket, WebSocketServer } from 'ws';

/**
 * The baselines every wshub figure is compared with: the smallest `ws` server
 * that does the job (bench/README.md). `echo` sends each message back (`echo-deflate`:
 * the same with permessage-deflate on); `broadcast`
 * is the naive loop over `wss.clients` (`broadcast-deflate`: with permessage-deflate on).
 * Prints `listening PORT` once ready.
 */
const mode = process.argv[2]?.startsWith('broadcast') ? 'broadcast' : 'echo';
const wss = new WebSocketServer({
  host: '127.0.0.1',
  port: 0,
  // *-deflate: compression on with ws's defaults, as a minimal server would turn it on.
  perMessageDeflate: process.argv[2]?.endsWith('-deflate') === true,
  clientTracking: mode === 'broadcast',
});

wss.on('connection', function onConnection(ws: WebSocket) {
  if (mode === 'broadcast') {
    ws.on('message', function broadcast(data: RawData, isBinary: boolean) {
      for (const client of wss.clients) client.send(data, { binary: isBinary });
    });
  } else {
    ws.on('message', function echo(data: RawData, isBinary: boolean) {
      ws.send(data, { binary: isBinary });
    });
  }
});

wss.on('listening', function onListening() {
  process.stdout.write(`listening ${(wss.address() as AddressInfo).port}\n`);
});

for (const signal of ['SIGTERM', 'SIGINT'] as const)
  process.on(signal, function onSignal() {
    process.exit(0);
  });
