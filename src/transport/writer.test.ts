import assert from 'node:assert/strict';
import { Duplex } from 'node:stream';
import { describe, it } from 'node:test';
import { constants, inflateRawSync } from 'node:zlib';
import { OutboundMessage } from '../hub/message.js';
import { Stats } from '../stats.js';
import { closeFrame, frameMessage } from './frames.js';
import { CLOSED, CLOSING, Writer, WriterGroup } from './writer.js';

/**
 * A transport the test controls: it records what reaches it, can hold writes (a client
 * that does not read: the stream's queue grows) or fail them (EPIPE mid-write), and can
 * pose as a TCP socket with a descriptor (`_handle.fd`) for the direct-write path.
 */
class FakeSocket extends Duplex {
  readonly written: Buffer[] = [];
  hold = false;
  failWith: Error | undefined = undefined;
  private held: Array<() => void> = [];
  _handle: { fd: number } | null = null;

  constructor(fd = -1) {
    super({ allowHalfOpen: true });
    if (fd >= 0) this._handle = { fd };
  }

  override _read(): void {}

  override _write(chunk: Buffer, _encoding: BufferEncoding, done: (error?: Error | null) => void): void {
    if (this.failWith !== undefined) {
      done(this.failWith);
      return;
    }
    this.written.push(chunk);
    if (this.hold) this.held.push(() => done());
    else done();
  }

  release(): void {
    this.hold = false;
    for (const done of this.held.splice(0)) done();
  }

  /** Everything that reached the socket, in order, as one buffer. */
  get bytes(): Buffer {
    return Buffer.concat(this.written);
  }
}

type Owner = { name: string };

function group(
  options: {
    max?: number;
    threshold?: number;
    writeSync?: (fd: number, b: Buffer) => number;
    closeTimeoutMs?: number;
  } = {},
) {
  const stats = new Stats();
  const slow: Array<[Owner, number]> = [];
  const writers = new WriterGroup<Owner>({
    stats,
    maxBufferedBytes: options.max ?? 1000,
    onSlowConsumer: (writer, buffered) => slow.push([writer.owner, buffered]),
    deflateThreshold: options.threshold ?? 1024,
    deflateOptions: { memLevel: 6 },
    writeSync: options.writeSync,
    closeTimeoutMs: options.closeTimeoutMs,
  });
  const writer = (socket = new FakeSocket(), bits = 0, name = 'w'): Writer<Owner> =>
    new Writer(writers, socket, socket._handle?.fd ?? -1, bits, { name });
  return { writers, stats, slow, writer };
}

const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
const text = (value: string, fanOut = false): OutboundMessage =>
  new OutboundMessage(Buffer.from(value), false, fanOut);

/** The frames in written bytes: [opcode, RSV1, payload (inflated when RSV1 is set: RFC 7692 §7.2.2)]. */
function decode(bytes: Buffer): Array<[number, boolean, string]> {
  const out: Array<[number, boolean, string]> = [];
  let offset = 0;
  while (offset < bytes.length) {
    const first = bytes[offset] as number;
    let length = (bytes[offset + 1] as number) & 0x7f;
    let start = offset + 2;
    if (length === 126) {
      length = bytes.readUInt16BE(offset + 2);
      start += 2;
    } else if (length === 127) {
      length = Number(bytes.readBigUInt64BE(offset + 2));
      start += 8;
    }
    const payload = bytes.subarray(start, start + length);
    const compressed = (first & 0x40) !== 0;
    const data = compressed
      ? inflateRawSync(Buffer.concat([payload, Buffer.from([0, 0, 0xff, 0xff])]), {
          finishFlush: constants.Z_SYNC_FLUSH,
        })
      : payload;
    out.push([first & 0x0f, compressed, (first & 0x0f) === 0x8 ? payload.toString('hex') : data.toString()]);
    offset = start + length;
  }
  return out;
}

describe('frames', () => {
  it('frames text and binary as single unmasked final frames (RFC 6455 §5.2), 7-, 16- and 64-bit lengths', () => {
    assert.deepEqual(Buffer.concat(frameMessage(text('hi'))), Buffer.from([0x81, 2, 0x68, 0x69]));
    assert.deepEqual(
      Buffer.concat(frameMessage(new OutboundMessage(Buffer.alloc(0), true))),
      Buffer.from([0x82, 0]),
    );
    for (const size of [125, 126, 4096, 4097, 65_535]) {
      const payload = Buffer.alloc(size, 7);
      const wire = Buffer.concat(frameMessage(new OutboundMessage(payload, true)));
      const header = size < 126 ? [0x82, size] : [0x82, 126, size >> 8, size & 0xff];
      assert.deepEqual([...wire.subarray(0, header.length)], header, `header of a ${size}-byte frame`);
      assert.deepEqual(wire.subarray(header.length), payload);
    }
    const header = frameMessage(new OutboundMessage(Buffer.alloc(70_000), true))[0] as Buffer;
    assert.deepEqual([...header.subarray(0, 2)], [0x82, 127]);
    assert.equal(header.readUIntBE(4, 6), 70_000);
  });

  it('close frames: no body without a code, else the code and the text cut to 123 bytes at a character boundary', () => {
    assert.deepEqual(closeFrame(undefined, 'ignored'), Buffer.from([0x88, 0]));
    assert.deepEqual(closeFrame(1000, 'ok'), Buffer.from([0x88, 4, 0x03, 0xe8, 0x6f, 0x6b]));
    const long = closeFrame(4000, 'é'.repeat(100));
    assert.equal(long[1], 2 + 122, 'the 62nd two-byte character would pass 123 bytes');
    assert.equal(long.subarray(4).toString('utf8'), 'é'.repeat(61));
  });
});

describe('Writer', () => {
  it('frames a message once and writes the same bytes to every receiver', async () => {
    const { stats, writer } = group();
    const [a, b] = [writer(), writer()];
    const message = text('fan-out');
    a.deliver(message);
    const wire = message.wire;
    b.deliver(message);
    assert.equal(message.wire, wire, 'not re-framed for the second receiver');
    await nextTurn();
    assert.deepEqual((a.transport as FakeSocket).bytes, (b.transport as FakeSocket).bytes);
    assert.deepEqual([stats.messagesDelivered, stats.bytesSent], [2, 14]);
  });

  it('writes all frames one turn delivers to a writer in one write, receivers sharing the bytes', async () => {
    const { stats, writer } = group({ max: 1 << 20 });
    const [a, b] = [writer(), writer()];
    const messages = [0, 1, 2].map((i) => text(`m${i}`));
    for (const message of messages) for (const target of [a, b]) target.deliver(message);
    assert.deepEqual(
      [(a.transport as FakeSocket).written.length],
      [0],
      'nothing written before the turn ends',
    );
    await nextTurn();
    const expected = Buffer.concat(messages.flatMap((message) => frameMessage(message)));
    assert.deepEqual((a.transport as FakeSocket).written, [expected]);
    assert.deepEqual((b.transport as FakeSocket).written, [expected]);
    assert.deepEqual([stats.messagesDelivered, stats.socketWrites], [6, 2]);
  });

  it('a control frame between two corked data frames goes out between them', async () => {
    const { writer } = group();
    const a = writer();
    a.deliver(text('one'));
    assert.equal(a.ping(), true);
    a.deliver(text('two'));
    a.pong(Buffer.from('p'));
    a.deliver(text('three'));
    await nextTurn();
    assert.deepEqual(decode((a.transport as FakeSocket).bytes), [
      [0x1, false, 'one'],
      [0x9, false, ''],
      [0x1, false, 'two'],
      [0xa, false, 'p'],
      [0x1, false, 'three'],
    ]);
  });

  it('close during a corked turn: the corked frames, then the close frame; nothing after it', async () => {
    const { writer, stats } = group();
    const a = writer();
    a.deliver(text('one'));
    a.deliver(text('two'));
    a.close(1001, 'bye');
    a.deliver(text('after the close'));
    assert.equal(a.ping(), false);
    a.pong(Buffer.from('late'));
    await nextTurn();
    assert.deepEqual(decode((a.transport as FakeSocket).bytes), [
      [0x1, false, 'one'],
      [0x1, false, 'two'],
      [0x8, false, closeFrame(1001, 'bye').subarray(2).toString('hex')],
    ]);
    assert.equal(stats.messagesDelivered, 2);
    assert.equal(a.state, CLOSING);
    assert.equal(a.transport.writableEnded, false, 'the TCP connection waits for the peer close frame');
    a.transportClosed();
  });

  it('the close handshake: ends the transport once both close frames have passed, or cuts it at the timeout', async () => {
    const { writer } = group({ closeTimeoutMs: 30 });
    // The server closes first; the peer answers.
    const first = writer();
    first.close(1000, '');
    first.closeReceived();
    first.close(1000, '');
    assert.equal(first.transport.writableEnded, true);
    assert.equal(decode((first.transport as FakeSocket).bytes).length, 1, 'one close frame');
    first.transportClosed();
    // The peer closes first: the answer ends the transport at once.
    const second = writer();
    second.closeReceived();
    second.close(4000, 'yours');
    assert.equal(second.transport.writableEnded, true);
    second.transportClosed();
    // The peer never answers: cut after the close timeout.
    const third = writer();
    third.close(1001, 'going');
    await new Promise((resolve) => setTimeout(resolve, 80));
    assert.equal(third.transport.destroyed, true);
    third.transportClosed();
    assert.equal(third.state, CLOSED);
  });

  it('drops and reports only when more than the limit is already waiting (the stream queue counts)', async () => {
    const { writer, stats, slow } = group({ max: 1000 });
    const socket = new FakeSocket();
    socket.hold = true;
    const a = writer(socket, 0, 'slow');
    a.deliver(new OutboundMessage(Buffer.alloc(995), true));
    await nextTurn();
    assert.equal(a.bufferedAmount, 999, 'held in the stream');
    a.deliver(new OutboundMessage(Buffer.alloc(5000), true));
    assert.equal(slow.length, 0, 'below the limit, even with a large message: still written');
    await nextTurn();
    a.deliver(new OutboundMessage(Buffer.alloc(1), true));
    assert.deepEqual(slow, [[{ name: 'slow' }, 999 + 5004]]);
    a.pong(Buffer.from('x'));
    assert.equal(slow.length, 2, 'a pong past the limit is a slow consumer too');
    assert.deepEqual([stats.messagesDelivered, stats.messagesDropped.slow_consumer], [2, 2]);
    socket.release();
  });

  it('compresses once per server window, the same bytes to each such receiver; below the threshold plain', async () => {
    const { writer, stats } = group({ max: 1 << 20, threshold: 100 });
    const [a, b, c, small] = [
      writer(undefined, 12),
      writer(undefined, 12),
      writer(undefined, 0),
      writer(undefined, 9),
    ];
    const large = 'x'.repeat(5000);
    const messages = [
      new OutboundMessage(Buffer.from(large), false, true),
      new OutboundMessage(Buffer.from('below the threshold'), false, true),
      new OutboundMessage(Buffer.from(`${large}!`), true, true),
    ];
    for (const message of messages) for (const target of [a, c, b, small]) target.deliver(message);
    await nextTurn();
    assert.equal(stats.sharedCompressions, 4, 'two messages above the threshold × two window sizes');
    for (const target of [a, b, small]) {
      assert.equal((target.transport as FakeSocket).written.length, 1, 'one write per receiver');
      assert.deepEqual(decode((target.transport as FakeSocket).bytes), [
        [0x1, true, large],
        [0x1, false, 'below the threshold'],
        [0x2, true, `${large}!`],
      ]);
    }
    assert.deepEqual((a.transport as FakeSocket).written, (b.transport as FakeSocket).written);
    assert.deepEqual(
      decode((c.transport as FakeSocket).bytes).map(([, compressed]) => compressed),
      [false, false, false],
    );
  });

  it("compresses a connection's own message (an echo) the same way, in order with broadcasts", async () => {
    const { writer, stats } = group({ max: 1 << 20, threshold: 0 });
    const a = writer(undefined, 15);
    a.deliver(text('fan-out', true));
    a.deliver(text('echo'));
    a.deliver(text('fan-out again', true));
    await nextTurn();
    assert.deepEqual(decode((a.transport as FakeSocket).bytes), [
      [0x1, true, 'fan-out'],
      [0x1, true, 'echo'],
      [0x1, true, 'fan-out again'],
    ]);
    assert.equal(stats.sharedCompressions, 2, 'only broadcasts count as shared compressions');
  });

  it('direct writes: a partial write(2) queues the rest through the stream, intact', async () => {
    const calls: number[] = [];
    const { writer } = group({
      writeSync: (fd, buffer) => {
        calls.push(fd);
        return Math.min(3, buffer.length);
      },
    });
    const socket = new FakeSocket(42);
    const a = writer(socket);
    a.deliver(text('hello world'));
    await nextTurn();
    assert.deepEqual(calls, [42]);
    // The first 3 bytes went to the "kernel" (the fake descriptor), the rest through the stream.
    const frame = Buffer.concat(frameMessage(text('hello world')));
    assert.deepEqual(socket.bytes, frame.subarray(3));
  });

  it('direct writes: EAGAIN hands the bytes to the stream, and nothing overtakes them while it holds bytes', async () => {
    let calls = 0;
    const { writer } = group({
      writeSync: () => {
        calls++;
        throw Object.assign(new Error('EAGAIN'), { code: 'EAGAIN' });
      },
    });
    const socket = new FakeSocket(7);
    socket.hold = true;
    const a = writer(socket);
    a.deliver(text('one'));
    await nextTurn();
    a.ping();
    a.deliver(text('two'));
    await nextTurn();
    assert.equal(calls, 1, 'no direct write while the stream holds bytes');
    socket.release();
    assert.deepEqual(decode(socket.bytes), [
      [0x1, false, 'one'],
      [0x9, false, ''],
      [0x1, false, 'two'],
    ]);
  });

  it('an error mid-write: the transport is destroyed with the error; later writes do nothing and do not throw', async () => {
    const { writer } = group();
    const socket = new FakeSocket();
    socket.on('error', () => {});
    const a = writer(socket);
    a.deliver(text('one'));
    await nextTurn();
    socket.failWith = Object.assign(new Error('write EPIPE'), { code: 'EPIPE', syscall: 'write' });
    a.deliver(text('two'));
    await nextTurn();
    await nextTurn();
    assert.equal(socket.destroyed, true);
    assert.equal((socket.errored as NodeJS.ErrnoException | null)?.code, 'EPIPE');
    a.deliver(text('three'));
    a.ping();
    a.close(1000, '');
    await nextTurn();
    assert.deepEqual(decode(socket.bytes), [[0x1, false, 'one']]);
    a.transportClosed(); // as the transport's 'close' does: the close timer stops
  });

  it('terminate discards corked frames and destroys the transport', async () => {
    const { writer } = group();
    const a = writer();
    a.deliver(text('one'));
    a.terminate();
    await nextTurn();
    assert.equal(a.transport.destroyed, true);
    assert.deepEqual((a.transport as FakeSocket).written, []);
  });
});
