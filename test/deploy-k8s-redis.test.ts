import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { after, describe, it } from 'node:test';
import { parse as parseYaml } from 'yaml';
import { assertUsageError, runToExit } from './helpers/cli.js';
import {
  type ContainerSpec,
  find,
  K8S,
  mountedConfig,
  podSpecOf,
  unknownFields,
  yamlFiles,
} from './helpers/k8s.js';
import { renderKustomization } from './helpers/kustomize.js';

const scratch = mkdtempSync(join(tmpdir(), 'wshub-k8s-redis-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

describe('Kubernetes with Redis (k8s/overlays/redis)', () => {
  const overlayDir = join(K8S, 'overlays/redis');
  const overlay = renderKustomization(overlayDir);

  it('renders the base plus Redis and lists every file of the overlay', () => {
    const own = yamlFiles(overlayDir).map((file) => relative(overlayDir, join(K8S, file)));
    for (const file of own)
      assert.ok(overlay.files.includes(file), `${file} is in the overlay's kustomization`);
    assert.deepEqual(overlay.objects.map((object) => `${object.kind}/${object.metadata.name}`).sort(), [
      'ConfigMap/wshub-config',
      'Deployment/wshub',
      'Deployment/wshub-redis',
      'HorizontalPodAutoscaler/wshub',
      'PodDisruptionBudget/wshub',
      'Service/wshub',
      'Service/wshub-redis',
      'ServiceMonitor/wshub',
    ]);
    assert.deepEqual(
      unknownFields(overlay.objects.map((object) => ({ file: 'overlays/redis', object }))),
      [],
    );
  });

  it("the overlay's config is broadcast mode with a backplane URL that reaches the Redis Service and pod", () => {
    const { file } = mountedConfig(overlay.objects, scratch);
    const config = parseYaml(readFileSync(file, 'utf8')) as {
      server: { mode: string };
      backplane: { url: string };
    };
    assert.equal(config.server.mode, 'broadcast');
    const url = new URL(config.backplane.url);
    assert.equal(url.protocol, 'redis:');
    const service = find(overlay.objects, 'Service', url.hostname);
    const spec = service.spec as {
      selector: Record<string, string>;
      ports: Array<{ port: number; targetPort: string }>;
    };
    const servicePort = spec.ports.find((port) => port.port === Number(url.port || 6379));
    assert.ok(servicePort, `Service ${url.hostname} has port ${url.port}`);
    const redis = find(overlay.objects, 'Deployment', 'wshub-redis');
    const labels = (redis.spec as { template: { metadata: { labels: Record<string, string> } } }).template
      .metadata.labels;
    for (const [key, value] of Object.entries(spec.selector)) assert.equal(labels[key], value);
    const container = podSpecOf(redis).containers[0] as ContainerSpec;
    assert.ok(container.ports.some((port) => port.name === servicePort.targetPort));
    assert.equal(container.securityContext.readOnlyRootFilesystem, true);
    // The wshub selectors must not pick up the Redis pods.
    const wshubService = find(overlay.objects, 'Service', 'wshub');
    const wshubSelector = (wshubService.spec as { selector: Record<string, string> }).selector;
    assert.ok(Object.entries(wshubSelector).some(([key, value]) => labels[key] !== value));
  });

  it("the overlay's wshub command line passes the real wshub --check-config", async () => {
    const { args } = mountedConfig(overlay.objects, scratch);
    const checked = await runToExit([...args, '--check-config']);
    assert.equal(checked.code, 0, checked.stderr);
    assert.match(checked.stdout, /configuration OK/);
    const bad = await runToExit([...args, '--backplane=http://wshub-redis', '--check-config']);
    assertUsageError(bad, 'WSHUB_INVALID_VALUE', /--backplane/);
  });
});
