import { WebSocket as WsWebSocket } from 'ws';
import {
  type ConnectOptions,
  connect as connectWith,
  type WebSocketConstructor,
  type WshubClient,
} from './client.js';

export type {
  ConnectOptions,
  Message,
  Position,
  ResetInfo,
  WebSocketConstructor,
  WebSocketLike,
  WshubClient,
} from './client.js';

/**
 * `wshub/client` in Node: the same client as in browsers, with Node's global
 * WebSocket when it has one (Node 22+) and the `ws` package otherwise.
 */
export function connect(url: string, options: ConnectOptions = {}): WshubClient {
  const global = (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
  return connectWith(url, {
    ...options,
    WebSocket: options.WebSocket ?? global ?? (WsWebSocket as unknown as WebSocketConstructor),
  });
}
