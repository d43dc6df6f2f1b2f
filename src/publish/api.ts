import { isUtf8 } from 'node:buffer';
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Identity } from '../auth/claims.js';
import { describeRoom } from '../auth/patterns.js';
import type { TokenVerifier } from '../auth/verifier.js';
import type { RateLimitedLog } from '../log.js';
import type { PublishStatus, Stats } from '../stats.js';
import { formatPeer } from '../transport/address.js';
import type { PlainRoute } from '../transport/http-server.js';
import { isValidRoomName } from '../transport/routes.js';
import { TokenBucket } from './token-bucket.js';

/** The hub's server-side publish: local clients of the room, then the other nodes. */
export interface Publisher {
  publish(room: string, data: Buffer, isBinary: boolean): number;
}

export interface PublishOptions {
  /** The static token (--publish-token), allowed to publish to every room; '' for none. */
  readonly token: string;
  /** --auth=jwt: a JWT whose "publish" claim covers the room is accepted too (issue 15). */
  readonly verifier?: TokenVerifier | undefined;
  /** Requests per second (and the burst size). */
  readonly ratePerSecond: number;
  /** Largest body accepted, the same bound as a client's message (--max-message-size). */
  readonly maxBytes: number;
  readonly publisher: Publisher;
  readonly stats: Stats;
  readonly limitedLog: RateLimitedLog;
}

const digest = (text: string): Buffer => createHash('sha256').update(text).digest();

/**
 * POST /publish[?room=NAME] on the WebSocket port (issue 8): the request body
 * becomes one message to every client of the room (the default room without
 * ?room), on every node when a backplane is configured. Bearer token compared
 * in constant time; bodies bounded by the message size; a token bucket bounds
 * the rate. Every answer is counted in wshub_publish_requests_total{status}.
 */
export function publishRoute(options: PublishOptions): PlainRoute {
  // Both sides hashed first: timingSafeEqual needs equal lengths, and the length of the token must not leak either.
  const expected = digest(options.token);
  const bucket = new TokenBucket(options.ratePerSecond, options.ratePerSecond);
  const { stats, limitedLog } = options;

  const answer = (
    request: IncomingMessage,
    response: ServerResponse,
    status: PublishStatus,
    body: Record<string, unknown>,
    headers: Record<string, string> = {},
  ): void => {
    stats.publishRequests[status]++;
    if (status !== '200') {
      const peer = formatPeer(request.socket.remoteAddress, request.socket.remotePort);
      limitedLog.log(
        `publish_${status}`,
        'warn',
        `Publish request from ${peer} refused: ${status} ${body.error}`,
        {
          remote_addr: peer,
          status: Number(status),
        },
      );
    }
    const text = `${JSON.stringify(body)}\n`;
    response.writeHead(Number(status), {
      'Content-Type': 'application/json',
      'Content-Length': Buffer.byteLength(text),
      'Cache-Control': 'no-store',
      ...headers,
    });
    response.end(text);
  };

  return function handlePublish(request, response) {
    if (request.method !== 'POST') {
      answer(request, response, '405', { error: 'use POST' }, { Allow: 'POST' });
      request.resume();
      return;
    }
    const authorization = request.headers.authorization ?? '';
    const presented = /^Bearer (\S+)$/i.exec(authorization)?.[1] ?? '';
    if (options.token !== '' && timingSafeEqual(digest(presented), expected)) {
      accept(request, response, undefined);
      return;
    }
    const verifier = options.verifier;
    if (verifier !== undefined && presented.split('.').length === 3) {
      verifier.verify(presented).then((verification) => {
        if (verification.ok) {
          accept(request, response, verification.identity);
          return;
        }
        stats.authFailures[verification.reason]++;
        if (verification.reason === 'keys_unavailable') {
          answer(request, response, '503', { error: 'cannot verify tokens now' }, { 'Retry-After': '5' });
        } else {
          answer(
            request,
            response,
            '401',
            { error: `invalid token: ${verification.detail}` },
            {
              'WWW-Authenticate': `Bearer realm="wshub publish", error="invalid_token"`,
              Connection: 'close',
            },
          );
        }
        request.resume();
      });
      return;
    }
    if (verifier !== undefined) stats.authFailures[presented === '' ? 'missing' : 'malformed']++;
    answer(
      request,
      response,
      '401',
      { error: 'missing or wrong bearer token' },
      { 'WWW-Authenticate': 'Bearer realm="wshub publish"', Connection: 'close' },
    );
    request.resume();
  };

  /** The caller is authenticated: the static token (every room) or a JWT whose "publish" claim is checked here. */
  function accept(request: IncomingMessage, response: ServerResponse, identity: Identity | undefined): void {
    const room = new URL(request.url ?? '/', 'http://wshub').searchParams.get('room') ?? '';
    if (room !== '' && !isValidRoomName(room)) {
      answer(request, response, '400', { error: 'room names are 1 to 64 of A-Z a-z 0-9 . _ -' });
      request.resume();
      return;
    }
    if (identity !== undefined && !identity.mayPublish(room)) {
      stats.authFailures.publish++;
      answer(
        request,
        response,
        '403',
        {
          error: `the token's "publish" does not cover ${describeRoom(room)}`,
        },
        { 'WWW-Authenticate': 'Bearer realm="wshub publish", error="insufficient_scope"' },
      );
      request.resume();
      return;
    }
    if (!bucket.take()) {
      answer(
        request,
        response,
        '429',
        { error: `more than ${options.ratePerSecond} publish requests per second (--publish-rate)` },
        { 'Retry-After': String(bucket.secondsUntilNext()) },
      );
      request.resume();
      return;
    }
    const tooLarge = (): void =>
      answer(
        request,
        response,
        '413',
        { error: `body larger than ${options.maxBytes} bytes (--max-message-size)` },
        { Connection: 'close' },
      );
    const declared = Number(request.headers['content-length'] ?? Number.NaN);
    if (declared > options.maxBytes) {
      tooLarge();
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let refused = false;
    request.on('data', function collectBody(chunk: Buffer) {
      if (refused) return;
      size += chunk.length;
      if (size > options.maxBytes) {
        refused = true;
        tooLarge();
        return;
      }
      chunks.push(chunk);
    });
    request.on('end', function deliverBody() {
      if (refused) return;
      const body = Buffer.concat(chunks, size);
      // application/octet-stream is sent as a binary message; anything else as text, which must be UTF-8.
      const isBinary = /^application\/octet-stream\b/i.test(request.headers['content-type'] ?? '');
      if (!isBinary && !isUtf8(body)) {
        answer(request, response, '400', {
          error: 'body is not valid UTF-8; send binary with Content-Type: application/octet-stream',
        });
        return;
      }
      const delivered = options.publisher.publish(room, body, isBinary);
      answer(request, response, '200', { room, delivered, bytes: body.length, binary: isBinary });
    });
  }
}
