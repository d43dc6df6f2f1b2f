import type { Hub, Peer } from './hub.js';

/** Seed 000: every message goes back to its sender, unchanged, with its type. */
export class EchoHub implements Hub {
  join(_peer: Peer): void {}

  receive(peer: Peer, data: Buffer, isBinary: boolean): void {
    peer.deliver(data, isBinary);
  }

  leave(_peer: Peer): void {}
}
