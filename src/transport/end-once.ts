import type { Writable } from 'node:stream';
import type { WebSocket } from 'ws';

type End = (chunk?: unknown, encoding?: unknown, callback?: unknown) => Writable;

/**
 * `end()` for a stream that ws ends more than once. After a close handshake ws ends the
 * socket again when the peer's FIN arrives (socketOnEnd) and its receiver again when the
 * socket closes (socketOnClose), both already ended. Node answers each such call by building
 * an ERR_STREAM_ALREADY_FINISHED error (formatted message, captured stack trace) that nobody
 * receives: two per connection, the largest single cost of a connect and close after the
 * kernel's (issue 5, connection rate). A bare `end()` on an ended stream does nothing else,
 * so it is skipped; a call with data or a callback goes to the stream's own `end()`.
 */
export function endUnlessEnded(
  this: Writable,
  chunk?: unknown,
  encoding?: unknown,
  callback?: unknown,
): Writable {
  if (chunk === undefined && encoding === undefined && callback === undefined && this.writableEnded) {
    return this;
  }
  return (Object.getPrototypeOf(this) as { end: End }).end.call(this, chunk, encoding, callback);
}

/** The two streams ws ends twice (ws's own fields; absent before the handshake completes). */
interface WsStreams {
  readonly _socket?: Writable | null;
  readonly _receiver?: Writable | null;
}

/**
 * Gives a closing WebSocket's socket and receiver the `end()` above as their own method
 * (their prototypes stay untouched). Done when the close starts, not at accept, so an open
 * connection carries no extra property.
 */
export function quietRepeatedEnds(ws: WebSocket): void {
  const { _socket: socket, _receiver: receiver } = ws as unknown as WsStreams;
  if (socket && socket.end !== endUnlessEnded) (socket as { end: End }).end = endUnlessEnded;
  if (receiver && receiver.end !== endUnlessEnded) (receiver as { end: End }).end = endUnlessEnded;
}
