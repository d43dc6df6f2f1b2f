/** The request path without its query string. */
export function pathOf(url: string | undefined): string {
  if (url === undefined) return '/';
  const query = url.indexOf('?');
  return query === -1 ? url : url.slice(0, query);
}

export interface WebSocketRoute {
  /** '' for the default room at /ws. */
  readonly room: string;
}

/** Matches the WebSocket endpoint, `/ws`. */
export function matchWebSocketPath(path: string): WebSocketRoute | undefined {
  if (path === '/ws' || path === '/ws/') return { room: '' };
  return undefined;
}
