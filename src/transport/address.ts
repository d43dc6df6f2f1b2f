/**
 * Formats a peer as the seed's logs show it: 192.168.1.100:54321, or [::1]:54321
 * for IPv6. IPv4 clients of a dual-stack listener arrive as ::ffff:a.b.c.d and
 * are printed as plain IPv4.
 */
export function formatPeer(address: string | undefined, port: number | undefined): string {
  if (address === undefined) return 'unknown';
  const plain = address.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address;
  return plain.includes(':') ? `[${plain}]:${port}` : `${plain}:${port}`;
}

/** host:port for a listening address; an empty host (all interfaces) prints as Go does, ":9100". */
export function formatListenAddress(host: string, port: number): string {
  if (host === '') return `:${port}`;
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}
