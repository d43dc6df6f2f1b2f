import type { RateLimitedLog } from '../log.js';
import type { BackplaneCounters } from './backplane.js';

/**
 * Every publish of a Redis driver (the plain and the cluster one) ends here:
 * bytes handed to a Redis server and not yet acknowledged are bounded by
 * --backplane-max-pending (the Backplane contract: publish() fails fast when the
 * send buffer is full), and each outcome is counted (published, or a failure)
 * and each message not relayed is logged, at a bounded rate, with why.
 */
export class PendingPublishes {
  private pendingBytes = 0;

  constructor(
    private readonly maxPendingBytes: number,
    private readonly counters: BackplaneCounters,
    private readonly limitedLog: RateLimitedLog,
    /** The backplane as its logs name it (formatRedisTarget). */
    private readonly where: string,
  ) {}

  /** Sends `message` through `send` unless the bound is reached; counts the outcome either way. */
  send(message: Buffer, send: () => Promise<unknown>): boolean {
    const size = message.length;
    if (this.pendingBytes + size > this.maxPendingBytes) {
      return this.refuse(`more than ${this.maxPendingBytes} bytes are waiting for Redis`);
    }
    this.pendingBytes += size;
    send().then(
      () => {
        this.pendingBytes -= size;
        this.counters.published++;
      },
      (error: Error) => {
        this.pendingBytes -= size;
        this.refuse(error.message);
      },
    );
    return true;
  }

  /** A message the driver cannot send (closed, not connected, its shard down): counted, logged; false. */
  refuse(why: string): false {
    this.counters.publishFailures++;
    this.limitedLog.log(
      'backplane_unavailable',
      'warn',
      `Message not relayed to other nodes: ${why} (backplane ${this.where})`,
    );
    return false;
  }
}
