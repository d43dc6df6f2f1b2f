/**
 * Where a room lives in Redis (issues 16 and 18, one naming for both): every
 * key and channel of a room carries the room's tag as its Redis Cluster hash
 * tag, so the room's channel, history stream and meta key share one slot —
 * `CLUSTER KEYSLOT <tag>` — and one shard.
 *
 *   room channel     `${base}:{${tag}}`
 *   history stream   `${base}:{${tag}}:history`
 *   room meta        `${base}:{${tag}}:meta`
 *
 * The tag is the room name (room names match /^[A-Za-z0-9._-]{1,64}$/, no
 * braces), or `~` for the default room '' (an empty hash tag `{}` would not
 * be a hash tag at all: Redis would hash the whole name). `base` is
 * --backplane-channel, which may not contain braces for the same reason.
 */

/** The default room's tag: a character no room name may contain. */
export const DEFAULT_ROOM_TAG = '~';

export function roomTag(room: string): string {
  return room === '' ? DEFAULT_ROOM_TAG : room;
}

/** The pub/sub channel (sharded in Redis Cluster) of one room. */
export function roomChannel(base: string, room: string): string {
  return `${base}:{${roomTag(room)}}`;
}

/** The Redis Stream holding a room's history. */
export function roomHistoryKey(base: string, room: string): string {
  return `${roomChannel(base, room)}:history`;
}

/** The hash holding a room's metadata. */
export function roomMetaKey(base: string, room: string): string {
  return `${roomChannel(base, room)}:meta`;
}
