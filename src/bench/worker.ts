import { parentPort, workerData } from 'node:worker_threads';
import { LoadGenerator } from './load.js';
import type { MainMessage, WorkerMessage, WorkerPlan } from './protocol.js';

// Entry point of one bench worker thread: runs its plan and reports to the main thread.
if (parentPort !== null) {
  const port = parentPort;
  const generator = new LoadGenerator(workerData as WorkerPlan, (message: WorkerMessage) =>
    port.postMessage(message),
  );
  port.on('message', function onMainMessage(message: MainMessage) {
    if (message.type === 'stop') {
      generator.stop();
      return;
    }
    generator.run(message.startAt, message.stopAt).then(
      () => port.close(),
      (error: Error) => {
        throw error;
      },
    );
  });
  port.postMessage({ type: 'ready' } satisfies WorkerMessage);
}
