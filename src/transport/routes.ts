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

export type RouteMatch =
  | { readonly kind: 'websocket'; readonly route: WebSocketRoute }
  | { readonly kind: 'invalid_room' }
  | { readonly kind: 'not_found' };

/** 1 to 64 characters of A-Z a-z 0-9 . _ - : safe in a URL path, a log line and a Redis channel as is. */
export const ROOM_NAME = /^[A-Za-z0-9._-]{1,64}$/;
const ROOM_PREFIX = '/ws/';

export function isValidRoomName(name: string): boolean {
  return ROOM_NAME.test(name) && name !== '.' && name !== '..';
}

const DEFAULT_ROOM: RouteMatch = { kind: 'websocket', route: { room: '' } };
const NOT_FOUND: RouteMatch = { kind: 'not_found' };

/** Matches the WebSocket endpoints: `/ws` (the default room) and `/ws/<room>`. */
export function matchWebSocketPath(path: string): RouteMatch {
  if (path === '/ws' || path === ROOM_PREFIX) return DEFAULT_ROOM;
  if (!path.startsWith(ROOM_PREFIX)) return NOT_FOUND;
  const room = path.slice(ROOM_PREFIX.length);
  return isValidRoomName(room) ? { kind: 'websocket', route: { room } } : { kind: 'invalid_room' };
}
