// Replay detection beyond JetStream's duplicate window: the first processing of a message id claims it in
// the KV bucket phi_seen (atomic create — a compare-and-set on "no entry yet", NATS ADR-8 — entries expire
// after replayWindowMs). A second claim with another ingest sequence is a replay (E_REPLAY); the same sequence
// is this broker group's own redelivery after a crash, which goes on. Keys are the SHA-256 of the id (KV keys
// admit fewer characters than message ids).
import { createHash } from 'node:crypto';
import type { KV } from 'nats';
import { BrokerError } from '../wire/errors.js';
import type { AckedPublisher } from '../nats/acked-publish.js';
import { isWrongLastSequence } from '../nats/jetstream-errors.js';
import { KV_BUCKETS } from '../wire/names.js';

export class ReplayCache {
  constructor(
    private readonly kv: KV,
    private readonly pub: AckedPublisher,
  ) {}

  /** Claims `id` for the ingest message at `seq`; throws E_REPLAY when another message claimed it first. */
  async check(id: string, seq: number): Promise<void> {
    const key = createHash('sha256').update(id).digest('hex');
    const mark = new TextEncoder().encode(String(seq));
    try {
      await this.pub.kvCompareAndSet(KV_BUCKETS.seen, key, mark, 0);
    } catch (err) {
      if (!isWrongLastSequence(err)) throw err; // a NATS failure, retried by the caller
      const entry = await this.kv.get(key);
      if (entry === null) throw err;
      // A deleted or purged claim is claimed anew on top of its marker (what nats.js kv.create does).
      if (entry.operation !== 'PUT')
        return void (await this.pub.kvCompareAndSet(KV_BUCKETS.seen, key, mark, entry.revision));
      if (new TextDecoder().decode(entry.value) === String(seq)) return; // our own redelivery
      throw new BrokerError('E_REPLAY', 'a message with this id was already received', { path: 'id' });
    }
  }
}
