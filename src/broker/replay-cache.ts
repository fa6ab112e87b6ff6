// Replay detection beyond JetStream's duplicate window: the first processing of a message id claims it in
// the KV bucket phi_seen (atomic create, entries expire after replayWindowMs). A second claim with another
// ingest sequence is a replay (E_REPLAY); the same sequence is this broker group's own redelivery after a
// crash, which goes on. Keys are the SHA-256 of the id (KV keys admit fewer characters than message ids).
import { createHash } from 'node:crypto';
import type { KV } from 'nats';
import { BrokerError } from '../errors.js';

export class ReplayCache {
  constructor(private readonly kv: KV) {}

  /** Claims `id` for the ingest message at `seq`; throws E_REPLAY when another message claimed it first. */
  async check(id: string, seq: number): Promise<void> {
    const key = createHash('sha256').update(id).digest('hex');
    const mark = new TextEncoder().encode(String(seq));
    try {
      await this.kv.create(key, mark);
    } catch (err) {
      const entry = await this.kv.get(key);
      if (entry === null) throw err; // not a conflict: a NATS failure, retried by the caller
      if (new TextDecoder().decode(entry.value) === String(seq)) return; // our own redelivery
      throw new BrokerError('E_REPLAY', 'a message with this id was already received', { path: 'id' });
    }
  }
}
