// The patient-to-service registry in the JetStream KV bucket phi_registry. Several broker processes write
// it at once, so every update is a compare-and-set on the key's revision (KV `create` for the first write,
// `update(key, value, revision)` after; NATS ADR-8: the Nats-Expected-Last-Subject-Sequence header): a
// write based on a stale read is refused by the server and retried on a fresh read, so no update is lost.
// Keys are keyed patient pseudonyms (pseudonym.ts) or UNRESOLVED_KEY — never a raw identifier.
import { StorageType, type KV, type NatsConnection } from 'nats';
import { KV_BUCKETS } from '../nats/names.js';
import { applyObservation, decodeRecord, emptyRecord, encodeRecord, type Observation, type RegistryRecord } from './record.js';

/** The explicit record of patient-compartment resources whose patient did not resolve (catalog `unresolved: accept`). */
export const UNRESOLVED_KEY = '_unresolved';

/** JetStream API error "wrong last sequence" (10071): another writer changed the key since our read. */
const WRONG_LAST_SEQUENCE = 10071;

/** How many compare-and-set rounds one update tries before reporting the registry busy. */
const MAX_ATTEMPTS = 100;

/** The registry could not be written (busy beyond MAX_ATTEMPTS, or a stored value unreadable): retry the message. */
export class RegistryUnavailable extends Error {
  override readonly name = 'RegistryUnavailable';
}

export interface RegistryStats {
  updates: number;
  /** Compare-and-set rounds lost to a concurrent writer (each retried). */
  conflicts: number;
  /** Observations already counted (a redelivered message). */
  duplicates: number;
}

/**
 * The bucket, created when missing (by the admin identity's provisioning under mTLS, src/nats/provision.ts; the
 * broker then only reads its stream info). `views.kv` never updates an existing bucket.
 */
export async function ensureRegistryBucket(nc: NatsConnection): Promise<KV> {
  return nc.jetstream().views.kv(KV_BUCKETS.registry, { history: 1, storage: StorageType.File });
}

export class RegistryStore {
  readonly stats: RegistryStats = { updates: 0, conflicts: 0, duplicates: 0 };

  private constructor(readonly kv: KV) {}

  /** Binds to (creating when missing) the bucket; history 1 — the registry is state, the audit trail is the history. */
  static async open(nc: NatsConnection): Promise<RegistryStore> {
    return new RegistryStore(await ensureRegistryBucket(nc));
  }

  async get(key: string): Promise<RegistryRecord | undefined> {
    const entry = await this.kv.get(key);
    if (entry === null || entry.operation !== 'PUT') return undefined;
    return decodeRecord(entry.value);
  }

  /** Merges `obs` into the record at `key` by compare-and-set, retrying on a concurrent write. */
  async record(key: string, obs: Observation): Promise<void> {
    for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
      const entry = await this.kv.get(key);
      const live = entry !== null && entry.operation === 'PUT';
      let current: RegistryRecord;
      try {
        current = live ? decodeRecord(entry.value) : emptyRecord();
      } catch (err) {
        throw new RegistryUnavailable(`the registry record is unreadable: ${(err as Error).message}`);
      }
      const next = applyObservation(current, obs);
      if (next === current) {
        this.stats.duplicates += 1;
        return;
      }
      try {
        // A deleted or purged key is re-created on top of its tombstone's revision (what kv.create does).
        if (entry === null) await this.kv.create(key, encodeRecord(next));
        else await this.kv.update(key, encodeRecord(next), entry.revision);
        this.stats.updates += 1;
        return;
      } catch (err) {
        if (!isConflict(err)) throw err;
        this.stats.conflicts += 1;
      }
    }
    throw new RegistryUnavailable(`the registry key stayed contended for ${MAX_ATTEMPTS} compare-and-set rounds`);
  }
}

function isConflict(err: unknown): boolean {
  return (err as { api_error?: { err_code?: number } } | null)?.api_error?.err_code === WRONG_LAST_SEQUENCE;
}
