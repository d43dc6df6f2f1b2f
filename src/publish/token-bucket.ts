/**
 * A token bucket: `ratePerSecond` tokens a second, holding at most `capacity`,
 * so short bursts up to `capacity` pass and the long-run rate is bounded.
 */
export class TokenBucket {
  private tokens: number;
  private updatedAt: number;

  constructor(
    private readonly ratePerSecond: number,
    private readonly capacity: number,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.tokens = capacity;
    this.updatedAt = now();
  }

  /** Takes one token if there is one. */
  take(): boolean {
    this.refill();
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }

  /** Whole seconds until the next token (for Retry-After), at least 1. */
  secondsUntilNext(): number {
    this.refill();
    return Math.max(1, Math.ceil((1 - this.tokens) / this.ratePerSecond));
  }

  private refill(): void {
    const now = this.now();
    this.tokens = Math.min(this.capacity, this.tokens + ((now - this.updatedAt) / 1000) * this.ratePerSecond);
    this.updatedAt = now;
  }
}
