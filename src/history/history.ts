import { randomBytes } from 'node:crypto';

/**
 * Room history and positions (issue 16). Every message of a room with history
 * has a position EPOCH:OFFSET, the same on every node: offsets increase by one
 * per message of the room, and the epoch names one unbroken history (it
 * changes when the history is lost: Redis restarted empty, the TTL passed, a
 * single node restarted). Nothing here imports the hub or the backplane.
 */

/** The subprotocol that carries positions (Sec-WebSocket-Protocol, RFC 6455 §1.9). */
export const SUBPROTOCOL_V1 = 'wshub.v1';

export interface Position {
  readonly epoch: string;
  readonly offset: number;
}

/** One stored message. `v1` caches its wshub.v1 frame (hub-owned; built once, shared by every receiver). */
export interface HistoryEntry {
  readonly offset: number;
  readonly data: Buffer;
  readonly isBinary: boolean;
  /** The node that published it (with the backplane), to tell this node's own messages apart. */
  readonly node?: Buffer;
  /** Its sequence number on that node (per node and room, from the envelope): with `node`, the message's id. */
  readonly sequence?: number;
  v1?: unknown;
}

/**
 * What a read found: the room's current position and, when the reader asked
 * about its own epoch, the stored messages after the asked offset, oldest
 * first (possibly starting later than asked: trimmed by size or TTL, or a hole
 * left by a message the publishing node had to drop). `messages` is undefined
 * when the asked epoch is not the current one.
 */
export interface HistoryRead {
  readonly epoch: string;
  readonly offset: number;
  readonly messages: readonly HistoryEntry[] | undefined;
}

export interface HistoryReader {
  /**
   * The current position of `room` (creating its epoch when it has none yet)
   * and, when `epoch` is the current one, the messages after `after`.
   * Rejects when the store is unreachable; the caller retries.
   */
  read(room: string, epoch: string | undefined, after: number): Promise<HistoryRead>;
}

/** A new epoch: 12 random hex digits, unique for practical purposes across restarts and nodes. */
export function newEpoch(): string {
  return randomBytes(6).toString('hex');
}

const SINCE = /^([A-Za-z0-9_-]{1,64}):(\d{1,15})$/;

/** Parses `EPOCH:OFFSET` (the `?since=` of a resume); undefined when malformed. */
export function parsePosition(text: string): Position | undefined {
  const match = SINCE.exec(text);
  if (match === null) return undefined;
  return { epoch: match[1] as string, offset: Number(match[2]) };
}

export function formatPosition(position: Position): string {
  return `${position.epoch}:${position.offset}`;
}

/**
 * A message's id with the backplane: the publishing node and its sequence number there,
 * `<16 hex digits>.<decimal>`. A `pending` frame and the `message` frame that later gives the
 * same message its position carry the same id.
 */
export function messageId(node: Buffer, sequence: number): string {
  return `${node.toString('hex')}.${sequence}`;
}

function payloadField(data: Buffer, isBinary: boolean): string {
  return isBinary
    ? `"data_b64":"${data.toString('base64')}"`
    : `"data":${JSON.stringify(data.toString('utf8'))}`;
}

/**
 * The wshub.v1 frame of one message (JSON text): the payload as a JSON string
 * when the message is text, base64 in `data_b64` when it is binary; with the
 * backplane also its `id` (see pendingFrame).
 */
export function messageFrame(room: string, epoch: string, entry: HistoryEntry): Buffer {
  const id =
    entry.node !== undefined && entry.sequence !== undefined
      ? `"id":"${messageId(entry.node, entry.sequence)}",`
      : '';
  return Buffer.from(
    `{"type":"message","room":${JSON.stringify(room)},"epoch":"${epoch}","offset":${entry.offset},${id}${payloadField(entry.data, entry.isBinary)}}`,
  );
}

/**
 * A message published on this node that Redis has not given a position yet (Redis unreachable or
 * frozen, issue 16): delivered to this node's wshub.v1 clients at once, without a position. Its
 * `message` frame (same `id`, with the position) follows once Redis has stored it.
 */
export function pendingFrame(room: string, id: string, data: Buffer, isBinary: boolean): Buffer {
  return Buffer.from(
    `{"type":"pending","room":${JSON.stringify(room)},"id":"${id}",${payloadField(data, isBinary)}}`,
  );
}

/** The first frame of every wshub.v1 connection: the position the frames that follow continue from. */
export function welcomeFrame(room: string, position: Position): Buffer {
  return Buffer.from(
    `{"type":"welcome","room":${JSON.stringify(room)},"epoch":"${position.epoch}","offset":${position.offset}}`,
  );
}

/** The asked position cannot be served (or history was lost): what follows continues from `position`. */
export function resetFrame(room: string, position: Position): Buffer {
  return Buffer.from(
    `{"type":"reset","room":${JSON.stringify(room)},"epoch":"${position.epoch}","offset":${position.offset}}`,
  );
}

/**
 * Sent right before the server closes a wshub.v1 client with 1001 (issue 17: drains without
 * reconnect storms): this node is going away (`reason` "shutdown") or the connection reached
 * --max-connection-lifetime ("max_lifetime"). Reconnect (the load balancer picks the node) and
 * resume from your last position, after a uniform random delay below `within_ms` (jitter; the
 * server spreads its closes, so together the reconnections arrive at the rate the closes left).
 * `reason` is one of a bounded list (stats.ts RECONNECT_REASONS), never a client's value.
 */
export function reconnectFrame(room: string, reason: string, withinMs: number): Buffer {
  return Buffer.from(
    `{"type":"reconnect","room":${JSON.stringify(room)},"reason":"${reason}","within_ms":${Math.round(withinMs)}}`,
  );
}
