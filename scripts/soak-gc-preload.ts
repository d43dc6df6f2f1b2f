import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

/**
 * Loaded into the server under soak (NODE_OPTIONS=--import=...): SIGUSR2 runs a
 * full garbage collection, so the soak measures live memory, not garbage not
 * yet collected. Never part of a production process.
 */
setFlagsFromString('--expose-gc');
const collect = runInNewContext('gc') as () => void;
process.on('SIGUSR2', function collectGarbage() {
  collect();
});
