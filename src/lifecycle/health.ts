export interface CheckOptions {
  /** false: a failing check is reported on /readyz but leaves the node ready ("degraded"). Default true. */
  readonly required?: boolean;
  /** A one-line state for /readyz (e.g. "connected to redis://..."), shown whether it passes or not. */
  readonly describe?: () => string;
}

interface Check extends CheckOptions {
  readonly isHealthy: () => boolean;
}

export interface Readiness {
  readonly ready: boolean;
  /** Required checks that fail: the node is not ready because of them. */
  readonly failing: string[];
  /** Checks that fail without making the node unready. */
  readonly degraded: string[];
  /** "name: description" for every check that describes itself. */
  readonly details: string[];
}

/**
 * Readiness is the conjunction of named checks: "accepting" (false from the
 * moment shutdown starts) and whatever else registers one (e.g. a backplane).
 */
export class Health {
  private readonly checks = new Map<string, Check>();
  private accepting = true;

  constructor() {
    this.checks.set('shutting_down', { isHealthy: () => this.accepting });
  }

  addCheck(name: string, isHealthy: () => boolean, options: CheckOptions = {}): void {
    this.checks.set(name, { ...options, isHealthy });
  }

  stopAccepting(): void {
    this.accepting = false;
  }

  readiness(): Readiness {
    const failing: string[] = [];
    const degraded: string[] = [];
    const details: string[] = [];
    for (const [name, check] of this.checks) {
      if (!check.isHealthy()) (check.required === false ? degraded : failing).push(name);
      if (check.describe) details.push(`${name}: ${check.describe()}`);
    }
    return { ready: failing.length === 0, failing, degraded, details };
  }
}
