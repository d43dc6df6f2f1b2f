/**
 * A backplane carries messages between wshub nodes (issue 6). It moves opaque
 * byte strings on named channels; what is inside (the envelope: node id,
 * sequence, room, text/binary) is the relay's business, not the driver's.
 *
 * Delivery guarantees, the same for every driver (test/helpers/backplane-contract.ts
 * checks them against each one):
 *
 * - At most once. Each subscriber of a channel receives a published message
 *   once or not at all. Nothing is stored, retried or replayed, so nothing is
 *   ever delivered twice.
 * - Per-publisher order. Messages published by one Backplane instance on one
 *   channel reach every subscriber in the order they were published. There is
 *   no order between different publishers.
 * - Loopback. A subscriber also receives what its own instance published (as
 *   Redis pub/sub does); callers that don't want that filter by sender.
 * - Outages. publish() never blocks and never throws. While the driver is not
 *   connected, or its bounded send buffer is full, it returns false at once
 *   (fail fast) and the message is lost; a message already handed over can
 *   still be lost if the connection drops before the server took it. Both are
 *   counted in BackplaneCounters.publishFailures. The driver reconnects by
 *   itself with backoff and restores its subscriptions; what other nodes
 *   published in between is not delivered later.
 *
 * Per-room routing (issue 18): the relay uses one channel per room
 * (room-keys.ts) and subscribes to a room's channel only while the node has a
 * local member in it (plus a short linger after the last one leaves), so a
 * node receives, decodes and pays for nothing of the rooms it has no client
 * in. A driver therefore sees many channels come and go:
 *
 * - subscribe()/unsubscribe() are cheap and may be called for thousands of
 *   channels; the driver batches them towards the medium as it sees fit.
 * - After unsubscribe() resolves, nothing more of that channel reaches the
 *   handler; a message already on the wire may still arrive between the call
 *   and its completion, and is delivered to the handler registered then (if any).
 * - A subscribe() after an unsubscribe() of the same channel (a member came
 *   back) is ordered after it: the channel ends up subscribed.
 * - Order, at-most-once and loopback hold per channel, as above. There is no
 *   order between channels (in Redis Cluster two rooms may live on different
 *   shards): a node's order is per room.
 * - A driver for a medium made of several independent parts (Redis Cluster
 *   shards) keeps delivering the channels of the parts that are up while
 *   another part is down; health() then says which parts are reachable.
 */
export interface Backplane {
  /**
   * Hands `message` over for every subscriber of `channel`. Returns false when
   * it was dropped at once (not connected, or the send buffer is full).
   * The caller must not modify `message` afterwards.
   */
  publish(channel: string, message: Buffer): boolean;
  /**
   * Delivers every message on `channel` to `onMessage` (one handler per
   * channel). Resolves once the subscription is active; while the backplane is
   * unreachable it stays pending, and the driver keeps trying.
   */
  subscribe(channel: string, onMessage: (message: Buffer) => void): Promise<void>;
  /**
   * Stops delivering `channel` to this node. Resolves once the medium has
   * dropped the subscription (at once while disconnected: a reconnect
   * restores only the channels still subscribed). Never rejects.
   */
  unsubscribe(channel: string): Promise<void>;
  /** Cheap and synchronous: for /readyz, the connected gauge and logs. */
  health(): BackplaneHealth;
  /** Stops reconnecting and releases connections; pending publishes are dropped. Idempotent. */
  close(): Promise<void>;
}

export type BackplaneState = 'connecting' | 'connected' | 'disconnected' | 'closed';

export interface BackplaneHealth {
  /** 'connected' means publishing works and every subscription is active. */
  readonly state: BackplaneState;
  /** Why it is not connected (the last error), for /readyz and logs; never contains credentials. */
  readonly detail: string;
  /**
   * For a medium made of several parts (Redis Cluster shards): each part's
   * state, labelled by a bounded name (e.g. the shard's first slot), never an
   * address. Absent for a single-part medium.
   */
  readonly shards?: readonly ShardHealth[];
}

export interface ShardHealth {
  /** Bounded label: "slots 0-5460", not an address (addresses change on failover). */
  readonly shard: string;
  readonly state: 'connected' | 'disconnected';
  /** Why it is disconnected; never contains credentials. */
  readonly detail: string;
}

/**
 * Plain counters a driver increments (metrics/ reads them at scrape time).
 * A message counts once per node: fan-out to clients is counted by the hub.
 */
export class BackplaneCounters {
  /** Messages the backplane server accepted from this node. */
  published = 0;
  /** Messages this node could not publish (refused at once or lost in flight): lost for other nodes. */
  publishFailures = 0;
  /** Messages received from the backplane, this node's own included. */
  received = 0;
  /** Successful reconnections after a lost connection. */
  reconnects = 0;
  /** Times the medium's layout changed under the driver (Redis Cluster: slots moved, a replica promoted). */
  topologyChanges = 0;
}
