import { constants, deflateRawSync, type ZlibOptions } from 'node:zlib';
import type { PerMessageDeflateOptions } from 'ws';

/**
 * permessage-deflate (RFC 7692) as wshub offers it. Each choice trades a little
 * compression for memory that stays flat as compressing connections add up:
 * ws keeps one zlib stream per direction per connection for the connection's
 * lifetime, so per-connection zlib state is what grows with the client count.
 */
export function perMessageDeflateOptions(threshold: number, level: number): PerMessageDeflateOptions {
  return {
    // server_no_context_takeover (§7.1.1.1; a server may require it even if the
    // client did not offer it): every server message is compressed on its own.
    // This is what makes ws honour `threshold` (it can only skip small messages
    // when no shared history depends on them), and it makes a message's
    // compressed bytes the same for every receiver, so a broadcast is
    // compressed once per server window size (see WriterGroup in writer.ts).
    serverNoContextTakeover: true,
    // server_max_window_bits=12 (§7.1.2.1; the server may announce it unasked):
    // a 4 KiB window holds a typical JSON message whole, and without context
    // takeover a larger window only helps inside one big message. Together with
    // memLevel 6 this measured ~110 KiB RSS per compressing connection against
    // ~220 KiB with zlib's defaults (15/8), at the same ratio on 10 KiB JSON.
    serverMaxWindowBits: 12,
    // Client parameters are left to the client: requiring client_max_window_bits
    // would make ws refuse (400) clients that do not offer it, and
    // client_no_context_takeover would cost the client's ratio without freeing
    // our inflate stream (ws resets, never frees, it).
    // --compression-level, 1 by default (issue 5): zlib's fastest level, as gorilla/websocket
    // uses. zlib's default 6 cost ~35% more server CPU per compressed 16 KiB echo (70 against
    // 52 us/op) for output 0-9% smaller on JSON samples (2 KiB chat lines: 316 against 328 bytes).
    zlibDeflateOptions: { level, memLevel: 6, chunkSize: 4096 },
    zlibInflateOptions: { chunkSize: 4096 },
    threshold,
    // At most this many zlib jobs in flight process-wide (ws's limiter is global;
    // unbounded concurrency fragments the heap: nodejs/node#8871, websockets/ws#1202).
    // The libuv pool runs 4 at a time; a few more keep it busy while results are
    // collected. A job waiting in the queue holds only its input, and a
    // connection has at most one inbound job (its reads pause meanwhile).
    concurrencyLimit: 10,
  };
}

/**
 * The smallest server_max_window_bits a client offers for permessage-deflate
 * (RFC 7692 §7.1.2.1), or undefined when it offers none. Only a hint for
 * choosing how to negotiate; ws parses and validates the header itself.
 */
export function offeredServerWindowBits(header: string | undefined): number | undefined {
  if (header === undefined || !header.includes('server_max_window_bits')) return undefined;
  let smallest: number | undefined;
  for (const [, bits] of header.matchAll(/server_max_window_bits\s*=\s*"?(\d{1,2})"?/g)) {
    const value = Number(bits);
    if (smallest === undefined || value < smallest) smallest = value;
  }
  return smallest;
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const WINDOW_BITS = /^(?:8|9|1[0-5])$/;

/**
 * The permessage-deflate offers of a Sec-WebSocket-Extensions header that are
 * valid (RFC 7692 §7: known parameters, each at most once, with valid values),
 * rewritten canonically; undefined when none is. RFC 7692 §7 says a server
 * declines an invalid offer, and RFC 6455 §9.1 lets it answer without any
 * extension; ws instead refuses the whole handshake with 400 when any offer is
 * malformed, so wshub hands ws only the valid ones. Other extensions are dropped:
 * wshub supports none.
 */
export function validDeflateOffers(header: string): string | undefined {
  const kept: string[] = [];
  for (const offer of header.split(',')) {
    const [name, ...params] = offer.split(';').map((part) => part.trim());
    if (name?.toLowerCase() !== 'permessage-deflate') continue;
    const seen = new Set<string>();
    const canonical = ['permessage-deflate'];
    let valid = true;
    for (const param of params) {
      const equals = param.indexOf('=');
      const key = (equals === -1 ? param : param.slice(0, equals)).trim().toLowerCase();
      const rawValue = equals === -1 ? undefined : param.slice(equals + 1).trim();
      const value =
        rawValue?.startsWith('"') && rawValue.endsWith('"') && rawValue.length >= 2
          ? rawValue.slice(1, -1)
          : rawValue;
      if (!TOKEN.test(key) || seen.has(key)) valid = false;
      else if (key === 'server_no_context_takeover' || key === 'client_no_context_takeover')
        valid &&= value === undefined;
      else if (key === 'server_max_window_bits') valid &&= value !== undefined && WINDOW_BITS.test(value);
      else if (key === 'client_max_window_bits') valid &&= value === undefined || WINDOW_BITS.test(value);
      else valid = false;
      seen.add(key);
      if (!valid) break;
      canonical.push(value === undefined ? key : `${key}=${value}`);
    }
    if (valid) kept.push(canonical.join('; '));
  }
  return kept.length > 0 ? kept.join(', ') : undefined;
}

/** zlib options for compressing a message once for many receivers (the same as ws's per-connection stream). */
export function sharedDeflateOptions(options: PerMessageDeflateOptions | false): ZlibOptions {
  if (!options) return {};
  const { level, memLevel, strategy } = options.zlibDeflateOptions ?? {};
  return { level, memLevel, strategy };
}

/**
 * One message compressed as RFC 7692 §7.2.1 says: raw DEFLATE from an empty
 * history with a window of `windowBits`, ended by a sync flush whose empty
 * block (00 00 ff ff) is removed. Synchronous: it runs once per broadcast in
 * the event loop, so the frames that follow it keep their order without a queue.
 */
export function deflateMessage(data: Buffer, windowBits: number, options: ZlibOptions): Buffer {
  const compressed = deflateRawSync(data, { ...options, windowBits, finishFlush: constants.Z_SYNC_FLUSH });
  return compressed.subarray(0, compressed.length - 4);
}
