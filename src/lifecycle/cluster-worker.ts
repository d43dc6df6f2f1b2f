import cluster from 'node:cluster';
import type { IpcLink } from '../backplane/ipc.js';
import { isUsageError } from '../errors.js';
import {
  COLLECT_REPLY,
  COLLECT_REQUEST,
  CONSOLE_REPLY,
  CONSOLE_REQUEST,
  CONSOLE_TIMEOUT_MS,
  type Collected,
  decodeClusterMessage,
  LISTENING,
  RELOAD,
  STARTUP_FAILED,
  STATUS,
  STATUS_INTERVAL_MS,
  STOP,
  sendClusterMessage,
  USER_ACQUIRE,
  USER_GRANT,
  USER_RELEASE,
  USER_SLOT_TIMEOUT_MS,
  type WorkerStatus,
} from './cluster-protocol.js';

/**
 * A worker's side of `--workers` (issue 5): every worker runs the whole app on
 * the shared WebSocket port; `PrimaryConnection` is its end of the supervision
 * protocol (cluster-protocol.ts): report listening and status, answer the
 * primary's metrics and console requests, obey stop and reload. The primary's
 * side is cluster-supervisor.ts; broadcast between workers is the IPC backplane
 * (backplane/ipc.ts).
 */

/** Whether this process is a worker of `--workers` (src/cli.ts picks the role with it). */
export const isClusterWorker = (): boolean => cluster.isWorker;

/** A worker's end of its IPC channel to the primary. */
export function processLink(): IpcLink {
  return {
    send(message, callback) {
      if (process.send === undefined) callback(new Error('no IPC channel'));
      else process.send(message, undefined, undefined, callback);
    },
    onMessage(listener) {
      process.on('message', listener);
    },
    onDisconnect(listener) {
      process.once('disconnect', listener);
    },
    get connected() {
      return process.connected === true;
    },
  };
}

/** Everything a worker's app needs to know about the cluster it is part of. */
export interface WorkerContext {
  /** Workers in the cluster (the limits are shared among them). */
  readonly count: number;
  /** The IPC channel, for the IPC backplane. */
  readonly link: IpcLink;
  /** Answers the primary's metrics requests with `collect()` (a registry's getMetricsAsJSON). */
  serveMetrics(collect: () => Promise<unknown>): void;
  /** Answers the primary's console requests with `read()` (this worker's console snapshot). */
  serveConsole(read: () => unknown): void;
  /** The whole cluster's console snapshot, merged by the primary from every worker's. */
  clusterConsole(): Promise<unknown>;
  /** Reports `read()` to the primary now and every STATUS_INTERVAL_MS; returns the function that stops it. */
  reportStatus(read: () => WorkerStatus): () => void;
  /** --max-connections-per-user for the whole cluster, counted by the primary (issue 15). */
  sharedUserLimit(limit: number): SharedUserSlots;
}

/** A user's slots as the primary counts them (the upgrade gate's SharedUserLimit). */
export interface SharedUserSlots {
  readonly limit: number;
  acquire(user: string): Promise<'granted' | 'full' | 'unavailable'>;
  release(user: string): void;
}

/** A worker's end of the supervision protocol. */
export class PrimaryConnection implements WorkerContext {
  private stopHandler: (() => void) | undefined;
  private stopRequested = false;
  private reloadHandler: (() => void) | undefined;
  private readonly collectors: Partial<Record<Collected, () => unknown>> = {};
  private nextConsoleRequest = 0;
  private readonly consoleRequests = new Map<
    number,
    (reply: { snapshot: unknown; error?: string }) => void
  >();
  private nextUserRequest = 0;
  private readonly userRequests = new Map<number, (answer: 'granted' | 'full' | 'unavailable') => void>();

  constructor(
    readonly link: IpcLink,
    readonly count: number,
  ) {
    link.onMessage(this.onMessage);
  }

  serveMetrics(collect: () => Promise<unknown>): void {
    this.collectors.metrics = collect;
  }

  serveConsole(read: () => unknown): void {
    this.collectors.console = read;
  }

  clusterConsole(): Promise<unknown> {
    const id = this.nextConsoleRequest++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.consoleRequests.delete(id);
        reject(new Error(`the primary did not answer within ${CONSOLE_TIMEOUT_MS}ms`));
      }, CONSOLE_TIMEOUT_MS);
      this.consoleRequests.set(id, (reply) => {
        clearTimeout(timer);
        this.consoleRequests.delete(id);
        if (reply.error === undefined) resolve(reply.snapshot);
        else reject(new Error(reply.error));
      });
      sendClusterMessage(this.link, { wshub: CONSOLE_REQUEST, id }, (error) => {
        if (error) this.consoleRequests.get(id)?.({ snapshot: undefined, error: error.message });
      });
    });
  }

  sharedUserLimit(limit: number): SharedUserSlots {
    return {
      limit,
      acquire: (user) => this.acquireUserSlot(user, limit),
      release: (user) => sendClusterMessage(this.link, { wshub: USER_RELEASE, user }),
    };
  }

  private acquireUserSlot(user: string, limit: number): Promise<'granted' | 'full' | 'unavailable'> {
    const id = this.nextUserRequest++;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        // A grant that arrives after this is given back (onMessage): the primary's count stays exact.
        this.userRequests.delete(id);
        resolve('unavailable');
      }, USER_SLOT_TIMEOUT_MS);
      this.userRequests.set(id, (answer) => {
        clearTimeout(timer);
        this.userRequests.delete(id);
        resolve(answer);
      });
      sendClusterMessage(this.link, { wshub: USER_ACQUIRE, id, user, limit }, (error) => {
        if (error) this.userRequests.get(id)?.('unavailable');
      });
    });
  }

  reportStatus(read: () => WorkerStatus): () => void {
    const send = (): void => sendClusterMessage(this.link, { wshub: STATUS, status: read() });
    send();
    const timer = setInterval(send, STATUS_INTERVAL_MS);
    timer.unref();
    return () => clearInterval(timer);
  }

  listening(port: number): void {
    sendClusterMessage(this.link, { wshub: LISTENING, port });
  }

  /** Hands a startup error to the primary, which reports it once for the whole cluster. */
  startupFailed(error: unknown): Promise<void> {
    const message = error instanceof Error ? error.message : String(error);
    return new Promise((resolve) => {
      sendClusterMessage(
        this.link,
        { wshub: STARTUP_FAILED, code: isUsageError(error) ? error.code : undefined, message },
        () => resolve(),
      );
    });
  }

  /** What to do when the primary says stop (once; a stop that came before this runs at once). */
  onStop(handler: () => void): void {
    this.stopHandler = handler;
    if (this.stopRequested) handler();
  }

  onReload(handler: () => void): void {
    this.reloadHandler = handler;
  }

  private readonly onMessage = (received: unknown): void => {
    const message = decodeClusterMessage(received);
    if (message === undefined) return;
    switch (message.wshub) {
      case STOP:
        if (this.stopRequested) return;
        this.stopRequested = true;
        this.stopHandler?.();
        break;
      case RELOAD:
        this.reloadHandler?.();
        break;
      case COLLECT_REQUEST:
        this.answer(message.id, message.what);
        break;
      case CONSOLE_REPLY:
        this.consoleRequests.get(message.id)?.(message);
        break;
      case USER_GRANT:
        this.onUserGrant(message.id, message.user, message.granted);
        break;
    }
  };

  private onUserGrant(id: number, user: string, granted: boolean): void {
    const waiting = this.userRequests.get(id);
    if (waiting !== undefined) waiting(granted ? 'granted' : 'full');
    // The handshake already gave up waiting (USER_SLOT_TIMEOUT_MS): the slot goes back at once.
    else if (granted) sendClusterMessage(this.link, { wshub: USER_RELEASE, user });
  }

  private answer(id: number, what: Collected): void {
    const collect = this.collectors[what];
    if (collect === undefined) {
      sendClusterMessage(this.link, {
        wshub: COLLECT_REPLY,
        id,
        value: undefined,
        error: `${what} disabled`,
      });
      return;
    }
    Promise.resolve()
      .then(collect)
      .then(
        (value) => sendClusterMessage(this.link, { wshub: COLLECT_REPLY, id, value }),
        (error: Error) =>
          sendClusterMessage(this.link, {
            wshub: COLLECT_REPLY,
            id,
            value: undefined,
            error: error.message,
          }),
      );
  }
}
