import { once } from 'node:events';
import { type TLSSocket, connect as tlsConnect } from 'node:tls';
import { WebSocket } from 'ws';

/** The fingerprint of the certificate a fresh TLS handshake on `port` is served. */
export async function servedFingerprint(port: number): Promise<string> {
  const socket = tlsConnect({ host: '127.0.0.1', port, rejectUnauthorized: false });
  await once(socket, 'secureConnect');
  const fingerprint = socket.getPeerCertificate().fingerprint256;
  socket.destroy();
  return fingerprint;
}

/** A wss:// client that remembers the certificate its own handshake saw. */
export async function openWss(
  port: number,
  options: ConstructorParameters<typeof WebSocket>[2] = { rejectUnauthorized: false },
): Promise<{ ws: WebSocket; fingerprint: string }> {
  const ws = new WebSocket(`wss://127.0.0.1:${port}/ws`, options);
  let fingerprint = '';
  ws.once('upgrade', function onUpgrade(response) {
    fingerprint = (response.socket as TLSSocket).getPeerCertificate().fingerprint256;
  });
  await once(ws, 'open');
  return { ws, fingerprint };
}

/** Sends one text message and returns the next message received, as text. */
export async function echo(ws: WebSocket, text: string): Promise<string> {
  const reply = once(ws, 'message');
  ws.send(text);
  const [data] = (await reply) as [Buffer];
  return data.toString('utf8');
}
