import { MessageChannel, type MessagePort } from 'node:worker_threads';
import { IpcBackplane, IpcBroker, type IpcLink } from '../src/backplane/ipc.js';
import { RateLimitedLog, silentLogger } from '../src/log.js';
import { backplaneContract } from './helpers/backplane-contract.js';

/**
 * One end of a MessageChannel as an IPC link: the same structured clone
 * (V8 serializer) as cluster IPC with `serialization: 'advanced'`, FIFO and
 * asynchronous, in one process. The real cluster channel is covered end to end
 * by test/workers.test.ts.
 */
function portLink(port: MessagePort): IpcLink {
  let connected = true;
  const onClose: Array<() => void> = [];
  port.on('close', () => {
    connected = false;
    for (const listener of onClose) listener();
  });
  return {
    send(message, callback) {
      if (!connected) {
        queueMicrotask(() => callback(new Error('channel closed')));
        return;
      }
      port.postMessage(message);
      queueMicrotask(() => callback(null));
    },
    onMessage(listener) {
      port.on('message', listener);
    },
    onDisconnect(listener) {
      onClose.push(listener);
    },
    get connected() {
      return connected;
    },
  };
}

backplaneContract(
  'ipc',
  async () => {
    const limitedLog = new RateLimitedLog(silentLogger);
    let broker = new IpcBroker({ limitedLog, maxPendingBytes: 64 * 1024 * 1024 });
    const ports: MessagePort[] = [];
    return {
      create(counters) {
        const { port1, port2 } = new MessageChannel();
        ports.push(port1, port2);
        broker.attach(portLink(port1), `worker ${ports.length / 2}`);
        return new IpcBackplane({
          link: portLink(port2),
          counters,
          limitedLog,
          maxPendingBytes: 64 * 1024 * 1024,
        });
      },
      // The primary process going away: every worker's channel closes.
      async outage() {
        for (const port of ports.splice(0)) port.close();
        broker = new IpcBroker({ limitedLog, maxPendingBytes: 64 * 1024 * 1024 });
      },
      async teardown() {
        for (const port of ports.splice(0)) port.close();
      },
    };
  },
  { mediumRecovers: false },
);
