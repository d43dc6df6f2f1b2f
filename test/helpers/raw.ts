import { clientFrame, rawHandshake } from './clients.js';
import { FrameReader } from './frames.js';

export interface RawClient {
  readonly reader: FrameReader;
  /** The server's handshake response head (status line and headers). */
  readonly response: string;
  send(...frames: Buffer[]): void;
}

/** A raw-socket WebSocket client: handshake by hand, then hand-built frames (test/helpers/frames.ts reads the replies). */
export async function openRaw(
  port: number,
  path = '/ws',
  extraHeaders: string[] = [],
  sendWithRequest?: Buffer,
): Promise<RawClient> {
  const { socket, response } = await rawHandshake(port, path, extraHeaders, sendWithRequest);
  const headEnd = response.indexOf('\r\n\r\n') + 4;
  const reader = new FrameReader(socket, Buffer.from(response.slice(headEnd), 'latin1'));
  return {
    reader,
    response: response.slice(0, headEnd),
    send: (...frames) => {
      socket.write(Buffer.concat(frames));
    },
  };
}

/** A close frame from the client: code (if any) and reason bytes. */
export function clientClose(code?: number, reason: Buffer | string = Buffer.alloc(0)): Buffer {
  if (code === undefined) return clientFrame(0x8, Buffer.alloc(0));
  const body = Buffer.concat([Buffer.from([code >> 8, code & 0xff]), Buffer.from(reason)]);
  return clientFrame(0x8, body);
}
