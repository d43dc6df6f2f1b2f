import { type Backplane, BackplaneCounters, type BackplaneHealth, type BackplaneState } from './backplane.js';

/**
 * What in-memory backplanes share: the nodes of one process (tests, or one
 * day worker threads behind an IPC driver) attach to the same bus. `available`
 * lets a test cut the bus to see what nodes do during an outage.
 */
export class MemoryBus {
  private readonly members = new Set<MemoryBackplane>();
  private up = true;

  get available(): boolean {
    return this.up;
  }

  /** Simulates an outage (false) and the recovery (true) for every attached backplane. */
  setAvailable(available: boolean): void {
    if (available === this.up) return;
    this.up = available;
    for (const member of this.members) member.busChanged(available);
  }

  attach(member: MemoryBackplane): void {
    this.members.add(member);
  }

  detach(member: MemoryBackplane): void {
    this.members.delete(member);
  }

  /** Delivers in a microtask, never inside publish(), in publish order (microtasks run FIFO). */
  send(channel: string, message: Buffer): void {
    queueMicrotask(() => {
      if (!this.up) return;
      for (const member of this.members) member.deliver(channel, message);
    });
  }
}

/** The in-process driver: same contract as the Redis one, no network. */
export class MemoryBackplane implements Backplane {
  private readonly handlers = new Map<string, (message: Buffer) => void>();
  private waitingForBus: Array<() => void> = [];
  private state: BackplaneState;

  constructor(
    private readonly bus: MemoryBus = new MemoryBus(),
    private readonly counters: BackplaneCounters = new BackplaneCounters(),
  ) {
    this.state = bus.available ? 'connected' : 'connecting';
    bus.attach(this);
  }

  publish(channel: string, message: Buffer): boolean {
    if (this.state !== 'connected') {
      this.counters.publishFailures++;
      return false;
    }
    this.counters.published++;
    this.bus.send(channel, message);
    return true;
  }

  subscribe(channel: string, onMessage: (message: Buffer) => void): Promise<void> {
    this.handlers.set(channel, onMessage);
    if (this.state === 'connected' || this.state === 'closed') return Promise.resolve();
    return new Promise((resolve) => this.waitingForBus.push(resolve));
  }

  async unsubscribe(channel: string): Promise<void> {
    this.handlers.delete(channel);
  }

  health(): BackplaneHealth {
    return { state: this.state, detail: this.state === 'disconnected' ? 'memory bus unavailable' : '' };
  }

  async close(): Promise<void> {
    this.state = 'closed';
    this.bus.detach(this);
    this.handlers.clear();
    this.resolveWaiters();
  }

  /** Called by the bus. */
  busChanged(available: boolean): void {
    if (this.state === 'closed') return;
    if (available) {
      if (this.state === 'disconnected') this.counters.reconnects++;
      this.state = 'connected';
      this.resolveWaiters();
    } else {
      this.state = 'disconnected';
    }
  }

  /** Called by the bus. */
  deliver(channel: string, message: Buffer): void {
    const handler = this.handlers.get(channel);
    if (handler === undefined || this.state !== 'connected') return;
    this.counters.received++;
    handler(message);
  }

  private resolveWaiters(): void {
    const waiters = this.waitingForBus;
    this.waitingForBus = [];
    for (const resolve of waiters) resolve();
  }
}
