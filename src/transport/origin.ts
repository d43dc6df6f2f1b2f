/**
 * The origin allowlist (--allowed-origins). An entry is an exact origin,
 * scheme://host[:port], or a wildcard scheme://*.domain[:port] that matches any
 * subdomain of `domain` (at any depth) but not `domain` itself. Matching ignores
 * case and a default port (:80 for http/ws, :443 for https/wss), since browsers
 * send the Origin header without one (RFC 6454 §6.2). Entries are validated by
 * the allowedOrigins setting (config/settings.ts).
 */

/** What a wildcard's `*` may stand for: one or more DNS labels. */
const SUBDOMAIN = /^[a-z0-9-]+(\.[a-z0-9-]+)*$/;

const DEFAULT_PORTS: Readonly<Record<string, string>> = { http: '80', ws: '80', https: '443', wss: '443' };

function normalize(origin: string): string {
  const lower = origin.trim().toLowerCase();
  const match = /^([a-z][a-z0-9+.-]*):\/\/(.*?)(?::(\d+))?$/.exec(lower);
  if (!match) return lower;
  const [, scheme, host, port] = match as unknown as [string, string, string, string | undefined];
  return port === undefined || DEFAULT_PORTS[scheme] === port
    ? `${scheme}://${host}`
    : `${scheme}://${host}:${port}`;
}

export class OriginAllowlist {
  private readonly exact = new Set<string>();
  /** [scheme://, .domain[:port]] pairs of wildcard entries. */
  private readonly wildcards: Array<readonly [string, string]> = [];

  constructor(entries: readonly string[]) {
    for (const entry of entries) {
      const origin = normalize(entry);
      const star = origin.indexOf('://*.');
      if (star === -1) this.exact.add(origin);
      else this.wildcards.push([origin.slice(0, star + 3), origin.slice(star + 4)]);
    }
  }

  /** An empty allowlist allows every origin. */
  get allowsAll(): boolean {
    return this.exact.size === 0 && this.wildcards.length === 0;
  }

  allows(origin: string): boolean {
    if (this.allowsAll) return true;
    const normalized = normalize(origin);
    if (this.exact.has(normalized)) return true;
    for (const [scheme, suffix] of this.wildcards) {
      if (
        normalized.startsWith(scheme) &&
        normalized.endsWith(suffix) &&
        SUBDOMAIN.test(normalized.slice(scheme.length, normalized.length - suffix.length))
      ) {
        return true;
      }
    }
    return false;
  }
}
