import cluster, { type Worker } from 'node:cluster';
import { availableParallelism } from 'node:os';
import type { IpcLink } from '../backplane/ipc.js';
import { type ErrorCode, UsageError } from '../errors.js';
import type { Logger } from '../log.js';
import {
  type ClusterMessage,
  COLLECT_REPLY,
  COLLECT_REQUEST,
  CONSOLE_REPLY,
  CONSOLE_REQUEST,
  type Collected,
  decodeClusterMessage,
  LISTENING,
  METRICS_TIMEOUT_MS,
  RELOAD,
  STARTUP_FAILED,
  STATUS,
  STOP,
  sendClusterMessage,
  USER_ACQUIRE,
  USER_GRANT,
  USER_RELEASE,
  type WorkerStatus,
} from './cluster-protocol.js';

/**
 * The primary's side of `--workers` (issue 5, --workers=N|auto): it forks N
 * workers with node:cluster; every worker runs the whole app on the shared
 * WebSocket port (Node's primary accepts and hands connections out
 * round-robin), the primary serves no WebSocket traffic. `WorkerSupervisor`
 * forks, restarts with backoff, keeps each worker's state and last status,
 * collects the workers' metrics and console snapshots (the primary's /metrics
 * and GET /stats merge them: metrics/cluster.ts, console/snapshot.ts), and
 * stops them all. The worker's side is cluster-worker.ts, the messages
 * cluster-protocol.ts.
 */

/** What a worker is doing, as the wshub_workers{state} gauge shows it. A bounded list. */
export const WORKER_STATES = ['starting', 'listening', 'stopping'] as const;
export type WorkerState = (typeof WORKER_STATES)[number];

/** `auto` is one worker per CPU this process may run on. */
export function resolveWorkerCount(setting: number | 'auto'): number {
  return setting === 'auto' ? availableParallelism() : setting;
}

/** The primary's end of one worker's IPC channel. */
export function workerLink(worker: Worker): IpcLink {
  return {
    send(message, callback) {
      if (!worker.isConnected()) {
        callback(new Error('worker disconnected'));
        return;
      }
      worker.send(message, undefined, callback);
    },
    onMessage(listener) {
      worker.on('message', listener);
    },
    onDisconnect(listener) {
      worker.once('disconnect', listener);
    },
    get connected() {
      return worker.isConnected();
    },
  };
}

interface Slot {
  /** 1..count; a restarted worker takes the slot of the one it replaces. */
  readonly index: number;
  worker: Worker;
  /** The primary's end of the worker's IPC channel (protocol messages and the IPC backplane). */
  readonly link: IpcLink;
  state: WorkerState;
  status: WorkerStatus | undefined;
  startupError: { code: string | undefined; message: string } | undefined;
  /** The per-user slots this worker holds (--max-connections-per-user), dropped when it exits. */
  readonly users: Map<string, number>;
}

export interface SupervisorOptions {
  readonly count: number;
  readonly logger: Logger;
  /** How long a worker may take to drain; the primary waits this long plus a grace period. */
  readonly shutdownTimeoutMs: number;
  /** Called with each new worker's IPC link (the IPC backplane's broker attaches here). */
  readonly onWorker?: (link: IpcLink, name: string) => void;
  /** Called when a worker keeps crashing and the supervisor gives up. */
  readonly onGiveUp: () => void;
  /** The cluster's console snapshot, for a worker serving GET /stats (issue 19). */
  readonly consoleSnapshot?: () => Promise<unknown>;
  readonly fork?: () => Worker;
}

/** Restarts within this window count toward the crash-loop limit. */
const RESTART_WINDOW_MS = 60_000;
/** More restarts than this within RESTART_WINDOW_MS: the supervisor gives up (the primary exits 1). */
const MAX_RESTARTS_PER_WINDOW = 10;
const RESTART_DELAY_MIN_MS = 100;
const RESTART_DELAY_MAX_MS = 5000;
/** After the workers' own shutdown deadline, the primary waits this much longer before SIGKILL. */
const STOP_GRACE_MS = 2000;

type Phase = 'starting' | 'running' | 'stopping';

/** The primary's end: forks the workers, restarts crashed ones, stops them all. */
export class WorkerSupervisor {
  /** Workers restarted after an unexpected exit, for wshub_worker_restarts_total. */
  restarts = 0;
  private readonly slots = new Map<Worker, Slot>();
  private readonly recentRestarts: number[] = [];
  private readonly restartTimers = new Set<NodeJS.Timeout>();
  private phase: Phase = 'starting';
  private started: { resolve: (port: number) => void; reject: (error: Error) => void } | undefined;
  private allExited: (() => void) | undefined;
  private nextCollectRequest = 0;
  private readonly collectRequests = new Map<number, (value: unknown) => void>();
  /** Every user's slots over all workers (issue 15): the cluster's --max-connections-per-user. */
  private readonly users = new Map<string, number>();

  constructor(private readonly options: SupervisorOptions) {}

  /** Forks every worker; resolves with the WebSocket port once all of them listen. */
  start(): Promise<number> {
    // Advanced serialization (the V8 serializer): the IPC backplane's Buffers travel as bytes, not JSON.
    if (this.options.fork === undefined) cluster.setupPrimary({ serialization: 'advanced' });
    return new Promise((resolve, reject) => {
      this.started = { resolve, reject };
      for (let index = 1; index <= this.options.count; index++) this.fork(index);
    });
  }

  stateCounts(): Record<WorkerState, number> {
    const counts: Record<WorkerState, number> = { starting: 0, listening: 0, stopping: 0 };
    for (const slot of this.slots.values()) counts[slot.state]++;
    return counts;
  }

  /** Open WebSocket connections of all workers, as last reported (at most STATUS_INTERVAL_MS old). */
  totalConnections(): number {
    let total = 0;
    for (const slot of this.slots.values()) total += slot.status?.connections ?? 0;
    return total;
  }

  /** Ready: every worker listens and reports itself ready. */
  allReady(): boolean {
    let ready = 0;
    for (const slot of this.slots.values()) {
      if (slot.state === 'listening' && slot.status?.ready === true) ready++;
    }
    return ready === this.options.count;
  }

  /** One line for /readyz: "2 of 2 listening" and what any worker reports failing. */
  describe(): string {
    const { listening } = this.stateCounts();
    const problems: string[] = [];
    for (const slot of [...this.slots.values()].sort((a, b) => a.index - b.index)) {
      const failing = slot.status?.failing ?? [];
      if (slot.state === 'listening' && failing.length > 0) {
        problems.push(`worker ${slot.index}: ${failing.join(', ')}`);
      }
    }
    return `${listening} of ${this.options.count} listening${problems.length ? ` (${problems.join('; ')})` : ''}`;
  }

  /** Every listening worker's metrics (registry.getMetricsAsJSON()); a worker that does not answer in time is left out. */
  async collectMetrics(): Promise<unknown[]> {
    return (await this.collect('metrics')).filter((reply) => Array.isArray(reply));
  }

  /** Every listening worker's console snapshot; a worker that does not answer in time is left out. */
  async collectConsole(): Promise<unknown[]> {
    return (await this.collect('console')).filter((reply) => reply !== undefined);
  }

  private async collect(what: Collected): Promise<unknown[]> {
    const asked = [...this.slots.values()].filter(
      (slot) => slot.state !== 'starting' && slot.worker.isConnected(),
    );
    const replies = await Promise.all(
      asked.map(
        (slot) =>
          new Promise<unknown>((resolve) => {
            const id = this.nextCollectRequest++;
            const timer = setTimeout(() => {
              this.collectRequests.delete(id);
              this.options.logger.warn(
                `Worker ${slot.index} did not answer a ${what} request within ${METRICS_TIMEOUT_MS}ms; its ${what} figures are missing from this answer`,
              );
              resolve(undefined);
            }, METRICS_TIMEOUT_MS);
            this.collectRequests.set(id, (value) => {
              clearTimeout(timer);
              this.collectRequests.delete(id);
              resolve(value);
            });
            sendClusterMessage(slot.link, { wshub: COLLECT_REQUEST, id, what }, (error) => {
              if (error) this.collectRequests.get(id)?.(undefined);
            });
          }),
      ),
    );
    return replies;
  }

  reload(): void {
    for (const slot of this.slots.values()) this.sendTo(slot, { wshub: RELOAD });
  }

  /**
   * Asks every worker to drain as a single process does (clients get 1001) and
   * resolves when all have exited; workers still running after their deadline
   * plus a grace period are killed.
   */
  async stop(): Promise<void> {
    this.phase = 'stopping';
    for (const timer of this.restartTimers) clearTimeout(timer);
    this.restartTimers.clear();
    if (this.slots.size === 0) return;
    const exited = new Promise<void>((resolve) => {
      this.allExited = resolve;
    });
    for (const slot of this.slots.values()) {
      slot.state = 'stopping';
      this.sendTo(slot, { wshub: STOP });
    }
    const graceMs = this.options.shutdownTimeoutMs + STOP_GRACE_MS;
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<'late'>((resolve) => {
      timer = setTimeout(() => resolve('late'), graceMs);
    });
    if ((await Promise.race([exited, deadline])) === 'late') {
      const left = [...this.slots.values()];
      this.options.logger.warn(
        `${left.length} worker${left.length === 1 ? '' : 's'} still running ${graceMs}ms after the stop request: killing ${left.map((slot) => `worker ${slot.index} (pid ${slot.worker.process.pid})`).join(', ')}`,
      );
      for (const slot of left) slot.worker.process.kill('SIGKILL');
      await exited;
    }
    clearTimeout(timer);
  }

  private fork(index: number): void {
    const worker = (this.options.fork ?? (() => cluster.fork()))();
    const slot: Slot = {
      index,
      worker,
      link: workerLink(worker),
      state: 'starting',
      status: undefined,
      startupError: undefined,
      users: new Map(),
    };
    this.slots.set(worker, slot);
    this.options.onWorker?.(slot.link, `worker ${index}`);
    worker.on('message', (message: unknown) => this.onMessage(slot, message));
    worker.on('exit', (code: number | null, signal: string | null) => this.onExit(slot, code, signal));
    // An IPC error (e.g. the worker died mid-send) is followed by 'exit', which is what we act on.
    worker.on('error', () => {});
  }

  private onMessage(slot: Slot, received: unknown): void {
    const message = decodeClusterMessage(received);
    if (message === undefined) return;
    switch (message.wshub) {
      case LISTENING:
        this.onListening(slot, message.port);
        break;
      case STARTUP_FAILED:
        slot.startupError = { code: message.code, message: message.message };
        break;
      case STATUS:
        slot.status = message.status;
        break;
      case COLLECT_REPLY:
        this.collectRequests.get(message.id)?.(message.error === undefined ? message.value : undefined);
        break;
      case CONSOLE_REQUEST:
        this.answerConsole(slot, message.id);
        break;
      case USER_ACQUIRE: {
        const granted = (this.users.get(message.user) ?? 0) < message.limit;
        if (granted) {
          addTo(this.users, message.user, 1);
          addTo(slot.users, message.user, 1);
        }
        this.sendTo(slot, { wshub: USER_GRANT, id: message.id, user: message.user, granted });
        break;
      }
      case USER_RELEASE:
        // Only a slot this worker holds: a confused or late release cannot free another worker's.
        if (slot.users.has(message.user)) {
          addTo(slot.users, message.user, -1);
          addTo(this.users, message.user, -1);
        }
        break;
    }
  }

  /** Users with at least one slot in the cluster (their connections and handshakes in progress). */
  get trackedUsers(): number {
    return this.users.size;
  }

  private onListening(slot: Slot, port: number): void {
    if (this.phase === 'stopping') {
      this.sendTo(slot, { wshub: STOP });
      return;
    }
    slot.state = 'listening';
    if (this.phase === 'starting') {
      if (this.stateCounts().listening === this.options.count) {
        this.phase = 'running';
        this.started?.resolve(port);
      }
    } else {
      this.options.logger.info(
        `Worker ${slot.index} (pid ${slot.worker.process.pid}) listening again; ${this.stateCounts().listening} of ${this.options.count} listening`,
      );
    }
  }

  private onExit(slot: Slot, code: number | null, signal: string | null): void {
    this.slots.delete(slot.worker);
    // Its connections are gone with it (their clients reconnect, perhaps to another worker).
    for (const [user, held] of slot.users) addTo(this.users, user, -held);
    slot.users.clear();
    const how = signal !== null ? `signal ${signal}` : `code ${code}`;
    const who = `Worker ${slot.index} (pid ${slot.worker.process.pid})`;
    if (this.phase === 'stopping') {
      if (code !== 0) this.options.logger.warn(`${who} exited with ${how} while stopping`);
      if (this.slots.size === 0) this.allExited?.();
      return;
    }
    if (this.phase === 'starting') {
      const error = slot.startupError;
      this.phase = 'stopping';
      for (const other of this.slots.values()) other.worker.process.kill('SIGKILL');
      this.started?.reject(
        error?.code !== undefined
          ? new UsageError(error.code as ErrorCode, error.message)
          : new Error(
              `${who} exited with ${how} before it was listening${error ? `: ${error.message}` : ''}`,
            ),
      );
      return;
    }
    this.restart(slot, who, how);
  }

  private restart(slot: Slot, who: string, how: string): void {
    const now = performance.now();
    while (this.recentRestarts.length > 0 && (this.recentRestarts[0] as number) < now - RESTART_WINDOW_MS) {
      this.recentRestarts.shift();
    }
    if (this.recentRestarts.length >= MAX_RESTARTS_PER_WINDOW) {
      this.options.logger.error(
        `${who} exited with ${how}; ${MAX_RESTARTS_PER_WINDOW} workers were restarted within ${RESTART_WINDOW_MS / 1000}s, giving up`,
      );
      this.options.onGiveUp();
      return;
    }
    const delayMs = Math.min(RESTART_DELAY_MAX_MS, RESTART_DELAY_MIN_MS * 2 ** this.recentRestarts.length);
    this.recentRestarts.push(now);
    this.restarts++;
    this.options.logger.warn(
      `${who} exited unexpectedly (${how}); restarting it in ${delayMs}ms (${this.stateCounts().listening} of ${this.options.count} listening)`,
      { worker: slot.index, pid: slot.worker.process.pid, restart_delay_ms: delayMs },
    );
    const timer = setTimeout(() => {
      this.restartTimers.delete(timer);
      if (this.phase === 'running') this.fork(slot.index);
    }, delayMs);
    this.restartTimers.add(timer);
  }

  private answerConsole(slot: Slot, id: number): void {
    const read = this.options.consoleSnapshot;
    if (read === undefined) {
      this.sendTo(slot, { wshub: CONSOLE_REPLY, id, snapshot: undefined, error: 'console disabled' });
      return;
    }
    read().then(
      (snapshot) => this.sendTo(slot, { wshub: CONSOLE_REPLY, id, snapshot }),
      (error: Error) =>
        this.sendTo(slot, { wshub: CONSOLE_REPLY, id, snapshot: undefined, error: error.message }),
    );
  }

  /** A worker that has disconnected gets nothing (its 'exit' follows). */
  private sendTo(slot: Slot, message: ClusterMessage): void {
    sendClusterMessage(slot.link, message);
  }
}

/** Adds `delta` to a count; a key leaves the map at zero, so it holds only users with slots. */
function addTo(counts: Map<string, number>, key: string, delta: number): void {
  const count = (counts.get(key) ?? 0) + delta;
  if (count > 0) counts.set(key, count);
  else counts.delete(key);
}
