import { type Level, LOG_FORMATS, LOG_LEVELS, type LogFormat } from '../log.js';
import {
  boolean as bool,
  bytes,
  countOrAuto,
  duration,
  host,
  integer,
  type Kind,
  list,
  oneOf,
  port,
  text,
} from './kinds.js';
import { redisUrl } from './redis-url.js';

/**
 * Every setting is declared exactly once, here: its YAML key, its flag, its kind
 * (which validates it), its default and its documentation. Flags, environment
 * variables (WSHUB_ + the flag in upper snake case), YAML keys, --help, validation
 * and --print-config are all derived from this table.
 */
export interface Setting<T> {
  /** Dotted YAML path. Segments match case-insensitively and ignoring '_' and '-', so certFile, cert_file and cert-file all work. */
  readonly key: string;
  /** Command-line flag without the leading dashes. */
  readonly flag: string;
  readonly kind: Kind<T>;
  readonly default: T;
  readonly doc: string;
  /** Redacted by --print-config. */
  readonly secret?: boolean;
}

function setting<T>(definition: Setting<T>): Setting<T> {
  return definition;
}

function keyFile(expected: string): Kind<string> {
  return { ...text({ allowEmpty: true, expected }), hint: '<path>' };
}

function pemFile(): Kind<string> {
  return { ...text({ allowEmpty: true, expected: 'a path to a PEM file' }), hint: '<path>' };
}

const SECOND = 1000;
const DAY = 24 * 3600 * SECOND;
/** An origin allowlist entry (transport/origin.ts matches them): scheme://host[:port] or scheme://*.domain[:port]. */
const ORIGIN_PATTERN =
  /^[a-z][a-z0-9+.-]*:\/\/(\*\.)?(\[[0-9a-f:.]+\]|[a-z0-9-]+(\.[a-z0-9-]+)*)(:\d{1,5})?$/i;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;
const KiB = 1024;
const MiB = 1024 * 1024;
/** More worker processes than this is a typo, not a machine. */
export const MAX_WORKERS = 256;

export const SETTINGS = {
  host: setting({
    key: 'server.host',
    flag: 'host',
    kind: host(),
    default: '0.0.0.0',
    doc: 'Host address to bind the WebSocket server to',
  }),
  port: setting({
    key: 'server.port',
    flag: 'port',
    kind: port(),
    default: 3003,
    doc: 'Port for the WebSocket server',
  }),
  workers: setting({
    key: 'server.workers',
    flag: 'workers',
    kind: countOrAuto(1, MAX_WORKERS, 'one per CPU this process may use, os.availableParallelism()'),
    default: 1 as number | 'auto',
    doc: 'Worker processes sharing the WebSocket port (node:cluster); 1: a single process, no cluster',
  }),
  mode: setting({
    key: 'server.mode',
    flag: 'mode',
    kind: oneOf(['echo', 'broadcast']),
    default: 'echo' as const,
    doc: "echo: every message goes back to its sender; broadcast: to every client of the sender's room",
  }),
  broadcastExcludeSender: setting({
    key: 'broadcast.excludeSender',
    flag: 'broadcast-exclude-sender',
    kind: bool(),
    default: false,
    doc: 'In broadcast mode, do not send a message back to its sender',
  }),
  tlsEnabled: setting({
    key: 'server.tls.enabled',
    flag: 'tls',
    kind: bool(),
    default: false,
    doc: 'Serve wss:// (TLS) on the WebSocket port; needs --tls-cert-file and --tls-key-file',
  }),
  tlsCertFile: setting({
    key: 'server.tls.certFile',
    flag: 'tls-cert-file',
    kind: pemFile(),
    default: '',
    doc: 'PEM certificate (optionally followed by its chain); reloaded when it changes and on SIGHUP',
  }),
  tlsKeyFile: setting({
    key: 'server.tls.keyFile',
    flag: 'tls-key-file',
    kind: pemFile(),
    default: '',
    doc: 'PEM private key of the certificate (unencrypted); reloaded with the certificate',
  }),
  tlsCaFile: setting({
    key: 'server.tls.caFile',
    flag: 'tls-ca-file',
    kind: pemFile(),
    default: '',
    doc: 'Optional PEM bundle of intermediate/CA certificates sent with the certificate',
  }),
  tlsWatch: setting({
    key: 'server.tls.watch',
    flag: 'tls-watch',
    kind: bool(),
    default: true,
    doc: "Reload the certificate when its files' directories change, e.g. a Kubernetes Secret rotation (SIGHUP always reloads)",
  }),
  backplane: setting({
    key: 'backplane.url',
    flag: 'backplane',
    kind: redisUrl(),
    default: undefined,
    doc: 'Redis that joins several wshub nodes in broadcast mode: redis://[user:pass@]host:port[/db], redis-cluster://host:port[,host:port…] (sharded pub/sub), redis-sentinel://host:port[,…]/MASTER_NAME[/db]; rediss… for TLS; empty: single node',
  }),
  backplaneChannel: setting({
    key: 'backplane.channel',
    flag: 'backplane-channel',
    kind: text({
      // No braces: every room's channel is `<this>:{<room>}`, and Redis Cluster hashes the first {…} it finds.
      pattern: /^[A-Za-z0-9._:/-]{1,200}$/,
      expected: 'a Redis channel prefix of 1 to 200 letters, digits and . _ : / - (no braces)',
    }),
    default: 'wshub',
    doc: 'Prefix of the backplane channels (each room has one: <prefix>:{<room>}); the nodes that share it form one cluster',
  }),
  backplaneRequired: setting({
    key: 'backplane.required',
    flag: 'backplane-required',
    kind: bool(),
    default: false,
    doc: 'Report the node not ready on /readyz while the backplane is disconnected (local delivery works either way)',
  }),
  backplaneMaxPending: setting({
    key: 'backplane.maxPending',
    flag: 'backplane-max-pending',
    kind: bytes(64 * KiB, 1024 * MiB),
    default: 16 * MiB,
    doc: 'Bytes sent to Redis and not yet acknowledged, at most; beyond that messages for other nodes are dropped',
  }),
  backplaneRoomLinger: setting({
    key: 'backplane.roomLinger',
    flag: 'backplane-room-linger',
    kind: duration(0, 10 * 60 * SECOND),
    default: 5 * SECOND,
    doc: "How long a node stays subscribed to a room's channel after its last local client left (0: unsubscribe at once)",
  }),
  backplaneReconnectMax: setting({
    key: 'backplane.reconnectDelayMax',
    flag: 'backplane-reconnect-max',
    kind: duration(10, 60 * SECOND),
    default: 5 * SECOND,
    doc: 'Longest wait between attempts to reconnect to Redis (exponential backoff from 50ms, with jitter)',
  }),
  historySize: setting({
    key: 'history.size',
    flag: 'history-size',
    kind: integer(0, 100_000),
    default: 0,
    doc: 'Messages kept per room for resume (?since=) and the wshub.v1 subprotocol; in Redis Streams with --backplane, else in memory; 0: no history',
  }),
  historyTtl: setting({
    key: 'history.ttl',
    flag: 'history-ttl',
    kind: duration(SECOND, 30 * DAY),
    default: HOUR,
    doc: "A room's history is forgotten this long after its last message (its epoch then changes)",
  }),
  http2: setting({
    key: 'server.http2',
    flag: 'http2',
    kind: bool(),
    default: false,
    doc: 'WebSockets over HTTP/2 (RFC 8441) on the WebSocket port too: h2c with prior knowledge, or h2 by ALPN with TLS (see README)',
  }),
  http2MaxStreams: setting({
    key: 'server.http2MaxStreams',
    flag: 'http2-max-streams',
    kind: integer(1, 10_000, 'an integer from 1 to 10000'),
    default: 128,
    doc: 'With --http2: concurrent streams (WebSockets and requests) one HTTP/2 connection may open (SETTINGS_MAX_CONCURRENT_STREAMS)',
  }),
  shutdownTimeout: setting({
    key: 'server.shutdownTimeout',
    flag: 'shutdown-timeout',
    kind: duration(0, 10 * 60 * SECOND),
    default: 5 * SECOND,
    doc: 'Deadline for graceful shutdown after the last close frame (after --drain-delay and --drain-window); connections still open then are terminated',
  }),
  drainDelay: setting({
    key: 'server.drainDelay',
    flag: 'drain-delay',
    kind: duration(0, 10 * 60 * SECOND),
    default: 0,
    doc: 'On SIGTERM /readyz turns 503 at once, but new connections are still accepted for this long, so load balancers take the instance out first (0: refuse at once)',
  }),
  drainWindow: setting({
    key: 'server.drainWindow',
    flag: 'drain-window',
    kind: duration(0, 60 * MINUTE),
    default: 0,
    doc: 'After --drain-delay, close open connections (1001) spread evenly over this long with jitter, so clients do not all reconnect at once (0: all at once)',
  }),
  maxMessageSize: setting({
    key: 'limits.maxMessageSize',
    flag: 'max-message-size',
    kind: bytes(1, 256 * MiB),
    default: MiB,
    doc: 'Largest message accepted from a client; larger ones close the connection with 1009',
  }),
  maxBufferedBytes: setting({
    key: 'limits.maxBufferedBytes',
    flag: 'max-buffered-bytes',
    kind: bytes(1024, 1024 * MiB),
    default: MiB,
    doc: 'Outbound bytes a client may have waiting; a client that falls further behind is closed with 1008',
  }),
  // Fragment and chunk limits: ws buffers a message's fragments and a frame's network reads as
  // arrays of Buffers, each costing ~1 KiB of RSS when it arrived in its own read (measured), so
  // their counts need bounds besides the byte limit. 'auto' scales them with --max-message-size so
  // a legitimate message up to that size in 512-byte pieces always passes (issue 4).
  maxFragments: setting({
    key: 'limits.maxFragments',
    flag: 'max-fragments',
    kind: countOrAuto(1, 10_000_000, 'one per 512 bytes of --max-message-size, at least 1024'),
    default: 'auto' as number | 'auto',
    doc: 'Most frames one message may be split into; more close the connection with 1008',
  }),
  maxBufferedChunks: setting({
    key: 'limits.maxBufferedChunks',
    flag: 'max-buffered-chunks',
    kind: countOrAuto(1, 10_000_000, 'one per 512 bytes of --max-message-size, at least 1024'),
    default: 'auto' as number | 'auto',
    doc: 'Most network reads held while waiting for the rest of a frame; more close the connection with 1008',
  }),
  compression: setting({
    key: 'compression.enabled',
    flag: 'compression',
    kind: bool(),
    default: false,
    doc: 'Offer permessage-deflate (RFC 7692) to clients that ask for it; costs ~100 KiB per compressing connection',
  }),
  compressionLevel: setting({
    key: 'compression.level',
    flag: 'compression-level',
    kind: integer(1, 9, 'an integer from 1 (fastest) to 9 (smallest)'),
    default: 1,
    doc: 'zlib level for compressed messages: 1 is fastest (as gorilla/websocket), 9 smallest',
  }),
  compressionThreshold: setting({
    key: 'compression.threshold',
    flag: 'compression-threshold',
    kind: bytes(0, 256 * MiB),
    default: 1024,
    doc: 'Messages smaller than this are sent uncompressed even when compression was negotiated',
  }),
  maxConnections: setting({
    key: 'limits.maxConnections',
    flag: 'max-connections',
    kind: integer(0, 10_000_000, 'an integer from 0 (unlimited) to 10000000'),
    default: 0,
    doc: 'Open WebSocket connections allowed in total; more get 503 with Retry-After (0: unlimited)',
  }),
  maxConnectionsPerIp: setting({
    key: 'limits.maxConnectionsPerIp',
    flag: 'max-connections-per-ip',
    kind: integer(0, 10_000_000, 'an integer from 0 (unlimited) to 10000000'),
    default: 0,
    doc: 'Open WebSocket connections allowed from one client address; more get 503 with Retry-After (0: unlimited)',
  }),
  allowedOrigins: setting({
    key: 'server.allowedOrigins',
    flag: 'allowed-origins',
    kind: list({
      pattern: ORIGIN_PATTERN,
      expected:
        'a comma-separated list (or a YAML list) of origins scheme://host[:port], no path, such as https://app.example.com or https://*.example.com',
    }),
    default: [] as readonly string[],
    doc: 'Browser origins allowed to connect (exact, or https://*.example.com for subdomains); others get 403 (empty: all)',
  }),
  trustProxyHops: setting({
    key: 'server.trustProxyHops',
    flag: 'trust-proxy-hops',
    kind: integer(0, 10, 'an integer from 0 (trust no proxy) to 10'),
    default: 0,
    doc: 'Proxies in front of wshub whose X-Forwarded-For entries identify the client for per-IP limits (0: use the TCP peer)',
  }),
  pingInterval: setting({
    key: 'keepalive.pingInterval',
    flag: 'ping-interval',
    kind: duration(0, HOUR),
    default: 25 * SECOND,
    doc: 'How often the server pings each client; keep it below proxy idle timeouts (0: no pings)',
  }),
  pingTimeout: setting({
    key: 'keepalive.pingTimeout',
    flag: 'ping-timeout',
    kind: duration(10, HOUR),
    default: 20 * SECOND,
    doc: 'A client that has not answered a ping by then is terminated',
  }),
  idleTimeout: setting({
    key: 'limits.idleTimeout',
    flag: 'idle-timeout',
    kind: duration(0, 30 * DAY),
    default: 0,
    doc: 'Close (1000) a client that sent no message for this long; pongs do not count (0: never)',
  }),
  maxConnectionLifetime: setting({
    key: 'limits.maxConnectionLifetime',
    flag: 'max-connection-lifetime',
    kind: duration(0, 30 * DAY),
    default: 0,
    doc: 'Close (1001) each connection after this long, ±10% jitter, so clients rebalance after scale-out (0: never)',
  }),
  maxHeaderSize: setting({
    key: 'limits.maxHeaderSize',
    flag: 'max-header-size',
    kind: bytes(1 * KiB, 1 * MiB),
    default: 16 * KiB,
    doc: 'Largest HTTP request head on the WebSocket port; larger ones get 431',
  }),
  handshakeTimeout: setting({
    key: 'limits.handshakeTimeout',
    flag: 'handshake-timeout',
    kind: duration(100, 10 * MINUTE),
    default: 10 * SECOND,
    doc: 'A connection that has not sent a complete upgrade request by then gets 408 and is closed',
  }),
  metricsEnabled: setting({
    key: 'metrics.enabled',
    flag: 'metrics',
    kind: bool(),
    default: true,
    doc: 'Serve Prometheus metrics and health checks on their own port (--no-metrics to disable)',
  }),
  metricsHost: setting({
    key: 'metrics.host',
    flag: 'metrics-host',
    kind: host(true),
    default: '',
    doc: 'Host address to bind the metrics server to (empty: all interfaces)',
  }),
  metricsPort: setting({
    key: 'metrics.port',
    flag: 'metrics-port',
    kind: port(),
    default: 9100,
    doc: 'Port for the Prometheus metrics endpoint, /livez and /readyz',
  }),
  statsInterval: setting({
    key: 'log.statsInterval',
    flag: 'stats-interval',
    kind: duration(0, DAY),
    default: 30 * SECOND,
    doc: 'How often to log "Active connections: N" (0 disables)',
  }),
  consoleEnabled: setting({
    key: 'console.enabled',
    flag: 'console',
    kind: bool(),
    default: true,
    doc: 'Serve the browser console at GET / and the connection count at GET /stats on the WebSocket port (--no-console to disable)',
  }),
  publishToken: setting({
    key: 'publish.token',
    flag: 'publish-token',
    kind: text({
      allowEmpty: true,
      pattern: /^$|^[\x21-\x7e]{16,512}$/,
      expected: 'empty (publish API off) or 16 to 512 printable ASCII characters without spaces',
    }),
    default: '',
    doc: 'Enables POST /publish on the WebSocket port (broadcast mode); callers send Authorization: Bearer <token>',
    secret: true,
  }),
  publishRate: setting({
    key: 'publish.rate',
    flag: 'publish-rate',
    kind: integer(1, 1_000_000),
    default: 100,
    doc: 'Publish requests per second allowed (token bucket, bursts up to the same number); more get 429',
  }),
  auth: setting({
    key: 'auth.mode',
    flag: 'auth',
    kind: oneOf(['none', 'jwt']),
    default: 'none' as 'none' | 'jwt',
    doc: 'none: anyone who reaches the port may connect; jwt: every upgrade needs a JWT (Authorization: Bearer or ?access_token=) verified with a key source below',
  }),
  authJwtSecretFile: setting({
    key: 'auth.jwt.secretFile',
    flag: 'auth-jwt-secret-file',
    kind: keyFile('a path to a file holding an HMAC secret of at least 32 bytes'),
    default: '',
    doc: 'HMAC secret for HS256/384/512 tokens; reloaded when it changes and on SIGHUP',
  }),
  authJwksFile: setting({
    key: 'auth.jwt.jwksFile',
    flag: 'auth-jwks-file',
    kind: keyFile('a path to a JWKS file ({"keys": [...]})'),
    default: '',
    doc: 'Public keys (RSA, EC, OKP) by kid for RS*/PS*/ES*/EdDSA tokens; reloaded when it changes and on SIGHUP',
  }),
  authJwksUrl: setting({
    key: 'auth.jwt.jwksUrl',
    flag: 'auth-jwks-url',
    kind: {
      ...text({
        allowEmpty: true,
        pattern: /^$|^https?:\/\/[^\s/?#]+[^\s]*$/,
        expected: "an http:// or https:// URL of an identity provider's JWKS",
      }),
      hint: '<url>',
    },
    default: '',
    doc: "An identity provider's JWKS: cached 10m, refetched on an unknown kid (at most every 30s), last good keys kept while unreachable",
  }),
  authJwtIssuer: setting({
    key: 'auth.jwt.issuer',
    flag: 'auth-jwt-issuer',
    kind: text({ allowEmpty: true }),
    default: '',
    doc: 'Required "iss" of every token (empty: not checked)',
  }),
  authJwtAudience: setting({
    key: 'auth.jwt.audience',
    flag: 'auth-jwt-audience',
    kind: text({ allowEmpty: true }),
    default: '',
    doc: 'Required "aud" of every token (empty: not checked)',
  }),
  maxConnectionsPerUser: setting({
    key: 'limits.maxConnectionsPerUser',
    flag: 'max-connections-per-user',
    kind: integer(0, 10_000_000, 'an integer from 0 (unlimited) to 10000000'),
    default: 0,
    doc: 'Open connections allowed per token "sub" (--auth=jwt); more get 429 with Retry-After (0: unlimited)',
  }),
  clientPublish: setting({
    key: 'limits.clientPublish',
    flag: 'client-publish',
    kind: bool(),
    default: true,
    doc: 'Let clients send messages; --client-publish=false (or --no-client-publish) makes every client receive-only (a message closes it with 1008; POST /publish still delivers)',
  }),
  maxMessagesPerSecond: setting({
    key: 'limits.maxMessagesPerSecond',
    flag: 'max-messages-per-second',
    kind: integer(0, 1_000_000, 'an integer from 0 (unlimited) to 1000000'),
    default: 0,
    doc: 'Messages a client may send per second (token bucket, bursts of the same number); faster clients are closed with 1008 (0: unlimited)',
  }),
  allowFaultInjection: setting({
    key: 'faultInjection.enabled',
    flag: 'allow-fault-injection',
    kind: bool(),
    default: false,
    doc: 'Let clients ask for faults in the /ws query string: ?delay=200ms, ?close=4000&reason=bye, ?drop, ?hello, ?status=503, ?close-after=3, ?close-in=2s, ?ignore-pings (see README); off: the query is ignored',
  }),
  logFormat: setting<LogFormat>({
    key: 'log.format',
    flag: 'log-format',
    kind: oneOf(LOG_FORMATS),
    default: 'text',
    doc: 'Log line format: text (YYYY/MM/DD HH:MM:SS message) or json (one object per line with time, level, msg and fields)',
  }),
  logLevel: setting<Level>({
    key: 'log.level',
    flag: 'log-level',
    kind: oneOf(LOG_LEVELS),
    default: 'info',
    doc: 'Lowest level logged: info (every connect/disconnect), warn, or error',
  }),
} as const;

export type SettingName = keyof typeof SETTINGS;
type ValueOf<S> = S extends Setting<infer T> ? T : never;
export type Config = { readonly [K in SettingName]: ValueOf<(typeof SETTINGS)[K]> };

export function envName(setting: Setting<unknown>): string {
  return `WSHUB_${setting.flag.toUpperCase().replace(/-/g, '_')}`;
}

/** Settings that are not part of Config: they say where the configuration comes from or what to do with it. */
export const META_FLAGS = {
  configFile: {
    flag: 'config-file',
    hint: '<path>',
    doc: 'Load settings from this YAML file',
    env: 'WSHUB_CONFIG_FILE',
  },
} as const;
