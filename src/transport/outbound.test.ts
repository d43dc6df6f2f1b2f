import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { describe, it } from 'node:test';
import { constants, inflateRawSync } from 'node:zlib';
import { OutboundMessage } from '../hub/message.js';
import { Stats } from '../stats.js';
import { frameMessage, Outbound, type OutboundTarget } from './outbound.js';

class FakeTarget implements OutboundTarget {
  readyState = 1;
  bufferedAmount = 0;
  readonly written: Buffer[] = [];
  readonly sent: Array<{ data: Buffer; binary: boolean }> = [];
  readonly framedSocket: PassThrough | undefined;
  senderIdle = true;
  readonly framedFd = -1;
  pendingFirst: OutboundMessage | undefined = undefined;
  pendingRest: OutboundMessage[] | undefined = undefined;
  pendingCount = 0;
  pendingBytes = 0;

  constructor(
    framed = true,
    readonly deflateWindowBits = 0,
  ) {
    const socket = new PassThrough();
    socket.on('data', (chunk: Buffer) => this.written.push(chunk));
    this.framedSocket = framed ? socket : undefined;
  }

  send(data: Buffer, options: { binary: boolean }): void {
    this.sent.push({ data, binary: options.binary });
  }
}

function outbound(maxBufferedBytes = 1000, deflateThreshold = 1024) {
  const stats = new Stats();
  const slow: Array<[OutboundTarget, number]> = [];
  const out = new Outbound({
    stats,
    maxBufferedBytes,
    onSlowConsumer: (t, b) => slow.push([t, b]),
    deflateThreshold,
    deflateOptions: { memLevel: 6 },
  });
  return { out, stats, slow };
}

const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** The messages of written bytes: [RSV1 set, payload inflated when set] per frame (RFC 7692 §7.2.2). */
function decode(bytes: Buffer): Array<[boolean, string]> {
  const out: Array<[boolean, string]> = [];
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
    out.push([compressed, data.toString()]);
    offset = start + length;
  }
  return out;
}

describe('frameMessage', () => {
  it('frames text and binary as single unmasked final frames (RFC 6455 §5.2)', () => {
    assert.deepEqual(
      Buffer.concat(frameMessage(new OutboundMessage(Buffer.from('hi'), false))),
      Buffer.from([0x81, 2, 0x68, 0x69]),
    );
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
});

describe('Outbound', () => {
  it('frames a message once and writes the same buffers to every receiver', async () => {
    const { out, stats } = outbound();
    const [a, b] = [new FakeTarget(), new FakeTarget()];
    const message = new OutboundMessage(Buffer.from('fan-out'), false);
    out.deliver(a, message);
    const wire = message.wire;
    out.deliver(b, message);
    assert.equal(message.wire, wire, 'not re-framed for the second receiver');
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(Buffer.concat(a.written), Buffer.concat(b.written));
    assert.deepEqual([stats.messagesDelivered, stats.bytesSent], [2, 14]);
  });

  it('writes all frames one turn delivers to a target in one write, receivers sharing the bytes', async () => {
    const { out, stats } = outbound(1 << 20);
    const [a, b] = [new FakeTarget(), new FakeTarget()];
    const messages = [0, 1, 2].map((i) => new OutboundMessage(Buffer.from(`m${i}`), false));
    for (const message of messages) for (const target of [a, b]) out.deliver(target, message);
    assert.deepEqual([a.written.length, b.written.length], [0, 0], 'nothing written before the turn ends');
    await new Promise((resolve) => setImmediate(resolve));
    const expected = Buffer.concat(messages.flatMap((message) => frameMessage(message)));
    assert.deepEqual(a.written, [expected]);
    assert.deepEqual(b.written, [expected]);
    assert.deepEqual([stats.messagesDelivered, stats.socketWrites], [6, 2]);
  });

  it('hands the message to ws when the connection has an extension', () => {
    const { out } = outbound();
    const target = new FakeTarget(false);
    const message = new OutboundMessage(Buffer.from([1, 2]), true);
    out.deliver(target, message);
    assert.deepEqual(target.sent, [{ data: message.data, binary: true }]);
    assert.equal(message.wire, undefined);
  });

  it('drops and reports only when more than the limit is already waiting', async () => {
    const { out, stats, slow } = outbound(1000);
    const target = new FakeTarget();
    target.bufferedAmount = 1000;
    out.deliver(target, new OutboundMessage(Buffer.alloc(5000), true));
    assert.equal(slow.length, 0, 'at the limit and with a large message: still written');
    await new Promise((resolve) => setImmediate(resolve)); // the corked write goes out at the end of the turn
    target.bufferedAmount = 1001;
    out.deliver(target, new OutboundMessage(Buffer.alloc(1), true));
    assert.deepEqual(slow, [[target, 1001]]);
    assert.deepEqual([stats.messagesDelivered, stats.messagesDropped.slow_consumer], [1, 1]);
  });

  it('writes nothing to a connection that is closing', () => {
    const { out, stats } = outbound();
    const target = new FakeTarget(false);
    target.readyState = 2;
    out.deliver(target, new OutboundMessage(Buffer.from('late'), false));
    assert.deepEqual(
      [target.sent.length, stats.messagesDelivered, stats.messagesDropped.slow_consumer],
      [0, 0, 0],
    );
  });

  it('compresses a broadcast once per server window and writes the same bytes to each such receiver', async () => {
    const { out, stats } = outbound(1 << 20, 100);
    const [a, b, c, small] = [
      new FakeTarget(true, 12),
      new FakeTarget(true, 12),
      new FakeTarget(true, 0),
      new FakeTarget(true, 9),
    ];
    const large = 'x'.repeat(5000);
    const messages = [
      new OutboundMessage(Buffer.from(large), false, true),
      new OutboundMessage(Buffer.from('below the threshold'), false, true),
      new OutboundMessage(Buffer.from(`${large}!`), true, true),
    ];
    for (const message of messages) for (const target of [a, c, b, small]) out.deliver(target, message);
    await nextTurn();
    assert.equal(stats.sharedCompressions, 4, 'two messages above the threshold × two window sizes');
    const expected = [
      [true, large],
      [false, 'below the threshold'],
      [true, `${large}!`],
    ];
    for (const target of [a, b, small]) {
      assert.equal(target.written.length, 1, 'one write per receiver');
      assert.deepEqual(decode(target.written[0] as Buffer), expected);
    }
    assert.deepEqual(a.written, b.written, 'receivers of one window share the bytes');
    assert.deepEqual(
      decode(Buffer.concat(c.written)).map(([compressed]) => compressed),
      [false, false, false],
    );
    assert.equal(stats.socketWrites, 4);
  });

  it('leaves a message that is not a broadcast (echo) to ws on a compressing connection', async () => {
    const { out, stats } = outbound(1 << 20, 0);
    const target = new FakeTarget(true, 15);
    out.deliver(target, new OutboundMessage(Buffer.from('fan-out'), false, true));
    out.deliver(target, new OutboundMessage(Buffer.from('echo'), false));
    assert.equal(target.written.length, 1, 'the corked broadcast went out before ws sends the echo');
    assert.deepEqual(decode(target.written[0] as Buffer), [[true, 'fan-out']]);
    assert.deepEqual(
      target.sent.map(({ data }) => data.toString()),
      ['echo'],
    );
    await nextTurn();
    assert.equal(stats.sharedCompressions, 1);
  });

  it('queues corked frames behind ws while its sender is busy, in order', async () => {
    const { out } = outbound(1 << 20, 0);
    const target = new FakeTarget(true, 12);
    const messages = ['one', 'two', 'three'].map(
      (text) => new OutboundMessage(Buffer.from(text), false, true),
    );
    for (const message of messages) out.deliver(target, message);
    target.senderIdle = false;
    await nextTurn();
    assert.deepEqual(target.written, []);
    assert.deepEqual(
      target.sent.map(({ data }) => data.toString()),
      ['one', 'two', 'three'],
    );
  });
});
