import type { Cluster, Redis } from 'ioredis';
import { type HistoryEntry, type HistoryRead, type HistoryReader, newEpoch } from './history.js';

/**
 * Room history in Redis (issue 16): one Stream per room (entry id `0-OFFSET`,
 * XADD MAXLEN --history-size) and one hash per room holding its epoch, its
 * last offset, the payload bytes its stream holds (for the metrics) and, per
 * publishing node, the last sequence number it stored.
 * Both keys expire --history-ttl after the room's last message (PEXPIRE on
 * every publish); an absent hash means the history was lost (Redis restarted
 * empty, the TTL passed) and the next publish or read starts a new epoch.
 *
 * Positions are assigned by Redis, so they are the same on every node: one Lua
 * script per message creates the epoch when absent, drops a message it has
 * already stored (a node resending after a lost reply: its sequence number is
 * not above the last one stored), refuses one that would overtake the node's
 * earlier message of the room not stored yet (`after`: the outbox sends both
 * again, in order), increments the offset, XADDs, refreshes the
 * TTL and PUBLISHes the positioned envelope — atomically, so the order of the
 * stream, of the offsets and of the pub/sub messages is one order. Keys follow
 * backplane/room-keys.ts (one hash tag per room), so the scripts run on a
 * Redis Cluster too (the channel and the publish command, SPUBLISH there, are
 * arguments).
 */

/** The ioredis client the scripts run on: a plain connection or a Cluster. */
export type RedisClient = Redis | Cluster;

/** First byte of a positioned envelope: `0x02, epoch length, epoch, offset length, offset (decimal), envelope v1`. */
export const POSITIONED_MARK = 2;

const PUBLISH_SCRIPT = `
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then
  epoch = ARGV[1]
  redis.call('HSET', KEYS[1], 'epoch', epoch, 'offset', 0)
end
local seen = tonumber(redis.call('HGET', KEYS[1], ARGV[2]) or '0')
if tonumber(ARGV[3]) <= seen then
  return {epoch, 0}
end
if tonumber(ARGV[11]) > seen then
  return {epoch, -1}
end
redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
local offset = redis.call('HINCRBY', KEYS[1], 'offset', 1 + tonumber(ARGV[4]))
local o = string.format('%d', offset)
local header = tonumber(ARGV[10])
local bytes = #ARGV[9] - header
local kept = redis.call('XLEN', KEYS[2])
local maxlen = tonumber(ARGV[5])
if kept >= maxlen then
  for _, trimmed in ipairs(redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', kept - maxlen + 1)) do
    bytes = bytes - (#trimmed[2][2] - header)
  end
end
redis.call('HINCRBY', KEYS[1], 'bytes', bytes)
redis.call('XADD', KEYS[2], 'MAXLEN', ARGV[5], '0-' .. o, 'e', ARGV[9])
redis.call('PEXPIRE', KEYS[1], ARGV[6])
redis.call('PEXPIRE', KEYS[2], ARGV[6])
redis.call(ARGV[8], ARGV[7], string.char(2, #epoch) .. epoch .. string.char(#o) .. o .. ARGV[9])
return {epoch, offset}
`;

/** Messages and payload bytes held in one room's history (0, 0 when it has none). */
const SIZE_SCRIPT = `
return {redis.call('XLEN', KEYS[2]), tonumber(redis.call('HGET', KEYS[1], 'bytes') or '0')}
`;

const READ_SCRIPT = `
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then
  epoch = ARGV[1]
  redis.call('HSET', KEYS[1], 'epoch', epoch, 'offset', 0)
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
end
local offset = tonumber(redis.call('HGET', KEYS[1], 'offset'))
if ARGV[2] ~= epoch then
  return {epoch, offset}
end
local after = tonumber(ARGV[3])
if after >= offset then
  return {epoch, offset, {}}
end
return {epoch, offset, redis.call('XRANGE', KEYS[2], '0-' .. string.format('%d', after + 1), '+', 'COUNT', ARGV[5])}
`;

interface ScriptCommands {
  wshubPublish(...args: Array<string | Buffer | number>): Promise<[string, number]>;
  wshubReadBuffer(...args: Array<string | Buffer | number>): Promise<[Buffer, number, ...unknown[]]>;
  wshubSize(meta: string, history: string): Promise<[number, number]>;
}

export interface RedisHistoryOptions {
  readonly client: RedisClient;
  /** Keys of a room (backplane/room-keys.ts). */
  readonly metaKey: (room: string) => string;
  readonly historyKey: (room: string) => string;
  /** --history-size */
  readonly maxLength: number;
  /** --history-ttl */
  readonly ttlMs: number;
  /** Reads the envelope stored with an entry (backplane/envelope.ts decodes it). */
  readonly decode: (
    envelope: Buffer,
  ) => { data: Buffer; isBinary: boolean; node: Buffer; sequence: number } | undefined;
}

export interface PublishRequest {
  readonly room: string;
  readonly channel: string;
  /** PUBLISH, or SPUBLISH on a Redis Cluster. */
  readonly command: 'PUBLISH' | 'SPUBLISH';
  /** Hex node id: the script keeps the last sequence stored per node. */
  readonly node: string;
  readonly sequence: number;
  /** Messages of this room the node had to drop before this one: the offset skips them (a hole). */
  readonly lost: number;
  /** The node's earlier message of this room that must be stored first (0: none); see OutboxMessage.after. */
  readonly after: number;
  readonly envelope: Buffer;
  /** The message's own bytes in `envelope` (the rest is the header, the same for every message of the room). */
  readonly payloadBytes: number;
}

export class RedisHistory implements HistoryReader {
  private readonly commands: ScriptCommands;

  constructor(private readonly options: RedisHistoryOptions) {
    const { client } = options;
    client.defineCommand('wshubPublish', { numberOfKeys: 2, lua: PUBLISH_SCRIPT });
    client.defineCommand('wshubRead', { numberOfKeys: 2, lua: READ_SCRIPT });
    client.defineCommand('wshubSize', { numberOfKeys: 2, lua: SIZE_SCRIPT });
    this.commands = client as unknown as ScriptCommands;
  }

  /** Stores and publishes one message; resolves with its offset (0: Redis had it already). */
  async publish(request: PublishRequest): Promise<number> {
    const { room } = request;
    const [, offset] = await this.commands.wshubPublish(
      this.options.metaKey(room),
      this.options.historyKey(room),
      newEpoch(),
      `s:${request.node}`,
      request.sequence,
      request.lost,
      this.options.maxLength,
      this.options.ttlMs,
      request.channel,
      request.command,
      request.envelope,
      request.envelope.length - request.payloadBytes,
      request.after,
    );
    if (offset < 0) {
      // Not an answer of Redis refusing the message (a ReplyError, dropped): the outbox sends it again, in order.
      throw new Error(`an earlier message of room ${request.room} from this node is not stored yet`);
    }
    return offset;
  }

  /**
   * Messages and payload bytes held in the histories of `rooms` (the metrics read it at scrape
   * time: one short script per room, all sent at once). Rejects when Redis is unreachable.
   */
  async size(rooms: Iterable<string>): Promise<{ entries: number; bytes: number }> {
    const replies: Array<Promise<[number, number]>> = [];
    for (const room of rooms) {
      replies.push(this.commands.wshubSize(this.options.metaKey(room), this.options.historyKey(room)));
    }
    let entries = 0;
    let bytes = 0;
    for (const [count, size] of await Promise.all(replies)) {
      entries += count;
      bytes += size;
    }
    return { entries, bytes };
  }

  async read(room: string, epoch: string | undefined, after: number): Promise<HistoryRead> {
    const reply = await this.commands.wshubReadBuffer(
      this.options.metaKey(room),
      this.options.historyKey(room),
      newEpoch(),
      epoch ?? '',
      after,
      this.options.ttlMs,
      this.options.maxLength,
    );
    const current = reply[0].toString('latin1');
    const offset = reply[1];
    const raw = reply[2] as Array<[Buffer, Buffer[]]> | undefined;
    if (raw === undefined) return { epoch: current, offset, messages: undefined };
    const messages: HistoryEntry[] = [];
    for (const [id, fields] of raw) {
      const text = id.toString('latin1');
      const entryOffset = Number(text.slice(text.indexOf('-') + 1));
      const stored = fields[1] === undefined ? undefined : this.options.decode(fields[1]);
      // An entry that is not ours (someone wrote to the key): a hole, which readers report as lost.
      if (stored !== undefined) messages.push({ offset: entryOffset, ...stored });
    }
    return { epoch: current, offset, messages };
  }
}

/** Splits a positioned envelope (see POSITIONED_MARK); undefined when it is not one. */
export function decodePositioned(
  message: Buffer,
): { epoch: string; offset: number; envelope: Buffer } | undefined {
  if (message.length < 4 || message[0] !== POSITIONED_MARK) return undefined;
  const epochLength = message[1] as number;
  const offsetAt = 2 + epochLength;
  if (offsetAt >= message.length) return undefined;
  const offsetLength = message[offsetAt] as number;
  const envelopeAt = offsetAt + 1 + offsetLength;
  if (envelopeAt > message.length) return undefined;
  const offset = Number(message.toString('latin1', offsetAt + 1, envelopeAt));
  if (!Number.isSafeInteger(offset) || offset < 1) return undefined;
  return {
    epoch: message.toString('latin1', 2, offsetAt),
    offset,
    envelope: message.subarray(envelopeAt),
  };
}
