import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { Redis } from 'ioredis';
import { type SpawnedServer, spawnServer } from './server.js';

const MISSING =
  'redis-server is not on PATH: the backplane tests need a real Redis. ' +
  'Install the Debian package redis-server (apt-get install -y redis-server); .ci/run does this.';

/**
 * A private redis-server for one test file: loopback only, an ephemeral port,
 * persistence off. kill() simulates a crash, start() brings it back on the
 * same port (nodes keep their configured URL), stop() cleans up.
 */
/** Serve TLS only, on the server's port (redis-server --tls-port), with these files. */
export interface RedisTlsFiles {
  readonly certFile: string;
  readonly keyFile: string;
  readonly caFile: string;
}

export class RedisServer {
  private child: ChildProcess | undefined;
  private exited: Promise<unknown> = Promise.resolve();

  private constructor(
    readonly port: number,
    private readonly binary: string,
    private readonly extraArgs: readonly string[],
    private readonly tls: RedisTlsFiles | undefined,
    private readonly configFile: string | undefined,
  ) {}

  get url(): string {
    return `${this.tls ? 'rediss' : 'redis'}://127.0.0.1:${this.port}`;
  }

  get running(): boolean {
    return this.child !== undefined;
  }

  /** Starts a server on a free port. Fails (never skips) when redis-server is not installed. */
  static async start(
    options: {
      binary?: string;
      args?: readonly string[];
      tls?: RedisTlsFiles;
      /** A config file first on the command line (Sentinel needs one it can write to). */
      configFile?: string;
    } = {},
  ): Promise<RedisServer> {
    let lastError: unknown;
    for (let attempt = 0; attempt < 5; attempt++) {
      const server = new RedisServer(
        await freePort(),
        options.binary ?? 'redis-server',
        options.args ?? [],
        options.tls,
        options.configFile,
      );
      try {
        await server.start();
        return server;
      } catch (error) {
        if ((error as Error).message === MISSING) throw error;
        lastError = error; // another process took the port in between: pick another
      }
    }
    throw lastError;
  }

  /** (Re)starts redis-server on this.port. */
  async start(): Promise<void> {
    if (this.child) return;
    const child = spawn(
      this.binary,
      [
        ...(this.configFile === undefined ? [] : [this.configFile]),
        ...(this.tls
          ? [
              '--port',
              '0',
              '--tls-port',
              String(this.port),
              '--tls-cert-file',
              this.tls.certFile,
              '--tls-key-file',
              this.tls.keyFile,
              '--tls-ca-cert-file',
              this.tls.caFile,
              '--tls-auth-clients',
              'no',
            ]
          : ['--port', String(this.port)]),
        '--bind',
        '127.0.0.1',
        '--save',
        '',
        '--appendonly',
        'no',
        '--daemonize',
        'no',
        '--loglevel',
        'notice',
        ...this.extraArgs,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const spawned = new Promise<void>((resolve, reject) => {
      child.once('spawn', resolve);
      child.once('error', (error: NodeJS.ErrnoException) =>
        reject(error.code === 'ENOENT' ? new Error(MISSING) : error),
      );
    });
    await spawned;
    const exited = once(child, 'exit');
    let output = '';
    const ready = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`redis-server not ready within 10s:\n${output}`)),
        10_000,
      );
      child.stdout?.setEncoding('utf8');
      child.stdout?.on('data', function collectUntilReady(chunk: string) {
        if (output.length < 64 * 1024) output += chunk;
        // A Sentinel never says "Ready": it is once it has its id.
        if (output.includes('Ready to accept connections') || output.includes('Sentinel ID is')) {
          clearTimeout(timer);
          resolve();
        }
      });
      exited.then(() => {
        clearTimeout(timer);
        reject(new Error(`redis-server exited before it was ready:\n${output}`));
      });
    });
    child.stderr?.resume();
    this.child = child;
    this.exited = exited;
    try {
      await ready;
    } catch (error) {
      this.child = undefined;
      child.kill('SIGKILL');
      throw error;
    }
  }

  /** Reads one INFO field over a fresh connection (which itself counts as a connection received). */
  async info(field: string): Promise<string | undefined> {
    const client = new Redis({
      host: '127.0.0.1',
      port: this.port,
      lazyConnect: true,
      maxRetriesPerRequest: 0,
      tls: this.tls ? { ca: readFileSync(this.tls.caFile) } : undefined,
    });
    try {
      await client.connect();
      const text = await client.info();
      return new RegExp(`^${field}:(.*)$`, 'm').exec(text)?.[1]?.trim();
    } finally {
      client.disconnect();
    }
  }

  /** SIGKILL: a crash, connections drop without a goodbye. Resolves once the process is gone. */
  async kill(): Promise<void> {
    await this.signal('SIGKILL');
  }

  /** SIGSTOP: a frozen server (connections stay open, nothing is answered) until resume(). */
  pause(): void {
    this.child?.kill('SIGSTOP');
  }

  /** SIGCONT after pause(). */
  resume(): void {
    this.child?.kill('SIGCONT');
  }

  /** SIGTERM and wait. Idempotent; for after(). */
  async stop(): Promise<void> {
    await this.signal('SIGTERM');
  }

  private async signal(signal: NodeJS.Signals): Promise<void> {
    const child = this.child;
    if (!child) return;
    this.child = undefined;
    child.kill(signal);
    await this.exited;
  }
}

async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  server.close();
  await once(server, 'close');
  return port;
}

/** A broadcast-mode wshub process joined to `redis`, with a short backoff so tests stay fast. */
export async function spawnNode(
  redis: RedisServer,
  extra: string[] = [],
  env: Record<string, string> = {},
): Promise<SpawnedServer> {
  const node = await spawnServer(
    [
      '--mode=broadcast',
      '--stats-interval=0',
      `--backplane=${redis.url}`,
      '--backplane-reconnect-max=100ms',
      ...extra,
    ],
    env,
  );
  try {
    await node.stdout.waitFor(/Backplane connected to rediss?:\/\//);
  } catch (error) {
    node.kill('SIGKILL');
    throw error;
  }
  return node;
}
