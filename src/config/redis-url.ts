import { z } from 'zod';
import type { Kind } from './kinds.js';

/** Where the Redis backplane lives: one server, a Redis Cluster, or a primary found through Sentinel. */
export type RedisTarget = RedisServerTarget | RedisClusterTarget | RedisSentinelTarget;

/** `redis://[user:pass@]host:port[/db]` or `rediss://` for TLS (issue 6). */
export interface RedisServerTarget {
  readonly tls: boolean;
  readonly host: string;
  readonly port: number;
  readonly username: string;
  readonly password: string;
  readonly db: number;
}

export interface RedisAddress {
  readonly host: string;
  readonly port: number;
}

/** `redis-cluster://[user:pass@]host:port[,host:port…]` or `rediss-cluster://` (issue 18): seed nodes of a Redis Cluster. */
export interface RedisClusterTarget {
  readonly kind: 'cluster';
  readonly tls: boolean;
  readonly nodes: readonly RedisAddress[];
  readonly username: string;
  readonly password: string;
}

/**
 * `redis-sentinel://[user:pass@]host:port[,host:port…]/MASTER_NAME[/db]` or `rediss-sentinel://` (issue 18):
 * the Sentinels that know the primary MASTER_NAME. The credentials and TLS are those of the Redis servers.
 */
export interface RedisSentinelTarget {
  readonly kind: 'sentinel';
  readonly tls: boolean;
  readonly sentinels: readonly RedisAddress[];
  readonly masterName: string;
  readonly username: string;
  readonly password: string;
  readonly db: number;
}

const DEFAULT_REDIS_PORT = 6379;
const DEFAULT_SENTINEL_PORT = 26379;
const MAX_DB = 1_000_000;
const MAX_NODES = 64;

/** Parses a Redis URL; returns a sentence saying what is wrong instead of throwing. */
export function parseRedisUrl(text: string): RedisTarget | string {
  const multi = /^(rediss?)-(cluster|sentinel):\/\/(.*)$/s.exec(text);
  if (multi)
    return parseMultiNodeUrl(multi[1] === 'rediss', multi[2] as 'cluster' | 'sentinel', multi[3] ?? '');
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return 'not a URL';
  }
  if (url.protocol !== 'redis:' && url.protocol !== 'rediss:')
    return `scheme ${url.protocol} is not redis:, rediss:, redis-cluster:, rediss-cluster:, redis-sentinel: or rediss-sentinel:`;
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

/** The comma-separated host list (no WHATWG URL can hold one) of redis-cluster:// and redis-sentinel://. */
function parseMultiNodeUrl(tls: boolean, kind: 'cluster' | 'sentinel', rest: string): RedisTarget | string {
  if (/[?#]/.test(rest)) return 'query strings and fragments are not supported';
  const at = rest.lastIndexOf('@', rest.indexOf('/') === -1 ? undefined : rest.indexOf('/'));
  const userInfo = at === -1 ? '' : rest.slice(0, at);
  const afterUser = rest.slice(at + 1);
  const slash = afterUser.indexOf('/');
  const hostList = slash === -1 ? afterUser : afterUser.slice(0, slash);
  const path = slash === -1 ? '' : afterUser.slice(slash + 1);
  let username: string;
  let password: string;
  try {
    const colon = userInfo.indexOf(':');
    username = decodeURIComponent(colon === -1 ? userInfo : userInfo.slice(0, colon));
    password = colon === -1 ? '' : decodeURIComponent(userInfo.slice(colon + 1));
  } catch {
    return 'bad percent-encoding in the user or password';
  }
  if (hostList === '') return 'no host';
  const nodes: RedisAddress[] = [];
  for (const item of hostList.split(',')) {
    const match = /^(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9.-]+))(?::(\d{1,5}))?$/.exec(item);
    if (!match) return `${JSON.stringify(item)} is not host:port`;
    const port =
      match[3] === undefined
        ? kind === 'cluster'
          ? DEFAULT_REDIS_PORT
          : DEFAULT_SENTINEL_PORT
        : Number(match[3]);
    if (port < 1 || port > 65535) return `port ${port} is not from 1 to 65535`;
    nodes.push({ host: (match[1] ?? match[2]) as string, port });
  }
  if (nodes.length > MAX_NODES) return `${nodes.length} hosts; at most ${MAX_NODES}`;
  if (kind === 'cluster') {
    // Redis Cluster has database 0 only.
    if (path !== '') return 'a Redis Cluster has no databases: nothing may follow the host list';
    return { kind, tls, nodes, username, password };
  }
  const [masterName = '', dbText, ...extra] = path.split('/');
  if (!/^[A-Za-z0-9._-]{1,100}$/.test(masterName)) {
    return 'the master name is missing after the hosts (redis-sentinel://host:port[,host:port…]/MASTER_NAME[/db])';
  }
  if (extra.length > 0 || (dbText !== undefined && !/^\d+$/.test(dbText))) {
    return `database ${JSON.stringify(path.slice(masterName.length + 1))} is not a number`;
  }
  const db = dbText === undefined ? 0 : Number(dbText);
  if (db > MAX_DB) return `database ${db} is too large`;
  return { kind, tls, sentinels: nodes, masterName, username, password, db };
}

const formatAddress = ({ host, port }: RedisAddress): string =>
  `${host.includes(':') ? `[${host}]` : host}:${port}`;

/** The URL with the password replaced by "***": safe for logs, --print-config and /readyz. */
export function formatRedisTarget(target: RedisTarget): string {
  const user = encodeURIComponent(target.username);
  const credentials = target.password !== '' ? `${user}:***@` : target.username !== '' ? `${user}@` : '';
  const scheme = target.tls ? 'rediss' : 'redis';
  if (!('kind' in target)) return `${scheme}://${credentials}${formatAddress(target)}/${target.db}`;
  if (target.kind === 'cluster') {
    return `${scheme}-cluster://${credentials}${target.nodes.map(formatAddress).join(',')}`;
  }
  return `${scheme}-sentinel://${credentials}${target.sentinels.map(formatAddress).join(',')}/${target.masterName}/${target.db}`;
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
  const address = z.object({ host: z.string(), port: z.number() });
  const target = z.union([
    z.object({
      tls: z.boolean(),
      host: z.string(),
      port: z.number(),
      username: z.string(),
      password: z.string(),
      db: z.number(),
    }),
    z.object({
      kind: z.literal('cluster'),
      tls: z.boolean(),
      nodes: z.array(address),
      username: z.string(),
      password: z.string(),
    }),
    z.object({
      kind: z.literal('sentinel'),
      tls: z.boolean(),
      sentinels: z.array(address),
      masterName: z.string(),
      username: z.string(),
      password: z.string(),
      db: z.number(),
    }),
  ]);
  return {
    hint: '<url>',
    expected:
      'a redis://[user:password@]host:port[/db] or rediss:// (TLS) URL, redis-cluster://host:port[,host:port…] (rediss-cluster:// for TLS), redis-sentinel://host:port[,host:port…]/MASTER_NAME[/db] (rediss-sentinel://), or empty for a single node without Redis',
    schema: z.preprocess(toTarget, target.optional()) as unknown as z.ZodType<RedisTarget | undefined>,
    format: (value) => (value === undefined ? '' : formatRedisTarget(value)),
  };
}
