import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { loadConfig } from '../src/config/load.js';
import { META_FLAGS, SETTINGS } from '../src/config/settings.js';
import { runToExit } from './helpers/cli.js';
import { instructionsOf, parseDockerfile } from './helpers/dockerfile.js';
import {
  type ContainerSpec,
  find,
  K8S,
  modelFor,
  mountedConfig,
  packageVersion,
  podSpecOf,
  ROOT,
  unknownFields,
  yamlFiles,
} from './helpers/k8s.js';
import { type KubeObject, readObjects, renderKustomization } from './helpers/kustomize.js';
import { spawnServer } from './helpers/server.js';

const scratch = mkdtempSync(join(tmpdir(), 'wshub-k8s-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

describe('Kubernetes manifests', () => {
  const base = renderKustomization(K8S);

  it('every manifest validates against the Kubernetes OpenAPI schemas (kubernetes-models)', async () => {
    for (const file of yamlFiles()) {
      for (const object of readObjects(join(K8S, file))) {
        if (object.kind === 'Kustomization') continue;
        const model = await modelFor(object);
        assert.doesNotThrow(() => model.validate(), `${file}: ${object.kind}/${object.metadata?.name}`);
      }
    }
  });

  it('the schema validation catches a broken manifest (the check can fail)', async () => {
    const deployment = structuredClone(find(base.objects, 'Deployment', 'wshub'));
    (podSpecOf(deployment).containers[0] as ContainerSpec).ports[0] = {
      name: 'ws',
      containerPort: 'three thousand' as unknown as number,
    };
    const model = await modelFor(deployment);
    assert.throws(() => model.validate(), /containerPort must be integer/);
  });

  it('no manifest has a field the API does not define (excess-property check against the same models)', () => {
    const objects = yamlFiles().flatMap((file) =>
      readObjects(join(K8S, file))
        .filter((object) => object.kind !== 'Kustomization')
        .map((object) => ({ file, object })),
    );
    assert.deepEqual(unknownFields(objects), []);
  });

  it('the field check reports a misspelled field (the check can fail)', () => {
    const deployment = structuredClone(find(base.objects, 'Deployment', 'wshub'));
    const container = podSpecOf(deployment).containers[0] as unknown as Record<string, unknown>;
    container.readinesProbe = container.readinessProbe;
    const problems = unknownFields([{ file: 'mutated.yaml', object: deployment }]);
    assert.equal(problems.length, 1);
    assert.match(
      problems[0] as string,
      /mutated\.yaml: Deployment\/wshub: .*readinesProbe.*does not exist in type 'IContainer'/,
    );
  });

  it('the base kustomization lists every manifest in k8s/ and renders the whole set', () => {
    const manifests = yamlFiles().filter((file) => !file.startsWith('overlays/'));
    assert.deepEqual([...base.files].sort(), manifests.sort());
    assert.deepEqual(base.objects.map((object) => `${object.kind}/${object.metadata.name}`).sort(), [
      'ConfigMap/wshub-config',
      'Deployment/wshub',
      'HorizontalPodAutoscaler/wshub',
      'PodDisruptionBudget/wshub',
      'Service/wshub',
      'ServiceMonitor/wshub',
    ]);
  });

  it("the seed's two files apply on their own: the Deployment's ConfigMap comes with it", () => {
    const seedFiles = ['server-deployment.yaml', 'server-service.yaml'].flatMap((file) =>
      readObjects(join(K8S, file)),
    );
    const pod = podSpecOf(find(seedFiles, 'Deployment', 'wshub'));
    for (const volume of pod.volumes) {
      if (volume.configMap) find(seedFiles, 'ConfigMap', volume.configMap.name);
    }
    find(seedFiles, 'Service', 'wshub');
  });

  it('the ConfigMap config loads through the real config loader, and ports agree with the Deployment, Service and image', () => {
    const { file } = mountedConfig(base.objects, scratch);
    const { config } = loadConfig([`--config-file=${file}`], {});
    const deployment = find(base.objects, 'Deployment', 'wshub');
    const container = podSpecOf(deployment).containers[0] as ContainerSpec;
    const portOf = (name: string) => container.ports.find((port) => port.name === name)?.containerPort;
    assert.equal(portOf('ws'), config.port);
    assert.equal(portOf('metrics'), config.metricsPort);
    assert.equal(config.metricsEnabled, true, 'probes need the metrics port');
    assert.equal(config.host, '0.0.0.0', 'reachable from the Service');

    const service = find(base.objects, 'Service', 'wshub');
    const servicePorts = (
      service.spec as { ports: Array<{ name: string; port: number; targetPort: string }> }
    ).ports;
    for (const port of servicePorts) {
      assert.equal(
        portOf(port.targetPort),
        port.port,
        `Service port ${port.name} → container port ${port.targetPort}`,
      );
    }
    assert.deepEqual(servicePorts.map((port) => port.name).sort(), ['metrics', 'ws']);

    const dockerfile = parseDockerfile(readFileSync(join(ROOT, 'Dockerfile'), 'utf8'));
    const final = dockerfile.stages.at(-1);
    assert.ok(final);
    const exposed = instructionsOf(final, 'EXPOSE')[0]?.rest.split(/\s+/).map(Number);
    assert.deepEqual(exposed, [config.port, config.metricsPort]);
    const uid = Number(instructionsOf(final, 'USER')[0]?.rest.split(':')[0]);
    assert.equal(podSpecOf(deployment).securityContext.runAsUser, uid, 'runAsUser is the image user');
    assert.equal(container.image, `wshub:${packageVersion}`);
  });

  it('the container command line with the ConfigMap config passes the real wshub --check-config', async () => {
    const { args, file } = mountedConfig(base.objects, scratch);
    const checked = await runToExit([...args, '--check-config']);
    assert.equal(checked.code, 0, checked.stderr);
    assert.equal(checked.stdout, `wshub: configuration OK (config file ${file})`);
    // The same check refuses a config with a key wshub does not know (so it can fail).
    writeFileSync(`${file}.typo`, `${readFileSync(file, 'utf8')}\nserver:\n  prot: 3003\n`);
    const typo = await runToExit([`--config-file=${file}.typo`, '--check-config']);
    assert.equal(typo.code, 2);
  });

  it('the container args are flags wshub accepts, and the real binary starts with them and serves the probe paths', async () => {
    const { args } = mountedConfig(base.objects, scratch);
    const known = new Set([...Object.values(SETTINGS).map((s) => s.flag), META_FLAGS.configFile.flag]);
    for (const arg of args) assert.ok(known.has(/^--([^=]+)/.exec(arg)?.[1] ?? ''), `${arg} is a wshub flag`);

    // The flags spawnServer adds (loopback, ephemeral ports) override only where it listens.
    const server = await spawnServer([...args, '--stats-interval=0']);
    try {
      const container = podSpecOf(find(base.objects, 'Deployment', 'wshub')).containers[0] as ContainerSpec;
      for (const probe of [container.livenessProbe, container.readinessProbe, container.startupProbe]) {
        if (!probe) continue;
        assert.equal(probe.httpGet.port, 'metrics');
        const response = await fetch(`${server.metricsUrl}${probe.httpGet.path}`);
        assert.equal(response.status, 200, `${probe.httpGet.path} answers 200`);
      }
      const metrics = await fetch(`${server.metricsUrl}${serviceMonitorPath(base.objects)}`);
      assert.match(await metrics.text(), /^websocket_connections \d+$/m);
    } finally {
      server.kill('SIGTERM');
      assert.deepEqual(await server.exited, { code: 0, signal: null });
    }
  });

  it('terminationGracePeriodSeconds outlasts the drain (delay + window) plus the shutdown deadline, and readiness fails within the drain delay', () => {
    const { file } = mountedConfig(base.objects, scratch);
    const { config } = loadConfig([`--config-file=${file}`], {});
    const pod = podSpecOf(find(base.objects, 'Deployment', 'wshub'));
    const container = pod.containers[0] as ContainerSpec;
    // wshub's --drain-delay does what a preStop sleep did (keep serving while endpoint removal
    // propagates), without needing a shell or Kubernetes >= 1.30; both would add up.
    assert.equal(container.lifecycle?.preStop, undefined, 'no preStop hook: the drain delay replaces it');
    assert.ok(config.drainDelay >= 3000, 'a drain delay lets endpoint removal propagate');
    assert.ok(config.drainWindow > 0, 'closes are spread over a drain window');
    const readiness = container.readinessProbe as unknown as {
      periodSeconds: number;
      failureThreshold: number;
    };
    assert.ok(
      readiness.periodSeconds * readiness.failureThreshold * 1000 <= config.drainDelay,
      'the readiness probe sees the 503 before the drain delay ends',
    );
    const slack =
      pod.terminationGracePeriodSeconds -
      (config.drainDelay + config.drainWindow + config.shutdownTimeout) / 1000;
    assert.ok(
      slack >= 2,
      `grace ${pod.terminationGracePeriodSeconds}s leaves ${slack}s after the drain and shutdown`,
    );
  });

  it('runs locked down: non-root, read-only root, no privilege escalation, no capabilities, RuntimeDefault seccomp, resources', () => {
    const pod = podSpecOf(find(base.objects, 'Deployment', 'wshub'));
    assert.equal(pod.securityContext.runAsNonRoot, true);
    assert.equal(pod.securityContext.seccompProfile.type, 'RuntimeDefault');
    const container = pod.containers[0] as ContainerSpec;
    assert.equal(container.securityContext.runAsNonRoot, true);
    assert.equal(container.securityContext.readOnlyRootFilesystem, true);
    assert.equal(container.securityContext.allowPrivilegeEscalation, false);
    assert.deepEqual(container.securityContext.capabilities.drop, ['ALL']);
    for (const resource of ['cpu', 'memory']) {
      assert.ok(container.resources.requests[resource], `requests.${resource}`);
      assert.ok(container.resources.limits[resource], `limits.${resource}`);
    }
  });

  it('selectors connect: Service, PDB and ServiceMonitor select the pods; the HPA targets the Deployment', () => {
    const deployment = find(base.objects, 'Deployment', 'wshub');
    const podLabels = (deployment.spec as { template: { metadata: { labels: Record<string, string> } } })
      .template.metadata.labels;
    const selects = (selector: Record<string, string>, labels: Record<string, string> | undefined) =>
      Object.entries(selector).every(([key, value]) => labels?.[key] === value);
    const service = find(base.objects, 'Service', 'wshub');
    assert.ok(selects((service.spec as { selector: Record<string, string> }).selector, podLabels));
    const pdb = find(base.objects, 'PodDisruptionBudget');
    assert.ok(
      selects(
        (pdb.spec as { selector: { matchLabels: Record<string, string> } }).selector.matchLabels,
        podLabels,
      ),
    );
    const monitor = find(base.objects, 'ServiceMonitor');
    const monitorSpec = monitor.spec as {
      selector: { matchLabels: Record<string, string> };
      endpoints: Array<{ port: string }>;
    };
    assert.ok(selects(monitorSpec.selector.matchLabels, service.metadata.labels));
    const servicePortNames = (service.spec as { ports: Array<{ name: string }> }).ports.map(
      (port) => port.name,
    );
    for (const endpoint of monitorSpec.endpoints) assert.ok(servicePortNames.includes(endpoint.port));
    const hpa = find(base.objects, 'HorizontalPodAutoscaler');
    const target = (hpa.spec as { scaleTargetRef: { kind: string; name: string } }).scaleTargetRef;
    assert.deepEqual([target.kind, target.name], ['Deployment', deployment.metadata.name]);
    assert.equal((deployment.spec as { replicas?: number }).replicas, undefined, 'the HPA owns replicas');
  });
});

function serviceMonitorPath(objects: KubeObject[]): string {
  const monitor = find(objects, 'ServiceMonitor');
  return (monitor.spec as { endpoints: Array<{ path: string }> }).endpoints[0]?.path ?? '/metrics';
}
