import assert from 'node:assert/strict';
import type { Worker } from 'node:cluster';
import { EventEmitter } from 'node:events';
import { describe, it } from 'node:test';
import type { IpcLink } from '../backplane/ipc.js';
import { ErrorCode, UsageError } from '../errors.js';
import type { Logger } from '../log.js';
import { decodeClusterMessage, STATUS_INTERVAL_MS } from './cluster-protocol.js';
import { WorkerSupervisor } from './cluster-supervisor.js';
import { PrimaryConnection } from './cluster-worker.js';

// The supervision protocol of --workers (issue 5) between its two ends, split by issue 14:
// the messages (cluster-protocol.ts), the primary (cluster-supervisor.ts), a worker
// (cluster-worker.ts). Here both ends run in one process over a fake IPC channel that delivers
// structured clones a turn later, as the advanced serialization of node:cluster does;
// test/workers.test.ts runs the real thing.

describe('cluster protocol: what a received message must look like', () => {
  const valid = [
    { wshub: 'cluster:listening', port: 8080 },
    { wshub: 'cluster:startup-failed', code: 'WSHUB_PORT_IN_USE', message: 'port 8080 is in use' },
    { wshub: 'cluster:startup-failed', code: undefined, message: 'boom' },
    { wshub: 'cluster:status', status: { connections: 3, ready: true, failing: [] } },
    { wshub: 'cluster:status', status: { connections: 0, ready: false, failing: ['backplane'] } },
    { wshub: 'cluster:stop' },
    { wshub: 'cluster:reload' },
    { wshub: 'cluster:collect-request', id: 0, what: 'metrics' },
    { wshub: 'cluster:collect-request', id: 7, what: 'console' },
    { wshub: 'cluster:collect', id: 7, value: [{ name: 'x' }] },
    { wshub: 'cluster:collect', id: 7, value: undefined, error: 'metrics disabled' },
    { wshub: 'cluster:console-request', id: 1 },
    { wshub: 'cluster:console', id: 1, snapshot: { connections: 1 } },
    { wshub: 'cluster:console', id: 1, snapshot: undefined, error: 'console disabled' },
    { wshub: 'cluster:user-acquire', id: 3, user: 'alice', limit: 2 },
    { wshub: 'cluster:user-grant', id: 3, user: 'alice', granted: false },
    { wshub: 'cluster:user-release', user: 'alice' },
  ];
  for (const message of valid) {
    it(`accepts ${JSON.stringify(message)}`, () => {
      assert.equal(decodeClusterMessage(message), message);
    });
  }

  const invalid: Array<[string, unknown]> = [
    ['not an object', 'cluster:stop'],
    ['null', null],
    ['no kind', { port: 1 }],
    ['the IPC backplane’s family', { wshub: 'backplane:subscribe', channel: 'room' }],
    ['an unknown cluster kind', { wshub: 'cluster:restart' }],
    ['listening without a port', { wshub: 'cluster:listening' }],
    ['listening on port 70000', { wshub: 'cluster:listening', port: 70000 }],
    ['listening on "8080"', { wshub: 'cluster:listening', port: '8080' }],
    ['startup-failed without a message', { wshub: 'cluster:startup-failed', code: 'X' }],
    ['startup-failed with a numeric code', { wshub: 'cluster:startup-failed', code: 2, message: 'x' }],
    ['status without a status', { wshub: 'cluster:status' }],
    [
      'status with negative connections',
      { wshub: 'cluster:status', status: { connections: -1, ready: true, failing: [] } },
    ],
    [
      'status with ready "yes"',
      { wshub: 'cluster:status', status: { connections: 1, ready: 'yes', failing: [] } },
    ],
    [
      'status with a non-string failing check',
      { wshub: 'cluster:status', status: { connections: 1, ready: false, failing: [1] } },
    ],
    ['collect-request for something else', { wshub: 'cluster:collect-request', id: 1, what: 'heap' }],
    ['collect-request with id -1', { wshub: 'cluster:collect-request', id: -1, what: 'metrics' }],
    ['collect-request with id 1.5', { wshub: 'cluster:collect-request', id: 1.5, what: 'metrics' }],
    ['collect reply without an id', { wshub: 'cluster:collect', value: [] }],
    ['collect reply with an error object', { wshub: 'cluster:collect', id: 1, error: new Error('x') }],
    ['console-request without an id', { wshub: 'cluster:console-request' }],
    ['console reply with id "1"', { wshub: 'cluster:console', id: '1', snapshot: {} }],
    ['user-acquire with limit 0', { wshub: 'cluster:user-acquire', id: 1, user: 'a', limit: 0 }],
    ['user-acquire with an empty user', { wshub: 'cluster:user-acquire', id: 1, user: '', limit: 1 }],
    [
      'user-acquire with a user longer than a sub may be',
      { wshub: 'cluster:user-acquire', id: 1, user: 'u'.repeat(257), limit: 1 },
    ],
    ['user-grant with granted "yes"', { wshub: 'cluster:user-grant', id: 1, user: 'a', granted: 'yes' }],
    ['user-release without a user', { wshub: 'cluster:user-release' }],
  ];
  for (const [what, message] of invalid) {
    it(`ignores ${what}`, () => {
      assert.equal(decodeClusterMessage(message), undefined);
    });
  }
});

/** Both ends of one IPC channel: each side's send reaches the other's listeners a turn later, cloned. */
function channel(): { worker: FakeWorker; link: IpcLink } {
  const toWorker = new EventEmitter();
  const worker = new FakeWorker((message) => toWorker.emit('message', message));
  const link: IpcLink = {
    send(message, callback) {
      if (!worker.isConnected()) {
        callback(new Error('no IPC channel'));
        return;
      }
      const copy = structuredClone(message);
      setImmediate(() => {
        worker.emit('message', copy);
        callback(null);
      });
    },
    onMessage(listener) {
      toWorker.on('message', listener);
    },
    onDisconnect(listener) {
      worker.once('disconnect', listener);
    },
    get connected() {
      return worker.isConnected();
    },
  };
  return { worker, link };
}

/** What WorkerSupervisor uses of a cluster Worker. */
class FakeWorker extends EventEmitter {
  private connected = true;
  readonly killed: string[] = [];
  readonly process = {
    pid: 4242,
    kill: (signal: string) => {
      this.killed.push(signal);
      this.exit(null, signal);
    },
  };

  constructor(private readonly deliver: (message: unknown) => void) {
    super();
  }

  isConnected(): boolean {
    return this.connected;
  }

  send(message: unknown, _handle: unknown, callback: (error: Error | null) => void): boolean {
    const copy = structuredClone(message);
    setImmediate(() => {
      this.deliver(copy);
      callback(null);
    });
    return true;
  }

  /** The worker process ends: the channel closes, then 'exit'. */
  exit(code: number | null, signal: string | null = null): void {
    if (!this.connected) return;
    this.connected = false;
    setImmediate(() => {
      this.emit('disconnect');
      this.emit('exit', code, signal);
    });
  }
}

function quietLogger(lines: string[]): Logger {
  const log = (line: string) => lines.push(line);
  return { debug: log, info: log, warn: log, error: log } as unknown as Logger;
}

/** A supervisor of `count` in-process workers; `onFork` plays each worker's app. */
function cluster(
  count: number,
  onFork: (primary: PrimaryConnection, worker: FakeWorker, index: number) => void,
) {
  const logs: string[] = [];
  const workers: FakeWorker[] = [];
  let givenUp = false;
  const supervisor = new WorkerSupervisor({
    count,
    logger: quietLogger(logs),
    shutdownTimeoutMs: 1000,
    onGiveUp: () => {
      givenUp = true;
    },
    consoleSnapshot: async () => ({ merged: true }),
    fork: () => {
      const { worker, link } = channel();
      workers.push(worker);
      onFork(new PrimaryConnection(link, count), worker, workers.length);
      return worker as unknown as Worker;
    },
  });
  return { supervisor, workers, logs, givenUp: () => givenUp };
}

const until = async (condition: () => boolean): Promise<void> => {
  for (let i = 0; i < 500 && !condition(); i++) await new Promise((resolve) => setTimeout(resolve, 10));
  assert.ok(condition(), 'condition not met within 5 s');
};

describe('cluster supervision: the primary and its workers over the protocol', () => {
  it('starts when every worker listens; status, metrics, console and stop travel both ways', async () => {
    const stopped: number[] = [];
    const { supervisor, workers } = cluster(2, (primary, worker, index) => {
      primary.serveMetrics(async () => [{ name: `metric_of_worker_${index}` }]);
      primary.serveConsole(() => ({ worker: index }));
      const stopStatus = primary.reportStatus(() => ({ connections: index * 10, ready: true, failing: [] }));
      primary.onStop(() => {
        stopStatus();
        stopped.push(index);
        worker.exit(0);
      });
      setImmediate(() => primary.listening(8080));
    });
    assert.equal(await supervisor.start(), 8080);
    assert.deepEqual(supervisor.stateCounts(), { starting: 0, listening: 2, stopping: 0 });
    await until(() => supervisor.allReady());
    assert.equal(supervisor.totalConnections(), 30);
    assert.equal(supervisor.describe(), '2 of 2 listening');

    const metrics = await supervisor.collectMetrics();
    assert.deepEqual(metrics.map((m) => (m as Array<{ name: string }>)[0]?.name).sort(), [
      'metric_of_worker_1',
      'metric_of_worker_2',
    ]);
    assert.deepEqual(
      (await supervisor.collectConsole()).map((c) => (c as { worker: number }).worker).sort(),
      [1, 2],
    );

    await supervisor.stop();
    assert.deepEqual(stopped.sort(), [1, 2]);
    assert.equal(workers.flatMap((w) => w.killed).length, 0, 'no worker was killed');
  });

  it('a worker asks the primary for the cluster console snapshot', async () => {
    let primaryOfWorker1: PrimaryConnection | undefined;
    const { supervisor } = cluster(1, (primary, worker) => {
      primaryOfWorker1 = primary;
      primary.onStop(() => worker.exit(0));
      setImmediate(() => primary.listening(9000));
    });
    await supervisor.start();
    assert.deepEqual(await primaryOfWorker1?.clusterConsole(), { merged: true });
    await supervisor.stop();
  });

  it('a failing readiness check shows in describe(); a malformed status changes nothing', async () => {
    let worker1: FakeWorker | undefined;
    const { supervisor } = cluster(1, (primary, worker) => {
      worker1 = worker;
      primary.reportStatus(() => ({ connections: 5, ready: false, failing: ['backplane'] }));
      primary.onStop(() => worker.exit(0));
      setImmediate(() => primary.listening(9000));
    });
    await supervisor.start();
    await until(() => supervisor.describe() === '1 of 1 listening (worker 1: backplane)');
    assert.equal(supervisor.allReady(), false);
    assert.equal(supervisor.totalConnections(), 5);
    // A status the protocol rejects (wrong field types) is dropped, not stored.
    worker1?.emit('message', { wshub: 'cluster:status', status: { connections: 'many', ready: true } });
    worker1?.emit('message', { wshub: 'cluster:listening', port: 'x' });
    assert.equal(supervisor.totalConnections(), 5);
    assert.equal(supervisor.allReady(), false);
    await supervisor.stop();
  });

  it('a worker that does not answer a metrics request is left out of that answer, with a warning', async () => {
    const { supervisor, logs } = cluster(2, (primary, worker, index) => {
      if (index === 1) primary.serveMetrics(async () => [{ name: 'answered' }]);
      else primary.serveMetrics(() => new Promise(() => {}));
      primary.onStop(() => worker.exit(0));
      setImmediate(() => primary.listening(9000));
    });
    await supervisor.start();
    const metrics = await supervisor.collectMetrics();
    assert.deepEqual(metrics, [[{ name: 'answered' }]]);
    assert.ok(logs.some((line) => /Worker 2 did not answer a metrics request within 2000ms/.test(line)));
    await supervisor.stop();
  });

  it('a worker’s startup UsageError fails start() with its code; the others are killed', async () => {
    const { supervisor, workers } = cluster(2, (primary, worker, index) => {
      setImmediate(async () => {
        if (index === 1) {
          await primary.startupFailed(new UsageError(ErrorCode.LISTEN_FAILED, 'port 8080 is already in use'));
          worker.exit(2);
        }
      });
    });
    await assert.rejects(supervisor.start(), (error: unknown) => {
      assert.ok(error instanceof UsageError);
      assert.equal(error.code, ErrorCode.LISTEN_FAILED);
      assert.equal(error.message, 'port 8080 is already in use');
      return true;
    });
    assert.deepEqual(workers[1]?.killed, ['SIGKILL']);
  });

  it('a worker that exits after listening is forked again into its slot and counted', async () => {
    const forks: number[] = [];
    let first: FakeWorker | undefined;
    const { supervisor, logs } = cluster(1, (primary, worker, index) => {
      forks.push(index);
      if (index === 1) first = worker;
      primary.onStop(() => worker.exit(0));
      setImmediate(() => primary.listening(9000));
    });
    await supervisor.start();
    first?.exit(null, 'SIGKILL');
    await until(() => forks.length === 2 && supervisor.stateCounts().listening === 1);
    assert.equal(supervisor.restarts, 1);
    assert.ok(logs.some((line) => /Worker 1 \(pid 4242\) exited unexpectedly \(signal SIGKILL\)/.test(line)));
    await supervisor.stop();
  });

  it("counts a user's slots over every worker (--max-connections-per-user); a dead worker's are dropped", async () => {
    const primaries: PrimaryConnection[] = [];
    const fakes: FakeWorker[] = [];
    const { supervisor } = cluster(2, (primary, worker) => {
      primaries.push(primary);
      fakes.push(worker);
      primary.onStop(() => worker.exit(0));
      setImmediate(() => primary.listening(9000));
    });
    await supervisor.start();
    const [one, two] = primaries.map((primary) => primary.sharedUserLimit(2)) as [
      ReturnType<PrimaryConnection['sharedUserLimit']>,
      ReturnType<PrimaryConnection['sharedUserLimit']>,
    ];
    // Two slots for alice, one on each worker; a third is refused wherever it is asked for.
    assert.equal(await one.acquire('alice'), 'granted');
    assert.equal(await two.acquire('alice'), 'granted');
    assert.equal(await one.acquire('alice'), 'full');
    assert.equal(await two.acquire('alice'), 'full');
    assert.equal(await two.acquire('bob'), 'granted');
    assert.equal(supervisor.trackedUsers, 2);
    // A slot given back on one worker can be taken on the other.
    two.release('alice');
    assert.equal(await one.acquire('alice'), 'granted');
    // A release for a slot the worker does not hold frees nothing.
    two.release('alice');
    two.release('carol');
    assert.equal(await two.acquire('alice'), 'full');
    // Worker 1 dies with its two alice connections: they no longer count; bob's (worker 2) still does.
    fakes[0]?.exit(null, 'SIGKILL');
    await until(() => supervisor.trackedUsers === 1);
    assert.equal(await two.acquire('alice'), 'granted');
    assert.equal(await two.acquire('bob'), 'granted');
    assert.equal(await two.acquire('bob'), 'full');
    await until(() => supervisor.stateCounts().listening === 2);
    await supervisor.stop();
  });

  it('reports status every STATUS_INTERVAL_MS, and stops when told', async () => {
    let reads = 0;
    const { supervisor } = cluster(1, (primary, worker) => {
      const stopStatus = primary.reportStatus(() => {
        reads++;
        return { connections: reads, ready: true, failing: [] };
      });
      primary.onStop(() => {
        stopStatus();
        worker.exit(0);
      });
      setImmediate(() => primary.listening(9000));
    });
    await supervisor.start();
    await until(() => reads >= 3);
    await supervisor.stop();
    const after = reads;
    await new Promise((resolve) => setTimeout(resolve, STATUS_INTERVAL_MS * 2));
    assert.equal(reads, after, 'no status read after stop');
  });
});
