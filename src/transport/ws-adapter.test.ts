import assert from 'node:assert/strict';
import { once } from 'node:events';
import { writeSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { Duplex } from 'node:stream';
import { after, describe, it } from 'node:test';
import * as wsModule from 'ws';
import { WebSocket, WebSocketServer } from 'ws';
import {
  checkDescriptorShape,
  checkHttp2ClientShape,
  checkHttp2Shapes,
  checkWsShapes,
  descriptorOf,
  descriptorOpen,
  installReceiverReentryCheck,
  negotiatedDeflateWindowBits,
  ReceiverBase,
  type ReceiverOptions,
  releaseExtensions,
  type WsLibrary,
  WsShapeError,
} from './ws-adapter.js';

const pinned = wsModule as unknown as Required<WsLibrary>;

/** A client frame (masked, RFC 6455 §5.3) with opcode `opcode` and `payload`. */
function clientFrame(opcode: number, payload: Buffer, fin = true): Buffer {
  const mask = Buffer.from([1, 2, 3, 4]);
  const masked = Buffer.from(payload.map((byte, i) => byte ^ (mask[i % 4] as number)));
  return Buffer.concat([Buffer.from([(fin ? 0x80 : 0) | opcode, 0x80 | payload.length]), mask, masked]);
}

/** A receiver subclass recording what reaches emit(), as the connection's does. */
class RecordingReceiver extends ReceiverBase {
  readonly events: Array<[string, unknown[]]> = [];
  onMessage: ((receiver: RecordingReceiver) => void) | undefined = undefined;

  override emit(event: string | symbol, ...args: unknown[]): boolean {
    if (
      typeof event === 'string' &&
      ['message', 'ping', 'pong', 'conclude', 'error', 'drain'].includes(event)
    ) {
      this.events.push([event, args]);
      if (event === 'message') this.onMessage?.(this);
      return true;
    }
    return super.emit(event, ...args);
  }
}

const receiverOptions: ReceiverOptions = {
  binaryType: 'nodebuffer',
  extensions: {},
  isServer: true,
  maxPayload: 1024,
};

/** Listens on a WebSocketServer whose connection class records what the handshake gives it. */
class HandshakeProbe {
  static last: HandshakeProbe | undefined;
  _extensions: object = {};
  _protocol = '';
  socket: unknown;
  options: Record<string, unknown> = {};
  constructor(
    readonly address?: null,
    readonly protocols?: undefined,
  ) {
    HandshakeProbe.last = this;
  }
  setSocket(socket: unknown, _head: Buffer, options: Record<string, unknown>): void {
    this.socket = socket;
    this.options = options;
    (socket as Socket).destroy();
  }
}

describe('ws-adapter: the private shapes of the pinned ws and of Node, one test each', () => {
  const closers: Array<() => void> = [];
  after(() => {
    for (const close of closers) close();
  });

  it('checkWsShapes finds every shape in the pinned ws (no fallback taken)', () => {
    const shapes = checkWsShapes();
    assert.deepEqual(shapes.problems, []);
    assert.equal(shapes.compression, true);
  });

  it('shape 1: the handshake constructs the server class, fills _extensions/_protocol and calls setSocket', async () => {
    const wss = new WebSocketServer({
      port: 0,
      host: '127.0.0.1',
      maxPayload: 4321,
      clientTracking: false, // as wshub: ws would otherwise listen for the connection's 'close'
      perMessageDeflate: { serverNoContextTakeover: true, serverMaxWindowBits: 11 },
      WebSocket: HandshakeProbe as unknown as typeof WebSocket,
    });
    closers.push(() => wss.close());
    await once(wss, 'listening');
    const { port } = wss.address() as { port: number };
    const client = new WebSocket(`ws://127.0.0.1:${port}`, ['chat'], { perMessageDeflate: true });
    client.on('error', () => {});
    await once(client, 'close');
    const probe = HandshakeProbe.last as HandshakeProbe;
    assert.equal(probe.address, null, 'constructed as a server-side socket');
    assert.equal(probe._protocol, 'chat');
    assert.equal(probe.options.maxPayload, 4321);
    assert.ok(probe.socket !== undefined, 'setSocket got the socket');
    // Shape 3 on the same agreement: the window the server announced.
    assert.equal(negotiatedDeflateWindowBits(probe._extensions), 11);
    releaseExtensions(probe._extensions);
    assert.equal(negotiatedDeflateWindowBits({}), 0, 'no extension negotiated');
    assert.equal(
      negotiatedDeflateWindowBits({ 'permessage-deflate': { params: { server_no_context_takeover: true } } }),
      15,
      'no server_max_window_bits: up to 15 (RFC 7692 §7.1.2.1)',
    );
  });

  it("shape 2: the Receiver's events (message, ping, pong, conclude, error) arrive through emit", () => {
    const receiver = new RecordingReceiver(receiverOptions);
    receiver.write(
      Buffer.concat([
        clientFrame(0x1, Buffer.from('hi')),
        clientFrame(0x9, Buffer.from('p1')),
        clientFrame(0xa, Buffer.from('p2')),
        clientFrame(0x8, Buffer.from([0x03, 0xe8, 0x6f, 0x6b])),
      ]),
    );
    assert.deepEqual(
      receiver.events.map(([event, args]) => [event, String(args[0])]),
      [
        ['message', 'hi'],
        ['ping', 'p1'],
        ['pong', 'p2'],
        ['conclude', '1000'],
      ],
    );
    const failing = new RecordingReceiver(receiverOptions);
    failing.write(Buffer.from([0x81, 0x02, 0x68, 0x69])); // unmasked: §5.1
    return new Promise<void>((resolve) => {
      setImmediate(() => {
        const error = failing.events.find(([event]) => event === 'error')?.[1][0] as { code?: string };
        assert.equal(error?.code, 'WS_ERR_EXPECTED_MASK');
        resolve();
      });
    });
  });

  it('shape 4: a TCP socket exposes its descriptor, writes to it reach the peer, and it is gone once closed', async () => {
    const server: Server = createServer();
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    closers.push(() => server.close());
    const accepted = once(server, 'connection');
    const { createConnection } = await import('node:net');
    const client = createConnection((server.address() as { port: number }).port, '127.0.0.1');
    const [socket] = (await accepted) as [Socket];
    assert.equal(checkDescriptorShape(socket), undefined, 'the shape holds: no fallback');
    const fd = descriptorOf(socket);
    assert.ok(fd >= 0, 'a descriptor');
    assert.equal(descriptorOpen(socket), true);
    const received = once(client, 'data');
    assert.equal(writeSync(fd, Buffer.from('direct')), 6);
    assert.equal(String((await received)[0]), 'direct');
    socket.destroy();
    assert.equal(descriptorOpen(socket), false, 'the handle is dropped synchronously on destroy');
    assert.equal(descriptorOf(socket), -1);
    client.destroy();
  });

  it('tests only: a re-entry into a receiver parse loop throws, with a stack', () => {
    installReceiverReentryCheck();
    const receiver = new RecordingReceiver(receiverOptions);
    // A callout that feeds the receiver calling it (Writable#write would only queue the chunk).
    receiver.onMessage = (self) => {
      self.onMessage = undefined;
      (self as unknown as { _write(chunk: Buffer, encoding: string, cb: () => void): void })._write(
        clientFrame(0x1, Buffer.from('re-entered')),
        'buffer',
        () => {},
      );
    };
    assert.throws(
      () => receiver.write(clientFrame(0x1, Buffer.from('first'))),
      (error: Error) =>
        /re-entry into a ws Receiver parse loop/.test(error.message) &&
        /checkedStartLoop/.test(error.stack ?? ''),
    );
    // Without re-entry, parsing goes on as usual.
    const plain = new RecordingReceiver(receiverOptions);
    plain.write(Buffer.concat([clientFrame(0x1, Buffer.from('a')), clientFrame(0x1, Buffer.from('b'))]));
    assert.deepEqual(
      plain.events.map(([, args]) => String(args[0])),
      ['a', 'b'],
    );
  });

  it('shapes 1 and 2 missing: startup fails with one line naming what is missing (no fallback)', () => {
    assert.throws(
      () => checkWsShapes({ ...pinned, Receiver: undefined }),
      (error: Error) =>
        error instanceof WsShapeError &&
        /^ws \S+ lacks what wshub relies on \(ws exports Receiver\); wshub pins ws to an exact version, reinstall with npm ci$/.test(
          error.message,
        ),
    );
    assert.throws(
      () => checkWsShapes({ ...pinned, WebSocketServer: class {} }),
      /WebSocketServer\.completeUpgrade constructs options\.WebSocket, sets _extensions and calls setSocket/,
    );
  });

  it('shape 3 missing (an agreement without params): one line, and compression is not negotiated', () => {
    const Deflate = pinned.PerMessageDeflate as unknown as new (...args: unknown[]) => object;
    class WithoutParams extends Deflate {
      accept(): object {
        return {};
      }
    }
    const shapes = checkWsShapes({
      ...pinned,
      PerMessageDeflate: WithoutParams as unknown as WsLibrary['PerMessageDeflate'],
    });
    assert.equal(shapes.compression, false);
    assert.deepEqual(shapes.problems.length, 1);
    assert.match(
      shapes.problems[0] ?? '',
      /PerMessageDeflate#params\/#cleanup not found; --compression is off/,
    );
  });

  it("shape 6: ws's handshake over a stream answers in one write (101) or one end (a refusal)", () => {
    assert.deepEqual(checkHttp2Shapes(), { extendedConnect: true, problems: [] });
    // A ws that wrote its 101 in two writes would put HTTP/1.1 text on the HTTP/2 stream.
    const TwoWrites = class {
      handleUpgrade(_request: unknown, socket: Duplex): void {
        socket.write('HTTP/1.1 101 Switching Protocols\r\n');
        socket.write('Upgrade: websocket\r\n\r\n');
      }
    } as unknown as typeof WebSocketServer;
    const shapes = checkHttp2Shapes({ server: TwoWrites });
    assert.equal(shapes.extendedConnect, false);
    assert.match(
      shapes.problems[0] ?? '',
      /its handshake no longer answers in one write over a stream; --http2 serves HTTP\/2 without WebSockets/,
    );
  });

  it("shape 7: Node's HTTP/2 compatibility request/response build for one stream, else --http2 fails in one line", () => {
    assert.doesNotThrow(() => checkHttp2Shapes());
    assert.throws(
      () => checkHttp2Shapes({ compat: () => false }),
      (error: Error) =>
        error instanceof WsShapeError &&
        /--http2 cannot serve the port's routes: run without --http2$/.test(error.message),
    );
  });

  it('shape 8: a client WebSocket can be built for a stream (_isServer, setSocket, emitClose), else one line', () => {
    assert.doesNotThrow(() => checkHttp2ClientShape());
    class WithoutEmitClose extends WebSocket {}
    Object.defineProperty(WithoutEmitClose.prototype, 'emitClose', { value: undefined });
    assert.throws(
      () => checkHttp2ClientShape(WithoutEmitClose),
      (error: Error) =>
        error instanceof WsShapeError && /_isServer, setSocket and emitClose/.test(error.message),
    );
  });

  // Last: the fallback is process-wide and for good.
  it('shape 4 missing (a handle without fd): one line, and every later write goes through the stream', () => {
    const odd = Object.assign(new Duplex(), { _handle: {} });
    const line = checkDescriptorShape(odd);
    assert.match(line ?? '', /_handle\.fd not found; frames are written through the stream only/);
    const tcpLike = Object.assign(new Duplex(), { _handle: { fd: 5 } });
    assert.equal(descriptorOf(tcpLike), -1);
  });
});
