import { DISCONNECT } from '../disconnects.js';
import type { Hub } from '../hub/hub.js';
import type { Logger, RateLimitedLog } from '../log.js';
import type { Stats } from '../stats.js';
import { type Connection, connectionFields, type FaultState } from './connection.js';
import {
  closesOnNextMessage,
  countKnobs,
  describeFaults,
  type FaultPlan,
  MAX_DELAYED_MESSAGES,
  type ReceivedRequest,
} from './fault-injection.js';
import { OPEN } from './writer.js';

export interface InstanceInfo {
  readonly hostname: string;
  /** Random per process start, so a restarted pod with the same name is told apart. */
  readonly id: string;
  readonly version: string;
}

export interface FaultActionsOptions {
  readonly hub: Hub;
  readonly logger: Logger;
  readonly limitedLog: RateLimitedLog;
  readonly stats: Stats;
  /** --max-buffered-bytes: bounds what may wait on ?delay too. */
  readonly maxBufferedBytes: number;
  /** Who this process is, for the ?hello message. */
  readonly instance?: InstanceInfo;
}

/**
 * Carries out a client's fault-injection plan (issue 8; parsed by the upgrade gate, see
 * fault-injection.ts): ?hello at once, ?delay per message, ?close / ?drop after the next
 * message or `immediately`; ?close-after=N after the Nth message, ?close-in after a time,
 * ?ignore-pings (issue 17; ?status never gets here: the gate refuses the handshake).
 */
export class FaultActions {
  constructor(private readonly options: FaultActionsOptions) {}

  /** Faults that act at once: ?hello, ?close-in, and ?close / ?drop with &immediately. */
  start(connection: Connection, faults: FaultPlan, received: ReceivedRequest | undefined): void {
    countKnobs(this.options.stats, faults);
    // Only a plan that acts on messages, pings or a timer needs state (and the slower receive path).
    if (
      faults.delayMs > 0 ||
      faults.closeAfter !== undefined ||
      faults.closeInMs !== undefined ||
      faults.ignorePings ||
      (!faults.immediately && (closesOnNextMessage(faults) || faults.drop))
    ) {
      connection.faults = {
        plan: faults,
        delayedMessages: 0,
        delayedBytes: 0,
        messages: 0,
        closeTimer: undefined,
      };
    }
    const fields = connectionFields(connection);
    this.options.logger.info(`Fault injection for ${connection.peer}: ${describeFaults(faults)}`, fields);
    if (faults.hello) {
      const instance = this.options.instance;
      // Through the connection's writer, in order with anything already delivered to it.
      connection.send(
        JSON.stringify({
          type: 'hello',
          hostname: instance?.hostname,
          instance: instance?.id,
          version: instance?.version,
          connection_id: connection.id,
          room: connection.room,
          remote_addr: connection.peer,
          client_address: connection.clientAddress,
          ...received,
        }),
      );
    }
    const state = connection.faults;
    if (state !== undefined && faults.closeInMs !== undefined) {
      // One timer, only for a connection that asked for it; cleared if the connection ends first.
      state.closeTimer = setTimeout(closeNow, faults.closeInMs, this, connection);
      state.closeTimer.unref();
    }
    if (faults.immediately) this.end(connection, faults);
  }

  /** The connection has closed: a pending ?close-in has nothing left to close. */
  closed(state: FaultState): void {
    if (state.closeTimer !== undefined) clearTimeout(state.closeTimer);
    state.closeTimer = undefined;
  }

  /** A ping a ?ignore-pings connection sent, left unanswered: counted, logged at a bounded rate. */
  pingIgnored(connection: Connection): void {
    this.options.stats.faultPingsIgnored++;
    this.options.limitedLog.log(
      'fault_ignore_pings',
      'info',
      `Not answering a ping from ${connection.peer} (?ignore-pings)`,
      connectionFields(connection),
    );
  }

  /** A message from a client with a plan that acts on messages. */
  receive(connection: Connection, state: FaultState, data: Buffer, isBinary: boolean): void {
    const faults = state.plan;
    if (faults.drop) {
      this.end(connection, faults);
      return;
    }
    if (faults.delayMs === 0) {
      this.options.hub.receive(connection, data, isBinary);
      this.handled(connection, state);
      return;
    }
    // Held messages are bounded like an outbound queue: by count and by --max-buffered-bytes.
    const maxBytes = this.options.maxBufferedBytes;
    if (
      state.delayedMessages >= MAX_DELAYED_MESSAGES ||
      (state.delayedBytes > 0 && state.delayedBytes + data.length > maxBytes)
    ) {
      this.options.limitedLog.log(
        'fault_injection',
        'warn',
        `Closing ${connection.peer} with 1008: more than ${MAX_DELAYED_MESSAGES} messages or ${maxBytes} bytes waiting on ?delay`,
        { ...connectionFields(connection), reason: 'fault_injection' },
      );
      connection.disconnect(DISCONNECT.fault_injection);
      return;
    }
    state.delayedMessages++;
    state.delayedBytes += data.length;
    // Timers of equal delay fire in the order they were set, so the order of messages is kept.
    // A closure and timer per held message: only for clients that asked for ?delay.
    setTimeout(() => {
      state.delayedMessages--;
      state.delayedBytes -= data.length;
      if (connection.readyState !== OPEN) return;
      this.options.hub.receive(connection, data, isBinary);
      this.handled(connection, state);
    }, faults.delayMs).unref();
  }

  /** ?close (after the next message) and ?close-after=N (after the Nth) act once a message has been handled. */
  private handled(connection: Connection, state: FaultState): void {
    const faults = state.plan;
    state.messages++;
    if (
      faults.closeAfter !== undefined ? state.messages === faults.closeAfter : closesOnNextMessage(faults)
    ) {
      this.end(connection, faults);
    }
  }

  /** ?close-after / ?close-in: the client's code and text, 1000 and none when it gave none. */
  closeAsAsked(connection: Connection, faults: FaultPlan): void {
    if (connection.readyState !== OPEN) return;
    connection.closeWith('fault_injection', faults.close?.code ?? 1000, faults.close?.reason ?? '');
  }

  /** Ends the connection as the client asked: a close frame with its code, or a dropped TCP connection. */
  private end(connection: Connection, faults: FaultPlan): void {
    if (connection.readyState !== OPEN) return;
    if (faults.drop) {
      // Frames corked for this turn are discarded with the socket: that is what a cut connection does.
      connection.cut('fault_injection');
    } else {
      this.closeAsAsked(connection, faults);
    }
  }
}

function closeNow(actions: FaultActions, connection: Connection): void {
  const state = connection.faults;
  if (state !== undefined) state.closeTimer = undefined;
  if (state !== undefined) actions.closeAsAsked(connection, state.plan);
}
