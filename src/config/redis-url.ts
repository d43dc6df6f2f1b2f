import { z } from 'zod';
import type { Kind } from './kinds.js';

/** Where the Redis backplane lives: `redis://[user:pass@]host:port[/db]` or `rediss://` for TLS (issue 6). */
export interface RedisTarget {
  readonly tls: boolean;
  readonly host: string;
  readonly port: number;
  readonly username: string;
  readonly password: string;
  readonly db: number;
}

const DEFAULT_REDIS_PORT = 6379;
const MAX_DB = 1_000_000;

/** Parses a Redis URL; returns a sentence saying what is wrong instead of throwing. */
export function parseRedisUrl(text: string): RedisTarget | string {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return 'not a URL';
  }
  if (url.protocol !== 'redis:' && url.protocol !== 'rediss:')
    return `scheme ${url.protocol} is not redis: or rediss:`;
  if (url.hostname === '') return 'no host';
  if (url.search !== '' || url.hash !== '') return 'query strings and fragments are not supported';
  const dbText = url.pathname.replace(/^\//, '');
  if (dbText !== '' && !/^\d+$/.test(dbText)) return `database ${JSON.stringify(dbText)} is not a number`;
  const port = url.port === '' ? DEFAULT_REDIS_PORT : Number(url.port);
  if (port < 1 || port > 65535) return `port ${port} is not from 1 to 65535`;
  const db = dbText === '' ? 0 : Number(dbText);
  if (db > MAX_DB) return `database ${db} is too large`;
  let username: string;
  let password: string;
  try {
    username = decodeURIComponent(url.username);
    password = decodeURIComponent(url.password);
  } catch {
    return 'bad percent-encoding in the user or password';
  }
  return {
    tls: url.protocol === 'rediss:',
    // URL keeps the brackets of an IPv6 literal; a socket wants the bare address.
    host: url.hostname.replace(/^\[(.*)\]$/, '$1'),
    port,
    username,
    password,
    db,
  };
}

/** The URL with the password replaced by "***": safe for logs, --print-config and /readyz. */
export function formatRedisTarget(target: RedisTarget): string {
  const user = encodeURIComponent(target.username);
  const credentials = target.password !== '' ? `${user}:***@` : target.username !== '' ? `${user}@` : '';
  const host = target.host.includes(':') ? `[${target.host}]` : target.host;
  return `${target.tls ? 'rediss' : 'redis'}://${credentials}${host}:${target.port}/${target.db}`;
}

/** "scheme://user:secret@host" → "scheme://user:***@host", for text that may not even parse as a URL. */
export function redactUrlPassword(text: string): string {
  return text.replace(/(\/\/[^:@/\s]*:)[^@/\s]*@/g, '$1***@');
}

/** A setting holding a Redis URL; empty means "no Redis". Shown redacted. */
export function redisUrl(): Kind<RedisTarget | undefined> {
  const toTarget = (value: unknown): unknown => {
    if (value === null || value === undefined) return undefined;
    if (typeof value !== 'string') return value;
    if (value.trim() === '') return undefined;
    const parsed = parseRedisUrl(value.trim());
    return typeof parsed === 'string' ? value : parsed;
  };
  const target = z.object({
    tls: z.boolean(),
    host: z.string(),
    port: z.number(),
    username: z.string(),
    password: z.string(),
    db: z.number(),
  });
  return {
    hint: '<url>',
    expected:
      'a redis://[user:password@]host:port[/db] or rediss:// (TLS) URL, or empty for a single node without Redis',
    schema: z.preprocess(toTarget, target.optional()) as unknown as z.ZodType<RedisTarget | undefined>,
    format: (value) => (value === undefined ? '' : formatRedisTarget(value)),
  };
}
