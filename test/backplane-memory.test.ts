import { MemoryBackplane, MemoryBus } from '../src/backplane/memory.js';
import { backplaneContract } from './helpers/backplane-contract.js';

backplaneContract('memory', async () => {
  const bus = new MemoryBus();
  return {
    create: (counters) => new MemoryBackplane(bus, counters),
    outage: async () => bus.setAvailable(false),
    recover: async () => bus.setAvailable(true),
    teardown: async () => {},
  };
});
