import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { loadConfig } from '../src/config/load.js';
import { META_FLAGS, SETTINGS } from '../src/config/settings.js';
import { instructionsOf, parseDockerfile } from './helpers/dockerfile.js';
import { type KubeObject, readObjects, renderKustomization } from './helpers/kustomize.js';
import { spawnServer } from './helpers/server.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const K8S = join(ROOT, 'k8s');
const packageVersion = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string })
  .version;

/** Every YAML file under k8s/, relative to it. */
function yamlFiles(directory = K8S): string[] {
  return readdirSync(directory).flatMap((name) => {
    const path = join(directory, name);
    if (statSync(path).isDirectory()) return yamlFiles(path);
    return /\.ya?ml$/.test(name) ? [relative(K8S, path)] : [];
  });
}

/** The kubernetes-models module of an apiVersion/kind (the Prometheus Operator's CRDs come from its own package). */
function modelModule(object: KubeObject): string {
  const [group, version] = object.apiVersion.includes('/')
    ? object.apiVersion.split('/')
    : ['', object.apiVersion];
  return group === 'monitoring.coreos.com'
    ? `@kubernetes-models/prometheus-operator/${group}/${version}/${object.kind}`
    : `kubernetes-models/${group === '' ? '' : `${group}/`}${version}/${object.kind}`;
}

/** The kubernetes-models class that holds the published OpenAPI schema for an apiVersion/kind. */
async function modelFor(object: KubeObject): Promise<{ validate(): void }> {
  const module = modelModule(object);
  const exports = (await import(module)) as Record<string, new (data: unknown) => { validate(): void }>;
  const Model = exports[object.kind];
  assert.ok(Model, `${module} exports no ${object.kind}`);
  return new Model(object);
}

/**
 * Types every object as the kubernetes-models interface for its kind (generated
 * from the same OpenAPI schemas) and lets TypeScript's excess-property check
 * find fields the API does not have: JSON-schema validation alone accepts them,
 * and kubectl's strict field validation would refuse them on apply.
 */
function unknownFields(objects: Array<{ file: string; object: KubeObject }>): string[] {
  const lines: string[] = [];
  for (const [index, { object }] of objects.entries()) {
    const module = modelModule(object);
    lines.push(`import type { I${object.kind} as T${index} } from '${module}';`);
    lines.push(`export const m${index}: T${index} = ${JSON.stringify(object)};`);
  }
  // A virtual file at the repository root resolves node_modules as the tests do.
  const virtual = join(ROOT, '__k8s_manifests__.ts');
  const options: ts.CompilerOptions = {
    strict: true,
    noEmit: true,
    skipLibCheck: true,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    target: ts.ScriptTarget.ES2022,
    types: [],
  };
  const host = ts.createCompilerHost(options);
  const source = lines.join('\n');
  const getSourceFile = host.getSourceFile.bind(host);
  host.getSourceFile = (fileName, language, onError) =>
    fileName === virtual
      ? ts.createSourceFile(fileName, source, language)
      : getSourceFile(fileName, language, onError);
  const fileExists = host.fileExists.bind(host);
  host.fileExists = (fileName) => fileName === virtual || fileExists(fileName);
  const program = ts.createProgram([virtual], options, host);
  return ts.getPreEmitDiagnostics(program).map((diagnostic) => {
    const message = ts.flattenDiagnosticMessageText(diagnostic.messageText, ' ');
    const line = diagnostic.file?.getLineAndCharacterOfPosition(diagnostic.start ?? 0).line ?? 0;
    const entry = objects[Math.floor(line / 2)];
    return entry ? `${entry.file}: ${entry.object.kind}/${entry.object.metadata.name}: ${message}` : message;
  });
}

type Probe = { httpGet: { path: string; port: string | number } };
interface ContainerSpec {
  name: string;
  image: string;
  args?: string[];
  ports: Array<{ name: string; containerPort: number }>;
  livenessProbe: Probe;
  readinessProbe: Probe;
  startupProbe?: Probe;
  lifecycle: { preStop: { sleep?: { seconds: number } } };
  resources: { requests: Record<string, string>; limits: Record<string, string> };
  securityContext: Record<string, unknown> & { capabilities: { drop: string[] } };
  volumeMounts: Array<{ name: string; mountPath: string }>;
}
interface PodSpec {
  terminationGracePeriodSeconds: number;
  securityContext: Record<string, unknown> & { seccompProfile: { type: string } };
  containers: ContainerSpec[];
  volumes: Array<{ name: string; configMap?: { name: string } }>;
}

function find(objects: KubeObject[], kind: string, name?: string): KubeObject {
  const found = objects.filter(
    (object) => object.kind === kind && (name === undefined || object.metadata.name === name),
  );
  assert.equal(found.length, 1, `expected one ${kind}${name ? ` ${name}` : ''}`);
  return found[0] as KubeObject;
}

const podSpecOf = (deployment: KubeObject): PodSpec =>
  (deployment.spec as { template: { spec: PodSpec } }).template.spec;

/** The wshub config a Deployment mounts from its ConfigMap, written to a temp dir standing for the mount path. */
function mountedConfig(objects: KubeObject[], scratch: string): { args: string[]; file: string } {
  const pod = podSpecOf(find(objects, 'Deployment', 'wshub'));
  const container = pod.containers[0] as ContainerSpec;
  const mount = container.volumeMounts.find((volumeMount) => volumeMount.name === 'config');
  assert.ok(mount, 'the config volume is mounted');
  const volume = pod.volumes.find((candidate) => candidate.name === mount.name);
  const configMap = find(objects, 'ConfigMap', volume?.configMap?.name);
  const data = configMap.data as Record<string, string>;
  const configArg = (container.args ?? []).find((arg) => arg.startsWith(`--${META_FLAGS.configFile.flag}=`));
  assert.ok(configArg, 'the container passes --config-file');
  const path = configArg.split('=')[1] as string;
  assert.ok(path.startsWith(`${mount.mountPath}/`), `${path} is inside the mount ${mount.mountPath}`);
  const key = path.slice(mount.mountPath.length + 1);
  assert.ok(data[key], `ConfigMap ${configMap.metadata.name} has the key ${key}`);
  const file = join(scratch, key);
  writeFileSync(file, data[key]);
  const args = (container.args ?? []).map((arg) => arg.replace(mount.mountPath, scratch));
  return { args, file };
}

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

  it('terminationGracePeriodSeconds outlasts the preStop sleep plus the shutdown deadline', () => {
    const { file } = mountedConfig(base.objects, scratch);
    const { config } = loadConfig([`--config-file=${file}`], {});
    const pod = podSpecOf(find(base.objects, 'Deployment', 'wshub'));
    const preStop = (pod.containers[0] as ContainerSpec).lifecycle.preStop.sleep?.seconds;
    assert.ok(preStop !== undefined && preStop >= 3, 'a preStop sleep lets endpoint removal propagate');
    const slack = pod.terminationGracePeriodSeconds - preStop - config.shutdownTimeout / 1000;
    assert.ok(
      slack >= 2,
      `grace ${pod.terminationGracePeriodSeconds}s leaves ${slack}s after preStop and shutdown`,
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
