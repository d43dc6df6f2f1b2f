import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { META_FLAGS } from '../../src/config/settings.js';
import type { KubeObject } from './kustomize.js';
import { typeProblems } from './typecheck.js';

/** Shared by the Kubernetes manifest tests: finding, validating and reading the manifests in k8s/. */
export const ROOT = fileURLToPath(new URL('../../..', import.meta.url));
export const K8S = join(ROOT, 'k8s');
export const packageVersion = (
  JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }
).version;

/** Every YAML file under k8s/, relative to it. */
export function yamlFiles(directory = K8S): string[] {
  return readdirSync(directory).flatMap((name) => {
    const path = join(directory, name);
    if (statSync(path).isDirectory()) return yamlFiles(path);
    return /\.ya?ml$/.test(name) ? [relative(K8S, path)] : [];
  });
}

/** The kubernetes-models module of an apiVersion/kind (the Prometheus Operator's CRDs come from its own package). */
export function modelModule(object: KubeObject): string {
  const [group, version] = object.apiVersion.includes('/')
    ? object.apiVersion.split('/')
    : ['', object.apiVersion];
  return group === 'monitoring.coreos.com'
    ? `@kubernetes-models/prometheus-operator/${group}/${version}/${object.kind}`
    : `kubernetes-models/${group === '' ? '' : `${group}/`}${version}/${object.kind}`;
}

/** The kubernetes-models class that holds the published OpenAPI schema for an apiVersion/kind. */
export async function modelFor(object: KubeObject): Promise<{ validate(): void }> {
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
export function unknownFields(objects: Array<{ file: string; object: KubeObject }>): string[] {
  const lines: string[] = [];
  for (const [index, { object }] of objects.entries()) {
    const module = modelModule(object);
    lines.push(`import type { I${object.kind} as T${index} } from '${module}';`);
    lines.push(`export const m${index}: T${index} = ${JSON.stringify(object)};`);
  }
  return typeProblems(lines.join('\n')).map(({ line, message }) => {
    const entry = objects[Math.floor(line / 2)];
    return entry ? `${entry.file}: ${entry.object.kind}/${entry.object.metadata.name}: ${message}` : message;
  });
}

export type Probe = { httpGet: { path: string; port: string | number } };
export interface ContainerSpec {
  name: string;
  image: string;
  args?: string[];
  ports: Array<{ name: string; containerPort: number }>;
  livenessProbe: Probe;
  readinessProbe: Probe;
  startupProbe?: Probe;
  lifecycle?: { preStop?: { sleep?: { seconds: number } } };
  resources: { requests: Record<string, string>; limits: Record<string, string> };
  securityContext: Record<string, unknown> & { capabilities: { drop: string[] } };
  volumeMounts: Array<{ name: string; mountPath: string }>;
}
export interface PodSpec {
  terminationGracePeriodSeconds: number;
  securityContext: Record<string, unknown> & { seccompProfile: { type: string } };
  containers: ContainerSpec[];
  volumes: Array<{ name: string; configMap?: { name: string } }>;
}

export function find(objects: KubeObject[], kind: string, name?: string): KubeObject {
  const found = objects.filter(
    (object) => object.kind === kind && (name === undefined || object.metadata.name === name),
  );
  assert.equal(found.length, 1, `expected one ${kind}${name ? ` ${name}` : ''}`);
  return found[0] as KubeObject;
}

export const podSpecOf = (deployment: KubeObject): PodSpec =>
  (deployment.spec as { template: { spec: PodSpec } }).template.spec;

/** The wshub config a Deployment mounts from its ConfigMap, written to a temp dir standing for the mount path. */
export function mountedConfig(objects: KubeObject[], scratch: string): { args: string[]; file: string } {
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
