import { isIP } from 'node:net';

/**
 * Formats a peer as the seed's logs show it: 192.168.1.100:54321, or [::1]:54321
 * for IPv6. IPv4 clients of a dual-stack listener arrive as ::ffff:a.b.c.d and
 * are printed as plain IPv4.
 */
export function formatPeer(address: string | undefined, port: number | undefined): string {
  if (address === undefined) return 'unknown';
  const plain = plainAddress(address);
  return plain.includes(':') ? `[${plain}]:${port}` : `${plain}:${port}`;
}

/** host:port for a listening address; an empty host (all interfaces) prints as Go does, ":9100". */
export function formatListenAddress(host: string, port: number): string {
  if (host === '') return `:${port}`;
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/** An IPv4 client of a dual-stack listener (::ffff:a.b.c.d) as plain IPv4. */
export function plainAddress(address: string): string {
  return address.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address;
}

/**
 * The client address that connection limits count by. With `trustedHops` 0 it is
 * the TCP peer. Behind N trusted proxies it is the address the Nth proxy saw: the
 * Nth entry from the right of X-Forwarded-For, each proxy having appended its peer
 * (as Express's numeric "trust proxy" does). Entries further left were written by
 * the client and are never trusted. A missing or malformed entry falls back to
 * the nearest trusted address, so a spoofed header cannot mint new keys.
 */
export function clientAddressOf(
  socketAddress: string | undefined,
  forwardedFor: string | string[] | undefined,
  trustedHops: number,
): string {
  let address = plainAddress(socketAddress ?? 'unknown');
  if (trustedHops === 0 || forwardedFor === undefined) return address;
  const hops = (Array.isArray(forwardedFor) ? forwardedFor.join(',') : forwardedFor).split(',');
  for (let hop = 0; hop < trustedHops && hop < hops.length; hop++) {
    const candidate = (hops[hops.length - 1 - hop] as string).trim();
    if (isIP(candidate) === 0) break;
    address = plainAddress(candidate);
  }
  return address;
}

/**
 * The key connection limits count an address under: an IPv4 address as is, an
 * IPv6 address by its /64 prefix, because one IPv6 host usually owns a whole /64
 * and could otherwise open the per-address limit once per address it picks.
 */
export function limitKey(address: string): string {
  // Every IPv6 address has a colon; an IPv4 address (the usual case, once per handshake) needs no parsing.
  if (!address.includes(':') || isIP(address) !== 6) return address;
  const [head = '', tail] = address.split('%')[0]?.split('::') ?? [];
  const groups = (part: string | undefined): string[] =>
    part === undefined || part === ''
      ? []
      : part.split(':').flatMap((group) => (group.includes('.') ? ['0', '0'] : [group]));
  const first = groups(head);
  const last = groups(tail);
  const hextets =
    tail === undefined
      ? first
      : [...first, ...Array(Math.max(0, 8 - first.length - last.length)).fill('0'), ...last];
  return `${hextets
    .slice(0, 4)
    .map((group) => Number.parseInt(group, 16).toString(16))
    .join(':')}::/64`;
}
