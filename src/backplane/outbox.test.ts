import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RateLimitedLog, silentLogger } from '../log.js';
import { BackplaneStats, HistoryStats } from '../stats.js';
import { Outbox, type OutboxMessage } from './outbox.js';

/** An outbox whose sends the test answers one by one, in any order. */
function outboxWithManualAnswers() {
  const sent: Array<{ message: OutboxMessage; resolve: () => void; reject: (error: Error) => void }> = [];
  const history = new HistoryStats();
  const counters = new BackplaneStats();
  const outbox = new Outbox({
    send: (message) =>
      new Promise<void>((resolve, reject) => {
        sent.push({ message, resolve, reject });
      }),
    isConnected: () => true,
    maxBytes: 1024 * 1024,
    history,
    counters,
    limitedLog: new RateLimitedLog(silentLogger),
  });
  return { outbox, sent, history, counters };
}

const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

async function until(condition: () => boolean, what: string): Promise<void> {
  const deadline = performance.now() + 5000;
  while (!condition()) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

describe('Outbox: every message is stored once Redis answers it, however the answers come', () => {
  it('a failed send is sent again even when the last answer of its round is a success (one shard down on a Redis Cluster)', async () => {
    const { outbox, sent, history, counters } = outboxWithManualAnswers();
    outbox.push('on-the-dead-shard', 'wshub:{a}', 1, Buffer.from('first'));
    outbox.push('on-a-live-shard', 'wshub:{b}', 1, Buffer.from('second'));
    assert.equal(sent.length, 2, 'both pipelined');
    sent[0]?.reject(new Error('Connection is closed.'));
    await settle();
    sent[1]?.resolve();
    await settle();
    // The round is over with a failure in it: the failed message goes again after the retry delay.
    await until(() => sent.length === 3, 'the failed message is sent again');
    assert.equal(sent[2]?.message.room, 'on-the-dead-shard');
    sent[2]?.resolve();
    await settle();
    assert.equal(outbox.depth, 0, 'nothing left waiting');
    assert.equal(history.redeliveries, 1);
    assert.equal(counters.published, 2);
    // And the outbox keeps publishing what comes next.
    outbox.push('on-a-live-shard', 'wshub:{b}', 2, Buffer.from('third'));
    assert.equal(sent.length, 4);
  });

  it('a round that ends with a failure is retried too, from the oldest message not stored', async () => {
    const { outbox, sent } = outboxWithManualAnswers();
    outbox.push('a', 'wshub:{a}', 1, Buffer.from('one'));
    outbox.push('a', 'wshub:{a}', 2, Buffer.from('two'));
    sent[0]?.resolve();
    await settle();
    sent[1]?.reject(new Error('Connection is closed.'));
    await until(() => sent.length === 3, 'the failed message is sent again');
    assert.equal(sent[2]?.message.sequence, 2);
    sent[2]?.resolve();
    await settle();
    assert.equal(outbox.depth, 0);
  });
});
