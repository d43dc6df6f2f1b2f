import { compileRoomPatterns, isValidRoomPattern, MAX_PATTERNS, type RoomMatcher } from './patterns.js';

/** What a verified token allows (issue 15): who the user is, where it may connect, where it may send. */
export interface Identity {
  /** The token's `sub`. Never a metric label; logged as the connection's user. */
  readonly user: string;
  readonly mayJoin: RoomMatcher;
  readonly mayPublish: RoomMatcher;
  /** The token's `exp` in Unix seconds, or undefined when it has none. */
  readonly expiresAt: number | undefined;
}

/** The longest `sub` accepted: it is held per connection and written to logs. */
const MAX_SUB_LENGTH = 256;

/**
 * Reads the claims wshub acts on from a payload whose signature, `exp`, `nbf`,
 * `iss` and `aud` jose has already checked. Returns a sentence saying what is
 * wrong instead of throwing (the handshake answers 401 invalid_token with it).
 * `rooms` and `publish` are lists of patterns (patterns.ts), or one string of
 * space-separated patterns as OAuth scopes are written; absent means none.
 */
export function identityOf(payload: Readonly<Record<string, unknown>>): Identity | string {
  const sub = payload.sub;
  if (typeof sub !== 'string' || sub === '') return 'the token has no "sub" (user) claim';
  if (sub.length > MAX_SUB_LENGTH) return `"sub" is longer than ${MAX_SUB_LENGTH} characters`;
  const rooms = patternsOf(payload.rooms, 'rooms');
  if (typeof rooms === 'string') return rooms;
  const publish = patternsOf(payload.publish, 'publish');
  if (typeof publish === 'string') return publish;
  return {
    user: sub,
    mayJoin: compileRoomPatterns(rooms),
    mayPublish: compileRoomPatterns(publish),
    expiresAt: typeof payload.exp === 'number' ? payload.exp : undefined,
  };
}

function patternsOf(value: unknown, claim: string): readonly string[] | string {
  if (value === undefined || value === null) return [];
  const list = typeof value === 'string' ? value.split(' ').filter((part) => part !== '') : value;
  if (!Array.isArray(list) || list.some((item) => typeof item !== 'string')) {
    return `"${claim}" must be a list of room patterns`;
  }
  if (list.length > MAX_PATTERNS) return `"${claim}" has more than ${MAX_PATTERNS} patterns`;
  const invalid = (list as string[]).find((pattern) => !isValidRoomPattern(pattern));
  if (invalid !== undefined) {
    return `"${claim}" has a pattern that is not up to 64 of A-Z a-z 0-9 . _ - *`;
  }
  return list as string[];
}
