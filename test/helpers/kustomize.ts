import { readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { parseAllDocuments } from 'yaml';

/** A Kubernetes object as parsed from YAML. */
export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; labels?: Record<string, string>; [key: string]: unknown };
  [key: string]: unknown;
}

/** Every YAML document in a file (empty documents dropped); throws on a syntax error. */
export function readObjects(file: string): KubeObject[] {
  const documents = parseAllDocuments(readFileSync(file, 'utf8'), { uniqueKeys: true });
  const list = Array.isArray(documents) ? documents : [documents];
  return list.flatMap((doc) => {
    if (doc.errors.length > 0) throw new Error(`${file}: ${doc.errors[0]?.message}`);
    const value = doc.toJS() as KubeObject | null;
    return value === null ? [] : [value];
  });
}

interface JsonPatchOperation {
  readonly op: 'add' | 'replace' | 'remove';
  readonly path: string;
  readonly value?: unknown;
}

interface Kustomization {
  resources?: string[];
  patches?: Array<{ path?: string; patch?: string; target: { kind: string; name: string } }>;
  images?: Array<{ name: string; newName?: string; newTag?: string }>;
  labels?: Array<{ pairs: Record<string, string>; includeSelectors?: boolean }>;
  [key: string]: unknown;
}

const SUPPORTED = new Set(['apiVersion', 'kind', 'resources', 'patches', 'images', 'labels']);

export interface Rendered {
  readonly objects: KubeObject[];
  /** Every file read, relative to the kustomization's directory. */
  readonly files: string[];
}

/**
 * Renders a kustomization the way `kubectl apply -k` would, for the subset of
 * kustomize this project uses: resources (files and directories), JSON 6902
 * patches with a target, images and metadata labels. Anything else is an error,
 * so a manifest cannot rely on a feature this check would silently ignore.
 */
export function renderKustomization(directory: string): Rendered {
  const file = join(directory, 'kustomization.yaml');
  const [kustomization] = readObjects(file) as unknown as Kustomization[];
  if (!kustomization) throw new Error(`${file} is empty`);
  for (const key of Object.keys(kustomization)) {
    if (!SUPPORTED.has(key))
      throw new Error(`${file}: the test's kustomize renderer does not support ${key}`);
  }
  const objects: KubeObject[] = [];
  const files = [relative(directory, file)];
  for (const resource of kustomization.resources ?? []) {
    const path = join(directory, resource);
    if (statSync(path).isDirectory()) {
      const inner = renderKustomization(path);
      objects.push(...inner.objects);
      files.push(...inner.files.map((inside) => relative(directory, join(path, inside))));
    } else {
      objects.push(...readObjects(path));
      files.push(relative(directory, path));
    }
  }
  for (const patch of kustomization.patches ?? []) {
    const target = objects.find(
      (object) => object.kind === patch.target.kind && object.metadata.name === patch.target.name,
    );
    if (!target) throw new Error(`${file}: patch target ${patch.target.kind}/${patch.target.name} not found`);
    const text = patch.path ? readFileSync(join(directory, patch.path), 'utf8') : (patch.patch ?? '');
    if (patch.path) files.push(patch.path);
    for (const operation of parseOperations(text, file)) applyOperation(target, operation, file);
  }
  for (const image of kustomization.images ?? []) {
    for (const container of containersOf(objects)) {
      const [name, tag] = splitImage(container.image);
      if (name !== image.name) continue;
      container.image = `${image.newName ?? name}:${image.newTag ?? tag}`;
    }
  }
  for (const { pairs, includeSelectors } of kustomization.labels ?? []) {
    if (includeSelectors) throw new Error(`${file}: labels.includeSelectors is not supported`);
    for (const object of objects) object.metadata.labels = { ...object.metadata.labels, ...pairs };
  }
  return { objects, files: [...new Set(files)] };
}

function parseOperations(text: string, file: string): JsonPatchOperation[] {
  const documents = parseAllDocuments(text);
  const first = Array.isArray(documents) ? documents[0] : documents;
  const operations = first?.toJS() as unknown;
  if (!Array.isArray(operations)) throw new Error(`${file}: patches must be JSON 6902 operation lists`);
  return operations as JsonPatchOperation[];
}

function applyOperation(target: KubeObject, operation: JsonPatchOperation, file: string): void {
  const segments = operation.path
    .split('/')
    .slice(1)
    .map((segment) => segment.replace(/~1/g, '/').replace(/~0/g, '~'));
  const last = segments.pop();
  if (last === undefined) throw new Error(`${file}: empty patch path`);
  let node: unknown = target;
  for (const segment of segments) {
    node = (node as Record<string, unknown>)?.[segment];
    if (node === undefined || node === null)
      throw new Error(`${file}: patch path ${operation.path} not found`);
  }
  const parent = node as Record<string, unknown> | unknown[];
  if (Array.isArray(parent)) {
    const index = last === '-' ? parent.length : Number(last);
    if (operation.op === 'add') parent.splice(index, 0, operation.value);
    else if (operation.op === 'replace') parent[index] = operation.value;
    else parent.splice(index, 1);
    return;
  }
  if (operation.op !== 'add' && !(last in parent)) {
    throw new Error(`${file}: patch path ${operation.path} not found for ${operation.op}`);
  }
  if (operation.op === 'remove') delete parent[last];
  else parent[last] = operation.value;
}

interface Container {
  name: string;
  image: string;
  [key: string]: unknown;
}

export function containersOf(objects: KubeObject[]): Container[] {
  return objects.flatMap((object) => {
    const spec = (object.spec as { template?: { spec?: { containers?: Container[] } } } | undefined)?.template
      ?.spec;
    return spec?.containers ?? [];
  });
}

function splitImage(image: string): [string, string] {
  const colon = image.lastIndexOf(':');
  return colon > image.lastIndexOf('/') ? [image.slice(0, colon), image.slice(colon + 1)] : [image, 'latest'];
}
