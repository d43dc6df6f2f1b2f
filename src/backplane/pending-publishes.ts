import type { BackplaneCounters } from './backplane.js';

/**
 * Bytes handed to a Redis server and not yet acknowledged, bounded by
 * --backplane-max-pending (the Backplane contract: publish() fails fast when the
 * send buffer is full). Shared by the plain and the cluster Redis drivers.
 */
export class PendingPublishes {
  private pendingBytes = 0;

  constructor(
    private readonly maxPendingBytes: number,
    private readonly counters: BackplaneCounters,
    private readonly logDrop: (why: string) => void,
  ) {}

  /** Sends `message` through `send` unless the bound is reached; counts the outcome either way. */
  send(message: Buffer, send: () => Promise<unknown>): boolean {
    const size = message.length;
    if (this.pendingBytes + size > this.maxPendingBytes) {
      this.counters.publishFailures++;
      this.logDrop(`more than ${this.maxPendingBytes} bytes are waiting for Redis`);
      return false;
    }
    this.pendingBytes += size;
    send().then(
      () => {
        this.pendingBytes -= size;
        this.counters.published++;
      },
      (error: Error) => {
        this.pendingBytes -= size;
        this.counters.publishFailures++;
        this.logDrop(error.message);
      },
    );
    return true;
  }
}
