import { type IpcLink, isWshubMessage } from '../backplane/ipc.js';

/**
 * The supervision protocol of `--workers` (issue 5) between the primary
 * (cluster-supervisor.ts) and each worker (cluster-worker.ts): the messages,
 * how one is sent, and how one received is checked before either end acts on
 * it. Every wshub IPC message is an object whose `wshub` field names its kind;
 * this protocol's kinds start with `cluster:` (the IPC backplane's with
 * `backplane:`, backplane/ipc.ts). Sent with `serialization: 'advanced'`.
 */

/** What a worker reports about itself, every STATUS_INTERVAL_MS. */
export interface WorkerStatus {
  readonly connections: number;
  readonly ready: boolean;
  /** Its readiness checks that fail ("backplane"), required or not. */
  readonly failing: readonly string[];
}

/** What the primary collects from every worker: a registry's metrics, or the console's snapshot. */
export const COLLECTED = ['metrics', 'console'] as const;
export type Collected = (typeof COLLECTED)[number];

/** A worker reports its status this often. */
export const STATUS_INTERVAL_MS = 500;
/** A worker that has not answered a metrics request by then is left out of that scrape. */
export const METRICS_TIMEOUT_MS = 2000;
/** A worker gives up on the primary's console snapshot after this long (GET /stats answers 503). */
export const CONSOLE_TIMEOUT_MS = METRICS_TIMEOUT_MS + 500;

export const LISTENING = 'cluster:listening';
export const STARTUP_FAILED = 'cluster:startup-failed';
export const STATUS = 'cluster:status';
export const STOP = 'cluster:stop';
export const RELOAD = 'cluster:reload';
/** The primary asks every worker for a registry's metrics or the console's snapshot... */
export const COLLECT_REQUEST = 'cluster:collect-request';
export const COLLECT_REPLY = 'cluster:collect';
/** ...and a worker serving GET /stats asks the primary for the cluster's console snapshot (issue 19). */
export const CONSOLE_REQUEST = 'cluster:console-request';
export const CONSOLE_REPLY = 'cluster:console';

/**
 * --max-connections-per-user with --workers (issue 15): the primary counts every user's slots for
 * the whole cluster. A worker asks for one once a token is verified and gives it back when the
 * handshake is refused or abandoned or the connection closes; a dead worker's slots are dropped.
 */
export const USER_ACQUIRE = 'cluster:user-acquire';
export const USER_GRANT = 'cluster:user-grant';
export const USER_RELEASE = 'cluster:user-release';
/** A worker that has no answer by then refuses the handshake (429, Retry-After) rather than wait. */
export const USER_SLOT_TIMEOUT_MS = 2000;
/** The longest `sub` a token may carry (auth/claims.ts), so the longest user a message names. */
const MAX_USER_LENGTH = 256;

export type ClusterMessage =
  | { wshub: typeof LISTENING; port: number }
  | { wshub: typeof STARTUP_FAILED; code: string | undefined; message: string }
  | { wshub: typeof STATUS; status: WorkerStatus }
  | { wshub: typeof STOP | typeof RELOAD }
  | { wshub: typeof COLLECT_REQUEST; id: number; what: Collected }
  | { wshub: typeof COLLECT_REPLY; id: number; value: unknown; error?: string }
  | { wshub: typeof CONSOLE_REQUEST; id: number }
  | { wshub: typeof CONSOLE_REPLY; id: number; snapshot: unknown; error?: string }
  | { wshub: typeof USER_ACQUIRE; id: number; user: string; limit: number }
  | { wshub: typeof USER_GRANT; id: number; user: string; granted: boolean }
  | { wshub: typeof USER_RELEASE; user: string };

export function ignoreSendResult(): void {}

/** Sends one protocol message over `link`; the callback hears whether it was handed to the OS. */
export function sendClusterMessage(
  link: IpcLink,
  message: ClusterMessage,
  callback: (error: Error | null) => void = ignoreSendResult,
): void {
  link.send(message, callback);
}

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null;
const isRequestId = (value: unknown): value is number =>
  Number.isSafeInteger(value) && (value as number) >= 0;
const isOptionalString = (value: unknown): value is string | undefined =>
  value === undefined || typeof value === 'string';
const isUser = (value: unknown): value is string =>
  typeof value === 'string' && value !== '' && value.length <= MAX_USER_LENGTH;

function isWorkerStatus(value: unknown): value is WorkerStatus {
  return (
    isObject(value) &&
    typeof value.connections === 'number' &&
    Number.isSafeInteger(value.connections) &&
    value.connections >= 0 &&
    typeof value.ready === 'boolean' &&
    Array.isArray(value.failing) &&
    value.failing.every((check) => typeof check === 'string')
  );
}

/**
 * A received IPC message as a protocol message, or undefined when it is not
 * one: another family's (the IPC backplane's), an unknown `cluster:` kind, or a
 * known kind whose fields have the wrong types. Neither end acts on those.
 */
export function decodeClusterMessage(message: unknown): ClusterMessage | undefined {
  if (!isWshubMessage(message, 'cluster:')) return undefined;
  const m = message as Record<string, unknown>;
  switch (m.wshub) {
    case LISTENING:
      return Number.isInteger(m.port) && (m.port as number) >= 0 && (m.port as number) <= 65535
        ? (m as ClusterMessage)
        : undefined;
    case STARTUP_FAILED:
      return isOptionalString(m.code) && typeof m.message === 'string' ? (m as ClusterMessage) : undefined;
    case STATUS:
      return isWorkerStatus(m.status) ? (m as ClusterMessage) : undefined;
    case STOP:
    case RELOAD:
      return m as ClusterMessage;
    case COLLECT_REQUEST:
      return isRequestId(m.id) && COLLECTED.includes(m.what as Collected) ? (m as ClusterMessage) : undefined;
    case COLLECT_REPLY:
      return isRequestId(m.id) && isOptionalString(m.error) ? (m as ClusterMessage) : undefined;
    case CONSOLE_REQUEST:
      return isRequestId(m.id) ? (m as ClusterMessage) : undefined;
    case CONSOLE_REPLY:
      return isRequestId(m.id) && isOptionalString(m.error) ? (m as ClusterMessage) : undefined;
    case USER_ACQUIRE:
      return isRequestId(m.id) && isUser(m.user) && Number.isSafeInteger(m.limit) && (m.limit as number) > 0
        ? (m as ClusterMessage)
        : undefined;
    case USER_GRANT:
      return isRequestId(m.id) && isUser(m.user) && typeof m.granted === 'boolean'
        ? (m as ClusterMessage)
        : undefined;
    case USER_RELEASE:
      return isUser(m.user) ? (m as ClusterMessage) : undefined;
    default:
      return undefined;
  }
}
