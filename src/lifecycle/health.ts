/**
 * Readiness is the conjunction of named checks: "accepting" (false from the
 * moment shutdown starts) and whatever else registers one (e.g. a backplane).
 */
export class Health {
  private readonly checks = new Map<string, () => boolean>();
  private accepting = true;

  constructor() {
    this.checks.set('shutting_down', () => this.accepting);
  }

  addCheck(name: string, isHealthy: () => boolean): void {
    this.checks.set(name, isHealthy);
  }

  stopAccepting(): void {
    this.accepting = false;
  }

  readiness(): { ready: boolean; failing: string[] } {
    const failing = [...this.checks].filter(([, isHealthy]) => !isHealthy()).map(([name]) => name);
    return { ready: failing.length === 0, failing };
  }
}
