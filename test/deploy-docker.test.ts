import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import {
  cpSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join, relative } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { SETTINGS } from '../src/config/settings.js';
import { TestClient } from './helpers/clients.js';
import {
  type Dockerfile,
  instructionsOf,
  parseDockerfile,
  resolvedImage,
  type Stage,
} from './helpers/dockerfile.js';
import { LineLog } from './helpers/server.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const dockerfile = parseDockerfile(readFileSync(join(ROOT, 'Dockerfile'), 'utf8'));
const finalStage = dockerfile.stages.at(-1) as Stage;
const only = (stage: Stage, keyword: string) => {
  const found = instructionsOf(stage, keyword);
  assert.equal(found.length, 1, `expected exactly one ${keyword} in the final stage`);
  return found[0] as NonNullable<(typeof found)[0]>;
};

describe('Dockerfile facts', () => {
  it('is multi-stage: dev dependencies to build, production ones to run', () => {
    assert.ok(dockerfile.stages.length >= 2);
    const build = dockerfile.stages.find((stage) =>
      instructionsOf(stage, 'RUN').some((run) => run.args.includes('npm run build')),
    );
    assert.ok(build, 'a stage runs npm run build');
    assert.ok(
      instructionsOf(build, 'RUN').some((run) => /npm ci(?![^&]*--omit=dev)/.test(run.args)),
      'the build stage installs dev dependencies',
    );
    const copies = instructionsOf(finalStage, 'COPY');
    const fromStages = copies.map((copy) => copy.options.from).filter((from) => from !== undefined);
    assert.ok(fromStages.length >= 1, 'the final stage copies from earlier stages');
    const nodeModulesFrom = copies.find((copy) => copy.rest.includes('node_modules'))?.options.from;
    const depsStage = dockerfile.stages.find((stage) => stage.name === nodeModulesFrom);
    assert.ok(depsStage, 'node_modules come from a named stage');
    assert.ok(
      instructionsOf(depsStage, 'RUN').some((run) => run.args.includes('npm ci --omit=dev')),
      'the runtime node_modules are a production install',
    );
  });

  it('runs on a current Node LTS line in a small base image whose choice is explained', () => {
    const major = Number(dockerfile.globalArgs.NODE_MAJOR);
    assert.ok(major >= 22 && major % 2 === 0, `Node ${major} is not an LTS line`);
    const runtime = resolvedImage(dockerfile, finalStage);
    assert.match(runtime, /distroless|slim|alpine/);
    assert.match(runtime, new RegExp(`nodejs${major}|node:${major}`));
    for (const stage of dockerfile.stages.slice(0, -1)) {
      assert.match(
        resolvedImage(dockerfile, stage),
        new RegExp(`^node:${major}-`),
        'build with the same Node',
      );
    }
    const explained = dockerfile.comments.join(' ');
    assert.match(explained, /distroless/i);
    assert.match(explained, /glibc/i);
  });

  it('runs as a numeric non-root user (Kubernetes runAsNonRoot can verify it)', () => {
    const [uid] = only(finalStage, 'USER').rest.split(':');
    assert.match(uid as string, /^\d+$/);
    assert.notEqual(Number(uid), 0);
  });

  it('exposes the default WebSocket and metrics ports', () => {
    const ports = only(finalStage, 'EXPOSE').rest.split(/\s+/).map(Number);
    assert.deepEqual(ports, [SETTINGS.port.default, SETTINGS.metricsPort.default]);
    assert.deepEqual(ports, [3003, 9100]);
  });

  it('stops with SIGTERM, which wshub as PID 1 handles itself', () => {
    assert.equal(only(finalStage, 'STOPSIGNAL').rest, 'SIGTERM');
    const entrypoint = only(finalStage, 'ENTRYPOINT').exec;
    assert.ok(entrypoint, 'ENTRYPOINT in exec form, so no shell sits between the signal and node');
    assert.match(entrypoint[0] as string, /node$/);
    assert.equal(entrypoint[1], 'bin/wshub.js');
  });

  it('has a shell-free HEALTHCHECK against /livez on the metrics port', () => {
    const check = only(finalStage, 'HEALTHCHECK');
    assert.ok(check.exec, 'exec form: distroless has no shell');
    assert.match(check.exec[0] as string, /node$/);
    assert.match(check.exec.join(' '), /\/livez/);
    assert.match(check.exec.join(' '), new RegExp(`WSHUB_METRICS_PORT\\|\\|${SETTINGS.metricsPort.default}`));
  });

  it("has a bufferutil native binding for the runtime image's libc, and checks that it loads", () => {
    const runtime = resolvedImage(dockerfile, finalStage);
    const libc = /alpine/.test(runtime) ? 'musl' : 'glibc';
    const prebuilds = join(ROOT, 'node_modules/bufferutil/prebuilds/linux-x64');
    const binaries = readdirSync(prebuilds).map((file) => readFileSync(join(prebuilds, file)));
    // A glibc binary references versioned GLIBC_ symbols; a musl one links libc.musl.
    const forLibc = binaries.filter((binary) =>
      libc === 'glibc' ? binary.includes('GLIBC_') : binary.includes('musl'),
    );
    assert.ok(forLibc.length > 0, `no linux-x64 ${libc} prebuild of bufferutil for ${runtime}`);
    const loads = instructionsOf(finalStage, 'RUN').some((run) =>
      run.exec?.join(' ').includes("require('node-gyp-build')('node_modules/bufferutil')"),
    );
    assert.ok(loads, 'the runtime stage proves the binding loads against its own libc');
  });

  it('.dockerignore admits exactly what the build copies from the context', () => {
    const ignore = readDockerignore();
    const contextSources = dockerfile.stages.flatMap((stage) =>
      instructionsOf(stage, 'COPY')
        .filter((copy) => copy.options.from === undefined)
        .flatMap((copy) => copy.rest.split(/\s+/).slice(0, -1)),
    );
    for (const source of contextSources) assert.ok(ignore(source), `${source} is excluded by .dockerignore`);
    for (const excluded of [
      'node_modules/ws/package.json',
      'dist/src/cli.js',
      '.git/HEAD',
      'test/echo.test.ts',
    ]) {
      assert.equal(ignore(excluded), false, `${excluded} should stay out of the context`);
    }
    assert.equal(ignore('src/config/duration.test.ts'), false, 'unit tests stay out of the image');
  });
});

describe('Dockerfile recipe replayed outside Docker', () => {
  const scratch = mkdtempSync(join(tmpdir(), 'wshub-docker-'));
  after(() => rmSync(scratch, { recursive: true, force: true }));

  it('builds, starts from the runtime stage, serves a client, passes its health check and exits 0 on SIGTERM', async () => {
    const stageDirs = replay(dockerfile, scratch);
    const app = stageDirs.get(finalStage) as string;
    assert.deepEqual(readdirSync(app).sort(), ['bin', 'dist', 'node_modules', 'package.json']);
    assert.equal(existsSync(join(app, 'node_modules/typescript')), false, 'no dev dependencies at run time');
    assert.ok(existsSync(join(app, 'node_modules/ws')));

    const env = envOf(finalStage);
    const entrypoint = [
      ...(only(finalStage, 'ENTRYPOINT').exec ?? []),
      ...(only(finalStage, 'CMD').exec ?? []),
    ];
    const [, ...args] = entrypoint.map(localNode);
    const child = spawn(
      process.execPath,
      [...args, '--host=127.0.0.1', '--port=0', '--metrics-host=127.0.0.1', '--metrics-port=0'],
      { cwd: app, env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const stdout = new LineLog();
    const stderr: string[] = [];
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      for (const line of chunk.split('\n')) if (line !== '') stdout.push(line);
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => stderr.push(chunk));
    const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
    try {
      const port = Number(/:(\d+)$/.exec(await stdout.waitFor(/Starting WebSocket server on \S+:\d+$/))?.[1]);
      const metricsPort = Number(
        /:(\d+)$/.exec(await stdout.waitFor(/Starting metrics server on \S+:\d+$/))?.[1],
      );

      const client = await TestClient.open(`ws://127.0.0.1:${port}/ws`);
      await client.send('from the image');
      assert.equal((await client.next()).data.toString(), 'from the image');
      // The console inlines uPlot, a production dependency read from the image's node_modules (issue 19).
      const consolePage = await fetch(`http://127.0.0.1:${port}/`);
      assert.equal(consolePage.status, 200);
      assert.match(await consolePage.text(), /var uPlot=function/);

      const healthcheck = (only(finalStage, 'HEALTHCHECK').exec ?? []).map(localNode);
      const healthy = spawnSync(healthcheck[0] as string, healthcheck.slice(1), {
        cwd: app,
        env: { ...env, WSHUB_METRICS_PORT: String(metricsPort) },
        timeout: 10_000,
      });
      assert.equal(healthy.status, 0, `HEALTHCHECK failed: ${healthy.stderr}`);

      child.kill('SIGTERM');
      assert.equal((await client.closed).code, 1001);
      assert.equal(await exited, 0, stderr.join(''));
      await stdout.waitFor(/Shutdown complete/);
    } finally {
      child.kill('SIGKILL');
    }
  });
});

const DEV_INSTALL = /^npm ci --ignore-scripts --no-audit --no-fund$/;

/** The runtime image's node binary stands for this process's node. */
function localNode(word: string): string {
  return /^\/nodejs\/bin\/node$|^node$/.test(word) ? process.execPath : word;
}

function envOf(stage: Stage): Record<string, string> {
  const env: Record<string, string> = {};
  for (const instruction of instructionsOf(stage, 'ENV')) {
    const [name, value = ''] = instruction.rest.split('=', 2);
    env[name as string] = value;
  }
  return env;
}

/**
 * Runs each stage's WORKDIR/COPY/RUN in its own directory (standing for /app),
 * the way `docker build` would, with this machine's node and npm.
 */
function replay(file: Dockerfile, scratch: string): Map<Stage, string> {
  const dirs = new Map<Stage, string>();
  const ignore = readDockerignore();
  for (const [index, stage] of file.stages.entries()) {
    const dir = join(scratch, stage.name ?? `stage${index}`);
    dirs.set(stage, dir);
    const env: Record<string, string> = { ...(process.env as Record<string, string>), ...envOf(stage) };
    for (const instruction of stage.instructions) {
      switch (instruction.keyword) {
        case 'WORKDIR':
          assert.equal(instruction.rest, '/app', 'the replay maps WORKDIR /app to a temp dir');
          break;
        case 'COPY': {
          const words = instruction.rest.split(/\s+/);
          const sources = words.slice(0, -1);
          const target = join(dir, words.at(-1) as string);
          const intoDir = sources.length > 1 || (words.at(-1) as string).endsWith('/');
          const fromName = instruction.options.from;
          const fromStage = file.stages.find((candidate) => candidate.name === fromName);
          assert.ok(fromName === undefined || fromStage, `COPY --from=${fromName}: no such stage`);
          for (const source of sources) {
            const path = fromStage
              ? join(dirs.get(fromStage) as string, source.replace(/^\/app\//, ''))
              : join(ROOT, source);
            const isDir = statSync(path).isDirectory();
            cpSync(path, isDir || !intoDir ? target : join(target, basename(source)), {
              recursive: true,
              filter: (copied) => fromStage !== undefined || ignore(relative(ROOT, copied) || '.'),
            });
          }
          break;
        }
        case 'RUN': {
          if (DEV_INSTALL.test(instruction.rest)) {
            // The full install with dev dependencies is what `npm ci` made of the same lockfile
            // for this checkout: link it rather than unpack ~50 MB again. The production
            // install below runs for real.
            assert.ok(
              existsSync(join(dir, 'package-lock.json')),
              'package-lock.json is copied before npm ci',
            );
            symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'), 'dir');
            break;
          }
          const result = instruction.exec
            ? spawnSync(localNode(instruction.exec[0] as string), instruction.exec.slice(1).map(localNode), {
                cwd: dir,
                env,
                encoding: 'utf8',
              })
            : spawnSync('bash', ['-euo', 'pipefail', '-c', instruction.rest], {
                cwd: dir,
                env,
                encoding: 'utf8',
              });
          assert.equal(
            result.status,
            0,
            `RUN ${instruction.rest} failed:\n${result.stdout}\n${result.stderr}`,
          );
          break;
        }
        default:
          break;
      }
    }
  }
  return dirs;
}

/** .dockerignore as a predicate: true when a context path is sent to the build. Last matching line wins. */
function readDockerignore(): (path: string) => boolean {
  const rules = readFileSync(join(ROOT, '.dockerignore'), 'utf8')
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'))
    .map((line) => {
      const negated = line.startsWith('!');
      const pattern = (negated ? line.slice(1) : line).replace(/\/$/, '');
      const source = pattern
        .split('**/')
        .map((part) => part.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^/]*'))
        .join('(?:.*/)?');
      const regex = new RegExp(`^${source}$`);
      return { negated, regex };
    });
  return (path) => {
    if (path === '.') return true;
    const prefixes = path.split('/').map((_, i, parts) => parts.slice(0, i + 1).join('/'));
    let included = true;
    for (const rule of rules) {
      if (prefixes.some((prefix) => rule.regex.test(prefix))) included = rule.negated;
    }
    return included;
  };
}
