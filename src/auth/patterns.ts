/**
 * Room patterns of a token's `rooms` and `publish` claims (issue 15). A pattern
 * is a room name in which `*` stands for any run of room-name characters,
 * including none: `chat.*` covers `chat.en` and `chat.`, `*` covers every room.
 * The default room (`/ws`) is the room named by the empty string: the pattern
 * `""` names it alone, and `*` covers it too; no other pattern does.
 */

/** Room-name characters (transport/routes.ts ROOM_NAME) plus `*`, at most 64 of them; or empty. */
const PATTERN = /^[A-Za-z0-9._*-]{0,64}$/;
/** More patterns than this in one claim is a mistake, not a permission set (and bounds the work per handshake). */
export const MAX_PATTERNS = 256;

/** Which rooms a claim covers; called once per connection (its room is fixed), never per message. */
export type RoomMatcher = (room: string) => boolean;

const NONE: RoomMatcher = () => false;
const EVERY: RoomMatcher = () => true;

export function isValidRoomPattern(pattern: string): boolean {
  return PATTERN.test(pattern);
}

/** Compiles patterns (already validated) into one matcher: exact names in a Set, wildcards in one RegExp. */
export function compileRoomPatterns(patterns: readonly string[]): RoomMatcher {
  if (patterns.length === 0) return NONE;
  if (patterns.includes('*')) return EVERY;
  const exact = new Set<string>();
  const wildcards: string[] = [];
  for (const pattern of patterns) {
    if (pattern.includes('*')) {
      wildcards.push(pattern.replace(/[.*-]/g, (char) => (char === '*' ? '[A-Za-z0-9._-]*' : `\\${char}`)));
    } else {
      exact.add(pattern);
    }
  }
  if (wildcards.length === 0) return (room) => exact.has(room);
  // A wildcard never matches the default room unless it is '*' itself (handled above).
  const wildcard = new RegExp(`^(?:${wildcards.join('|')})$`);
  return (room) => exact.has(room) || (room !== '' && wildcard.test(room));
}

/** A room as refusals name it: the default room has the empty name. */
export function describeRoom(room: string): string {
  return room === '' ? 'the default room' : `room ${room}`;
}
