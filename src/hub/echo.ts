import type { Hub, Peer } from './hub.js';
import { OutboundMessage } from './message.js';

/** Seed 000: every message goes back to its sender, unchanged, with its type. Rooms are ignored. */
export class EchoHub implements Hub {
  join(_peer: Peer): void {}

  receive(peer: Peer, data: Buffer, isBinary: boolean): void {
    peer.deliver(new OutboundMessage(data, isBinary));
  }

  leave(_peer: Peer): void {}
}
