// AckBatch (src/sdk/ack-batch.ts): acknowledgements taken during one turn of the event loop are sent together after
// it, in the order taken, never before; flush() sends them at once; an ack the connection refuses is reported and
// does not stop the others.
import type { JsMsg } from 'nats';
import { describe, expect, it } from 'vitest';
import { AckBatch } from '../../src/sdk/ack-batch.js';

/** The one JsMsg member AckBatch calls; records what was acknowledged. */
function delivery(id: string, sent: string[], fail = false): JsMsg {
  return {
    ack: () => {
      if (fail) throw new Error(`connection closed (${id})`);
      sent.push(id);
    },
  } as unknown as JsMsg;
}

const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe('AckBatch', () => {
  it('sends nothing while the turn runs, then every ack of the turn in order', async () => {
    const sent: string[] = [];
    const batch = new AckBatch(() => undefined);
    batch.ack(delivery('a', sent));
    await Promise.resolve(); // microtasks of the same turn (a consume loop's next delivery) do not send it
    batch.ack(delivery('b', sent));
    expect(sent).toEqual([]);
    expect(batch.pending).toBe(2);
    await nextTurn();
    expect(sent).toEqual(['a', 'b']);
    expect(batch.pending).toBe(0);
    batch.ack(delivery('c', sent));
    await nextTurn();
    expect(sent).toEqual(['a', 'b', 'c']);
  });

  it('flush() sends what is queued at once, and the scheduled turn then sends nothing twice', async () => {
    const sent: string[] = [];
    const batch = new AckBatch(() => undefined);
    batch.ack(delivery('a', sent));
    batch.ack(delivery('b', sent));
    batch.flush();
    expect(sent).toEqual(['a', 'b']);
    await nextTurn();
    expect(sent).toEqual(['a', 'b']);
  });

  it('an ack that throws goes to onError; the acks after it are still sent', async () => {
    const sent: string[] = [];
    const errors: string[] = [];
    const batch = new AckBatch((err) => errors.push((err as Error).message));
    batch.ack(delivery('a', sent));
    batch.ack(delivery('b', sent, true));
    batch.ack(delivery('c', sent));
    await nextTurn();
    expect(sent).toEqual(['a', 'c']);
    expect(errors).toEqual(['connection closed (b)']);
  });
});
