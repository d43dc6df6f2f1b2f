import type { AddressInfo } from 'node:net';
import { type RawData, type WebSocket, WebSocketServer } from 'ws';
import { flag, parseFlags, runScript } from '../src/config/args.js';
import { oneOf } from '../src/config/kinds.js';
import { SERVER_MODES, type ServerMode } from './servers.js';

/**
 * The baselines every wshub figure is compared with: the smallest `ws` server
 * that does the job (bench/README.md). `echo` sends each message back (`echo-deflate`:
 * the same with permessage-deflate on); `broadcast`
 * is the naive loop over `wss.clients` (`broadcast-deflate`: with permessage-deflate on).
 * Prints `listening PORT` once ready. Started by bench/servers.ts with `--mode=…`.
 */
const FLAGS = {
  mode: flag<ServerMode>({ kind: oneOf(SERVER_MODES), default: 'echo', doc: 'What the server does' }),
} as const;

function serve(serverMode: ServerMode): void {
  const mode = serverMode.startsWith('broadcast') ? 'broadcast' : 'echo';
  const wss = new WebSocketServer({
    host: '127.0.0.1',
    port: 0,
    // *-deflate: compression on with ws's defaults, as a minimal server would turn it on.
    perMessageDeflate: serverMode.endsWith('-deflate'),
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
}

for (const signal of ['SIGTERM', 'SIGINT'] as const)
  process.on(signal, function onSignal() {
    process.exit(0);
  });

await runScript('bench/baseline-server', async () => {
  serve(parseFlags(process.argv.slice(2), FLAGS, 'bench/baseline-server').values.mode);
  return 0;
});
