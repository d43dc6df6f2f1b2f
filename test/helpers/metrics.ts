/**
 * Polls /readyz until it stops answering 200 or `timeoutMs` passes; the last status
 * (a draining server turns it 503, as a load balancer's probe would see).
 */
export async function readyzLeaving200(metricsUrl: string, timeoutMs: number): Promise<number> {
  const deadline = performance.now() + timeoutMs;
  let status = 200;
  while (status === 200 && performance.now() < deadline) {
    status = (await fetch(`${metricsUrl}/readyz`)).status;
    if (status === 200) await new Promise((resolve) => setTimeout(resolve, 10));
  }
  return status;
}

/** Scrapes /metrics and returns one sample's value (undefined when absent). */
export async function metricValue(
  metricsUrl: string,
  name: string,
  labels: Record<string, string> = {},
): Promise<number | undefined> {
  const text = await (await fetch(`${metricsUrl}/metrics`)).text();
  return sampleValue(text, name, labels);
}

export function sampleValue(
  text: string,
  name: string,
  labels: Record<string, string> = {},
): number | undefined {
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)/.exec(line);
    if (!match || match[1] !== name) continue;
    const found: Record<string, string> = {};
    for (const [, key, value] of (match[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) {
      found[key as string] = value as string;
    }
    if (Object.entries(labels).every(([key, value]) => found[key] === value)) return Number(match[3]);
  }
  return undefined;
}

/** Polls until the metric has the expected value; returns the last value seen. */
export async function waitForMetric(
  metricsUrl: string,
  name: string,
  expected: number,
  labels: Record<string, string> = {},
  timeoutMs = 5000,
): Promise<number | undefined> {
  const deadline = performance.now() + timeoutMs;
  let value: number | undefined;
  while (performance.now() < deadline) {
    value = await metricValue(metricsUrl, name, labels);
    if (value === expected) return value;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  return value;
}

/** The outbox and duplicate metrics of room history (issue 16): all 0 when nothing went wrong (and without Redis). */
export const QUIET_HISTORY_METRICS = [
  'wshub_outbox_messages',
  'wshub_outbox_bytes',
  'wshub_outbox_redeliveries_total',
  'wshub_outbox_dropped_total',
  'wshub_history_duplicates_dropped_total',
] as const;

/** Asserts each metric is exported with the value 0. */
export async function assertZeroMetrics(metricsUrl: string, names: readonly string[]): Promise<void> {
  const text = await (await fetch(`${metricsUrl}/metrics`)).text();
  for (const name of names) {
    if (sampleValue(text, name) !== 0) throw new Error(`${name} is ${sampleValue(text, name)}, expected 0`);
  }
}
