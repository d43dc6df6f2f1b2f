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
}
