import { readFileSync } from 'node:fs';
import { createInterface, type Interface } from 'node:readline';
import type { Readable, Writable } from 'node:stream';
import { WebSocket } from 'ws';
import { bearerHeaders, redactAccessToken } from '../config/websocket-url.js';
import { ErrorCode, UsageError } from '../errors.js';
import { Http2WebSocketConnection } from './http2.js';
import type { ClientOptions } from './options.js';

export interface ClientIo {
  readonly input: Readable;
  /** Messages received. */
  readonly output: Writable;
  /** Connection events, close codes, errors. */
  readonly status: Writable;
}

export interface RunningClient {
  /** Resolves with the exit code once the connection is over. */
  readonly done: Promise<number>;
  /** Ctrl-C: the first closes with 1000, the next drops the connection. */
  interrupt(): void;
}

/** ws's default largest message (100 MiB), for a WebSocket over HTTP/2 as for one over HTTP/1.1. */
const MAX_PAYLOAD = 100 * 1024 * 1024;

/** Stop reading stdin while this much is queued for the socket, so a fast pipe cannot fill memory. */
const HIGH_WATER_BYTES = 1024 * 1024;

/** RFC 6455 §7.4.1 and the IANA registry: what a close code means, for people reading the output. */
const CLOSE_CODE_NAMES: Readonly<Record<number, string>> = {
  1000: 'normal closure',
  1001: 'going away',
  1002: 'protocol error',
  1003: 'unsupported data',
  1005: 'no status code',
  1006: 'abnormal closure, no close frame',
  1007: 'invalid payload data',
  1008: 'policy violation',
  1009: 'message too big',
  1010: 'mandatory extension',
  1011: 'internal error',
  1012: 'service restart',
  1013: 'try again later',
  1014: 'bad gateway',
  1015: 'TLS handshake failure',
};

/** How a received message is printed: text as it is, binary visibly marked and base64-encoded. */
export function formatMessage(data: Buffer, isBinary: boolean): string {
  return isBinary
    ? `[binary ${data.length} bytes, base64] ${data.toString('base64')}\n`
    : `${data.toString('utf8')}\n`;
}

export function formatClose(code: number, reason: string): string {
  const name = CLOSE_CODE_NAMES[code] ?? (code >= 4000 ? 'application code' : 'unknown code');
  return `closed: ${code} (${name})${reason === '' ? '' : ` reason: ${JSON.stringify(reason)}`}\n`;
}

/**
 * `wshub client`: lines from `input` go out as text messages, messages
 * received are written to `output`. Ends after the close handshake, which it
 * starts itself when `input` ends.
 */
export function runClient(options: ClientOptions, io: ClientIo): RunningClient {
  const ca = readCaFile(options.caFile);
  const http2 = options.http2
    ? new Http2WebSocketConnection(options.url, {
        ca,
        rejectUnauthorized: !options.insecure,
        maxPayload: MAX_PAYLOAD,
      })
    : undefined;
  const headers = bearerHeaders(options.token);
  const ws =
    http2?.open(options.url, 0, headers) ??
    new WebSocket(options.url, {
      rejectUnauthorized: !options.insecure,
      ...(ca === undefined ? {} : { ca }),
      headers,
    });
  const shownUrl = redactAccessToken(options.url);
  let lines: Interface | undefined;
  let opened = false;
  let interrupted = false;
  let outputGone = false;

  const done = new Promise<number>((resolve) => {
    ws.on('open', function onOpen() {
      opened = true;
      io.status.write(`connected to ${shownUrl}${http2 ? ' (HTTP/2)' : ''}\n`);
      lines = createInterface({ input: io.input, crlfDelay: Number.POSITIVE_INFINITY, terminal: false });
      lines.on('line', sendLine);
      lines.on('close', function onInputEnd() {
        if (ws.readyState === WebSocket.OPEN) ws.close(1000);
      });
    });
    ws.on('message', function onMessage(data: Buffer, isBinary: boolean) {
      if (outputGone) return;
      // A slow reader of our output (a pipe) slows the socket down instead of filling memory.
      if (!io.output.write(formatMessage(data, isBinary)) && !ws.isPaused) {
        ws.pause();
        io.output.once('drain', function onOutputDrain() {
          ws.resume();
        });
      }
    });
    // The reader went away (`wshub client | head -1`): end the conversation politely, no stack trace.
    io.output.on('error', function onOutputError() {
      if (outputGone) return;
      outputGone = true;
      ws.resume();
      if (ws.readyState === WebSocket.OPEN) ws.close(1000);
    });
    ws.on('error', function onError(error: Error & { code?: string }) {
      io.status.write(`wshub client: ${describeError(shownUrl, error, options.http2)}\n`);
    });
    ws.on('close', function onClose(code: number, reason: Buffer) {
      http2?.close();
      if (opened) io.status.write(formatClose(code, reason.toString('utf8')));
      lines?.close();
      resolve(opened && code === 1000 ? 0 : 1);
    });
  });

  function sendLine(line: string): void {
    if (ws.readyState !== WebSocket.OPEN) return;
    ws.send(line, function afterSend() {
      if (ws.bufferedAmount < HIGH_WATER_BYTES) lines?.resume();
    });
    if (ws.bufferedAmount >= HIGH_WATER_BYTES) lines?.pause();
  }

  return {
    done,
    interrupt() {
      if (interrupted || ws.readyState !== WebSocket.OPEN) {
        ws.terminate();
        return;
      }
      interrupted = true;
      ws.close(1000);
    },
  };
}

function readCaFile(path: string): Buffer | undefined {
  if (path === '') return undefined;
  try {
    return readFileSync(path);
  } catch (error) {
    throw new UsageError(
      ErrorCode.TLS_FILE_UNREADABLE,
      `cannot read ${path} (--ca-file): ${(error as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (error as Error).message}`,
    );
  }
}

function describeError(url: string, error: Error & { code?: string }, http2: boolean): string {
  const what = `cannot connect to ${url}: ${error.message}`;
  const code = error.code ?? '';
  // An HTTP/1.1-only server answers the HTTP/2 preface with a 400 and closes: nghttp2 calls that a protocol error.
  if (http2 && (code === 'ERR_HTTP2_ERROR' || code === 'ERR_HTTP2_SESSION_ERROR' || code === 'ECONNRESET')) {
    return `${what} (${code}); the server does not speak HTTP/2 here: start it with --http2, or connect without --http2`;
  }
  if (/CERT|SIGNATURE|SELF_SIGNED|ALTNAME|ISSUER/.test(code)) {
    return `${what} (${code}); use --insecure to accept any certificate, or --ca-file=CA.pem`;
  }
  if (code === 'ECONNRESET' && url.startsWith('ws:')) {
    return `${what}; if the server uses TLS, connect with wss://`;
  }
  return code !== '' && !error.message.includes(code) ? `${what} (${code})` : what;
}
