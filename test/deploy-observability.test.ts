import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml } from 'yaml';
import { makeCertificate, makeTempDir, requireOpenssl } from './helpers/certs.js';
import { TestClient } from './helpers/clients.js';
import { type SpawnedServer, spawnServer } from './helpers/server.js';
import { typeProblems } from './helpers/typecheck.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const OBSERVABILITY = join(ROOT, 'deploy/observability');
const RULES = join(OBSERVABILITY, 'wshub-alerts.yaml');
const RULE_TESTS = join(OBSERVABILITY, 'wshub-alerts.test.yaml');
const DASHBOARD = join(OBSERVABILITY, 'wshub-dashboard.json');

/** A binary from a Debian package the tests need: a missing one fails the test, naming the package. */
function requireBinary(name: string, debianPackage: string): string {
  const found = spawnSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' });
  assert.equal(
    found.status,
    0,
    `${name} not found: install the Debian package "${debianPackage}" (apt-get install ${debianPackage}; .ci/run does it)`,
  );
  return found.stdout.trim();
}

function run(command: string, args: string[], input?: string) {
  return spawnSync(command, args, { encoding: 'utf8', input, timeout: 60_000, cwd: OBSERVABILITY });
}

/** Metric families a scrape declares, histogram/summary series mapped to their family. */
function familiesOf(exposition: string): Set<string> {
  const families = new Set<string>();
  for (const match of exposition.matchAll(/^# TYPE (\S+) (\S+)$/gm)) families.add(match[1] as string);
  return families;
}

const PROMQL_WORDS = new Set([
  'by',
  'without',
  'on',
  'ignoring',
  'group_left',
  'group_right',
  'and',
  'or',
  'unless',
  'bool',
  'offset',
  'inf',
  'nan',
]);

/** The metric names a PromQL expression reads (not functions, labels, variables or keywords). */
export function metricNamesIn(expr: string): string[] {
  const stripped = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ')
    .replace(/\$\w+/g, ' ');
  const names = new Set<string>();
  for (const match of stripped.matchAll(/(?<![\w:.])[a-zA-Z_:][\w:]*(?![\w:])(?!\s*\()/g)) {
    const name = match[0];
    if (!PROMQL_WORDS.has(name.toLowerCase())) names.add(name);
  }
  return [...names];
}

function familyOf(name: string, families: Set<string>): string | undefined {
  if (families.has(name)) return name;
  const base = name.replace(/_(bucket|sum|count)$/, '');
  return families.has(base) ? base : undefined;
}

interface Dashboard {
  panels: Array<{
    title: string;
    type: string;
    targets?: Array<{ expr: string }>;
    datasource?: { uid: string };
  }>;
  templating: { list: Array<{ name: string; type: string; query?: unknown }> };
}

const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as Dashboard;
const alertRules = (
  parseYaml(readFileSync(RULES, 'utf8')) as {
    groups: Array<{ rules: Array<{ alert: string; expr: string }> }>;
  }
).groups.flatMap((group) => group.rules);

describe('Prometheus alerting rules', () => {
  it('pass promtool check rules', () => {
    const promtool = requireBinary('promtool', 'prometheus');
    const result = run(promtool, ['check', 'rules', RULES]);
    assert.equal(result.status, 0, result.stdout + result.stderr);
    assert.match(result.stdout, new RegExp(`SUCCESS: ${alertRules.length} rules found`));
  });

  it('pass their promtool unit tests, which cover every alert', () => {
    const promtool = requireBinary('promtool', 'prometheus');
    const result = run(promtool, ['test', 'rules', RULE_TESTS]);
    assert.equal(result.status, 0, result.stdout + result.stderr);
    const tests = parseYaml(readFileSync(RULE_TESTS, 'utf8')) as {
      tests: Array<{ alert_rule_test: Array<{ alertname: string; exp_alerts: unknown[] }> }>;
    };
    const firing = new Set(
      tests.tests.flatMap((test) =>
        test.alert_rule_test.filter((check) => check.exp_alerts.length > 0).map((check) => check.alertname),
      ),
    );
    for (const rule of alertRules) assert.ok(firing.has(rule.alert), `no unit test makes ${rule.alert} fire`);
  });

  it('wrapped in a PrometheusRule (README), they validate against the Prometheus Operator schema', async () => {
    const { PrometheusRule } = await import(
      '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PrometheusRule'
    );
    const spec = parseYaml(readFileSync(RULES, 'utf8')) as never;
    assert.doesNotThrow(() => new PrometheusRule({ metadata: { name: 'wshub' }, spec }).validate());
  });

  it('promtool test rules fails when an expectation is wrong (the unit tests can fail)', () => {
    const promtool = requireBinary('promtool', 'prometheus');
    const scratch = mkdtempSync(join(tmpdir(), 'wshub-rules-'));
    try {
      writeFileSync(join(scratch, 'wshub-alerts.yaml'), readFileSync(RULES));
      const broken = readFileSync(RULE_TESTS, 'utf8').replace('severity: critical', 'severity: info');
      writeFileSync(join(scratch, 'broken.test.yaml'), broken);
      const result = spawnSync(promtool, ['test', 'rules', 'broken.test.yaml'], {
        cwd: scratch,
        encoding: 'utf8',
      });
      assert.notEqual(result.status, 0);
      assert.match(result.stdout + result.stderr, /WshubDown/);
    } finally {
      rmSync(scratch, { recursive: true, force: true });
    }
  });
});

describe('observability assets against a running wshub', () => {
  let server: SpawnedServer;
  let client: TestClient;
  let exposition: string;
  /** A TLS server's scrape: the certificate-expiry gauge exists only when wshub serves TLS. */
  let tlsExposition: string;
  const certDir = makeTempDir();
  before(async () => {
    requireOpenssl();
    const cert = makeCertificate(certDir.dir, 'server');
    const tlsServer = await spawnServer([
      '--stats-interval=0',
      '--tls',
      `--tls-cert-file=${cert.certFile}`,
      `--tls-key-file=${cert.keyFile}`,
    ]);
    try {
      tlsExposition = await (await fetch(`${tlsServer.metricsUrl}/metrics`)).text();
    } finally {
      tlsServer.kill('SIGTERM');
      await tlsServer.exited;
    }
    // Broadcast mode with a backplane registers the wshub_backplane_* metrics too. Nothing listens
    // on port 1, and no test ever starts a Redis there (a freed ephemeral port might be reused by
    // one): wshub serves anyway and keeps retrying.
    server = await spawnServer(['--stats-interval=0', '--mode=broadcast', '--backplane=redis://127.0.0.1:1']);
    client = await TestClient.open(server.url);
    exposition = await (await fetch(`${server.metricsUrl}/metrics`)).text();
  });
  after(async () => {
    await client?.close();
    server?.kill('SIGTERM');
    await server?.exited;
    certDir.cleanup();
  });

  it("promtool check metrics finds no problem in wshub's own metrics", () => {
    const promtool = requireBinary('promtool', 'prometheus');
    const result = run(promtool, ['check', 'metrics'], exposition);
    const problems = `${result.stdout}${result.stderr}`.split('\n').filter((line) => line.trim() !== '');
    // prom-client's default collectors name three gauges *_total (nodejs_active_{handles,requests,resources}_total);
    // those are upstream's. Anything about a metric wshub defines fails here.
    const ours = problems.filter((line) => !/^nodejs_active_(handles|requests|resources)_total /.test(line));
    assert.deepEqual(ours, []);
    assert.ok(result.status === 0 || problems.length > 0, 'promtool ran');
  });

  it('the dashboard reads only metrics wshub exposes, and every panel has a query', () => {
    const families = familiesOf(exposition);
    const queries = dashboard.panels.filter((panel) => panel.type !== 'row');
    assert.ok(queries.length >= 6);
    for (const panel of queries) {
      assert.ok(panel.targets && panel.targets.length > 0, `${panel.title} has no query`);
      // biome-ignore lint/suspicious/noTemplateCurlyInString: Grafana's variable syntax, not a JS template
      assert.equal(panel.datasource?.uid, '${datasource}', `${panel.title} uses the datasource variable`);
      for (const target of panel.targets) {
        const names = metricNamesIn(target.expr);
        assert.ok(names.length > 0, `${panel.title}: no metric in ${target.expr}`);
        for (const name of names) {
          assert.ok(familyOf(name, families), `${panel.title}: ${name} is not exposed by wshub`);
        }
      }
    }
    const variables = dashboard.templating.list.map((variable) => variable.name);
    assert.deepEqual(variables, ['datasource', 'job']);
    const topics = [
      /open connections/i,
      /connects and disconnects/i,
      /messages in and out/i,
      /fan-out/i,
      /dropped messages/i,
      /slow-consumer/i,
      /ping/i,
      /backplane connected/i,
      /cpu/i,
      /memory/i,
      /event-loop/i,
    ];
    for (const topic of topics) {
      assert.ok(
        queries.some((panel) => topic.test(panel.title)),
        `a panel about ${topic}`,
      );
    }
  });

  it("the dashboard has only fields of Grafana's dashboard schema (@grafana/schema)", () => {
    const source = `import type { Dashboard } from '@grafana/schema';\nexport const d: Dashboard = ${readFileSync(DASHBOARD, 'utf8')};`;
    assert.deepEqual(typeProblems(source), []);
    const typo = source.replace('"refresh": "30s"', '"refresh": "30s", "refrsh": "1m"');
    assert.match(typeProblems(typo)[0]?.message ?? '', /refrsh/, 'the check can fail');
  });

  it('the alert rules read only metrics wshub exposes (or Prometheus itself: up)', () => {
    const families = new Set([...familiesOf(exposition), ...familiesOf(tlsExposition)]);
    assert.ok(
      families.has('wshub_tls_certificate_expiry_timestamp_seconds'),
      'the TLS scrape has the expiry gauge',
    );
    for (const rule of alertRules) {
      for (const name of metricNamesIn(rule.expr)) {
        if (name === 'up') continue;
        assert.ok(familyOf(name, families), `${rule.alert}: ${name} is not exposed by wshub`);
      }
    }
  });

  it('the metric-name extraction sees through PromQL syntax (so the checks above can fail)', () => {
    assert.deepEqual(
      metricNamesIn(
        'histogram_quantile(0.99, sum by (le) (rate(x_seconds_bucket{job=~"$job", a="b c"}[$__rate_interval]))) / on (instance) y > 450 * 1e3',
      ),
      ['x_seconds_bucket', 'y'],
    );
    assert.equal(familyOf('websocket_no_such_metric', familiesOf(exposition)), undefined);
  });

  it('a real Prometheus scrapes wshub and sees websocket_connections = 1 through its HTTP API, with the rules loaded', async () => {
    const prometheusBinary = requireBinary('prometheus', 'prometheus');
    const prometheus = await startPrometheus(prometheusBinary, server.metricsPort as number);
    try {
      const connections = await waitForQuery(prometheus.url, 'websocket_connections{job="wshub"}', '1');
      assert.equal(connections, '1');
      assert.equal(await waitForQuery(prometheus.url, 'up{job="wshub"}', '1'), '1');

      const rules = (await (await fetch(`${prometheus.url}/api/v1/rules`)).json()) as {
        data: { groups: Array<{ name: string; rules: Array<{ name: string; health: string }> }> };
      };
      const loaded = rules.data.groups.flatMap((group) => group.rules);
      assert.deepEqual(loaded.map((rule) => rule.name).sort(), alertRules.map((rule) => rule.alert).sort());

      // The gauge follows the server: a second client shows up as 2 on the next scrapes.
      const second = await TestClient.open(server.url);
      assert.equal(await waitForQuery(prometheus.url, 'websocket_connections{job="wshub"}', '2'), '2');
      await second.close();
    } finally {
      await prometheus.stop();
    }
  });
});

interface RunningPrometheus {
  readonly url: string;
  stop(): Promise<void>;
}

async function freeLoopbackPort(): Promise<number> {
  const probe = createServer();
  probe.listen(0, '127.0.0.1');
  await once(probe, 'listening');
  const address = probe.address();
  probe.close();
  await once(probe, 'close');
  return typeof address === 'object' && address !== null ? address.port : 0;
}

/** A real Prometheus on loopback with a temp TSDB, scraping one wshub every second. */
async function startPrometheus(binary: string, metricsPort: number): Promise<RunningPrometheus> {
  const scratch = mkdtempSync(join(tmpdir(), 'wshub-prometheus-'));
  const config = join(scratch, 'prometheus.yml');
  writeFileSync(
    config,
    [
      'global:',
      '  scrape_interval: 1s',
      '  evaluation_interval: 1s',
      'rule_files:',
      `  - ${JSON.stringify(RULES)}`,
      'scrape_configs:',
      '  - job_name: wshub',
      `    static_configs: [{ targets: ["127.0.0.1:${metricsPort}"] }]`,
      '',
    ].join('\n'),
  );
  let lastError = '';
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freeLoopbackPort();
    const url = `http://127.0.0.1:${port}`;
    const child: ChildProcess = spawn(
      binary,
      [
        `--config.file=${config}`,
        `--storage.tsdb.path=${join(scratch, 'data')}`,
        `--web.listen-address=127.0.0.1:${port}`,
        '--storage.tsdb.retention.time=1h',
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let stderr = '';
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
    });
    const exited = once(child, 'exit');
    const stop = async (): Promise<void> => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
        await exited;
        clearTimeout(timer);
      }
      rmSync(scratch, { recursive: true, force: true });
    };
    const ready = await waitUntil(async () => {
      if (child.exitCode !== null) return 'exited';
      const response = await fetch(`${url}/-/ready`).catch(() => undefined);
      return response?.status === 200 ? 'ready' : undefined;
    }, 30_000);
    if (ready === 'ready') return { url, stop };
    lastError = stderr;
    await stop().catch(() => {});
    if (!/address already in use/.test(stderr)) break;
  }
  throw new Error(`prometheus did not become ready:\n${lastError.split('\n').slice(-15).join('\n')}`);
}

async function waitUntil<T>(check: () => Promise<T | undefined>, timeoutMs: number): Promise<T | undefined> {
  const deadline = performance.now() + timeoutMs;
  while (performance.now() < deadline) {
    const value = await check();
    if (value !== undefined) return value;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  return undefined;
}

/** Polls an instant query until its single sample has `expected`; returns the last value seen. */
async function waitForQuery(
  url: string,
  query: string,
  expected: string,
  timeoutMs = 30_000,
): Promise<string> {
  let last = '(no sample)';
  await waitUntil(async () => {
    const response = await fetch(`${url}/api/v1/query?query=${encodeURIComponent(query)}`);
    const body = (await response.json()) as { data: { result: Array<{ value: [number, string] }> } };
    last = body.data.result[0]?.value[1] ?? '(no sample)';
    return last === expected ? true : undefined;
  }, timeoutMs);
  return last;
}
