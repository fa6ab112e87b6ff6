// The patient-to-service registry in the JetStream KV bucket phi_registry. Several broker processes write
// it at once, so every update is a compare-and-set on the key's revision (KV `create` for the first write,
// `update(key, value, revision)` after; NATS ADR-8: the Nats-Expected-Last-Subject-Sequence header): a
// write based on a stale revision is refused by the server and retried on a fresh read, so no update is lost.
// Keys are keyed patient pseudonyms (pseudonym.ts) or UNRESOLVED_KEY — never a raw identifier.
//
// The hot path (one update per ingest message) avoids the read: the store remembers the record and revision
// last wrote per key (a bounded LRU, RECENT_KEYS) and writes on top of that optimistically; only
// a refused compare-and-set (another writer was there first) or a miss costs a fresh read. Updates of one key
// within this process are serialised and group-committed: observations that arrive while the key's write is
// in flight are merged into the next write, one compare-and-set for all of them. A key another writer keeps
// changing (two broker processes taking turns with one patient's messages) is marked contended after its
// optimistic write is refused: it is read before each write — two round trips, not a refused write, a read
// and the retry — until a read shows that nobody else wrote since this store did, and then goes optimistic again. Writes go out through
// src/nats/acked-publish.ts (the KV compare-and-set as a plain acknowledged publish).
import { type KV, type NatsConnection } from 'nats';
import { SINGLE_NODE_REPLICAS, bucketPlacement, type Replicas } from '../nats/setup.js';
import { AckedPublisher } from '../nats/acked-publish.js';
import { KV_BUCKETS } from '../wire/names.js';
import {
  applyObservation,
  decodeRecord,
  emptyRecord,
  encodeRecord,
  type Observation,
  type RegistryRecord,
} from './record.js';

/** The explicit record of patient-compartment resources whose patient did not resolve (catalog `unresolved: accept`). */
export const UNRESOLVED_KEY = '_unresolved';

/** JetStream API error "wrong last sequence" (10071): another writer changed the key since our read. */
const WRONG_LAST_SEQUENCE = 10071;

/** How many compare-and-set rounds one update tries before reporting the registry busy. */
const MAX_ATTEMPTS = 100;

/** How many keys' last known record and revision the store remembers (least recently used dropped first). */
export const RECENT_KEYS = 1024;

/** The registry could not be written (busy beyond MAX_ATTEMPTS, or a stored value unreadable): retry the message. */
export class RegistryUnavailable extends Error {
  override readonly name = 'RegistryUnavailable';
}

export interface RegistryStats {
  /** Observations recorded (each a new message counted). */
  updates: number;
  /** Compare-and-set writes that succeeded (one per group commit, so ≤ updates). */
  writes: number;
  /** Compare-and-set rounds lost to a concurrent writer, or to a stale remembered revision (each retried). */
  conflicts: number;
  /** Observations already counted (a redelivered message). */
  duplicates: number;
  /** Reads of a key's current record (a miss in the remembered revisions, or after a conflict). */
  reads: number;
}

/** A key's record at a revision (0: the key has no entry; a delete or purge marker's: an empty record on top of it). */
interface Known {
  readonly record: RegistryRecord;
  readonly revision: number;
}

/** Observations waiting for one write of their key, and the callers waiting for it. */
interface Batch {
  readonly observations: Observation[];
  readonly done: Promise<void>;
  resolve(): void;
  reject(err: unknown): void;
}

function newBatch(): Batch {
  let resolve!: () => void;
  let reject!: (err: unknown) => void;
  const done = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { observations: [], done, resolve, reject };
}

/**
 * The bucket, created when missing (by the admin identity's provisioning under mTLS, src/runtime/provision.ts; the
 * broker then only reads its stream info). `views.kv` never updates an existing bucket.
 */
export async function ensureRegistryBucket(nc: NatsConnection, replicas: Replicas = SINGLE_NODE_REPLICAS): Promise<KV> {
  return nc.jetstream().views.kv(KV_BUCKETS.registry, { history: 1, ...bucketPlacement(replicas) });
}

export class RegistryStore {
  readonly stats: RegistryStats = { updates: 0, writes: 0, conflicts: 0, duplicates: 0, reads: 0 };
  /** Last known record and revision per key, least recently used first. */
  private readonly known = new Map<string, Known>();
  /** Keys whose remembered revision another writer made stale, least recently marked first: read before writing. */
  private readonly contended = new Set<string>();
  /** Keys with a write in flight, and the batch that goes next. */
  private readonly writing = new Map<string, { next: Batch | undefined }>();

  /** The compare-and-set writes' publisher, made on the first write (readers never need one). */
  private pub: AckedPublisher | undefined;

  private constructor(
    readonly kv: KV,
    private readonly nc: NatsConnection,
  ) {}

  /** Binds to (creating when missing) the bucket; history 1 — the registry is state, the audit trail is the history. */
  static async open(nc: NatsConnection, replicas: Replicas = SINGLE_NODE_REPLICAS): Promise<RegistryStore> {
    return new RegistryStore(await ensureRegistryBucket(nc, replicas), nc);
  }

  /** The key's record as stored now (always read from the server). */
  async get(key: string): Promise<RegistryRecord | undefined> {
    const entry = await this.kv.get(key);
    if (entry === null || entry.operation !== 'PUT') return undefined;
    return decodeRecord(entry.value);
  }

  /**
   * Merges `obs` into the record at `key` by compare-and-set, retrying on a concurrent write; resolves once
   * the write that carries it is stored.
   */
  record(key: string, obs: Observation): Promise<void> {
    const inFlight = this.writing.get(key);
    if (inFlight !== undefined) {
      inFlight.next ??= newBatch();
      inFlight.next.observations.push(obs);
      return inFlight.next.done;
    }
    const state: { next: Batch | undefined } = { next: undefined };
    this.writing.set(key, state);
    const first = newBatch();
    first.observations.push(obs);
    // Cannot reject: drain settles each batch's promise with its write's outcome (callers get it via `done`).
    void this.drain(key, state, first);
    return first.done;
  }

  /** Writes the key's batches one after the other until none is waiting. */
  private async drain(key: string, state: { next: Batch | undefined }, first: Batch): Promise<void> {
    let batch: Batch | undefined = first;
    while (batch !== undefined) {
      try {
        await this.write(key, batch.observations);
        batch.resolve();
      } catch (err) {
        batch.reject(err);
      }
      batch = state.next;
      state.next = undefined;
    }
    this.writing.delete(key);
  }

  private async write(key: string, observations: readonly Observation[]): Promise<void> {
    for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
      const remembered = this.recall(key);
      const contended = this.contended.has(key);
      const base = (contended ? undefined : remembered) ?? (await this.read(key));
      let next = base.record;
      let added = 0;
      for (const obs of observations) {
        const merged = applyObservation(next, obs);
        if (merged !== next) added += 1;
        next = merged;
      }
      if (added === 0) {
        this.stats.duplicates += observations.length;
        return;
      }
      try {
        // Revision 0 creates the key; a deleted or purged key is re-created on top of its tombstone's revision.
        this.pub ??= new AckedPublisher(this.nc);
        const revision = await this.pub.kvCompareAndSet(KV_BUCKETS.registry, key, encodeRecord(next), base.revision);
        this.remember(key, { record: next, revision });
        // Nobody else wrote between this store's last write and the read: optimistic writes pay again.
        if (contended && remembered?.revision === base.revision) this.contended.delete(key);
        this.stats.updates += added;
        this.stats.duplicates += observations.length - added;
        this.stats.writes += 1;
        return;
      } catch (err) {
        // Whatever happened, what this store knew about the key may be stale now: read it afresh next time.
        this.known.delete(key);
        if (!isConflict(err)) throw err;
        this.stats.conflicts += 1;
        if (base === remembered) this.markContended(key);
      }
    }
    throw new RegistryUnavailable(`the registry key stayed contended for ${MAX_ATTEMPTS} compare-and-set rounds`);
  }

  private recall(key: string): Known | undefined {
    const k = this.known.get(key);
    if (k !== undefined) {
      this.known.delete(key);
      this.known.set(key, k);
    }
    return k;
  }

  private remember(key: string, k: Known): void {
    this.known.delete(key);
    this.known.set(key, k);
    if (this.known.size > RECENT_KEYS) {
      const oldest = this.known.keys().next();
      if (oldest.done !== true) this.known.delete(oldest.value);
    }
  }

  private markContended(key: string): void {
    this.contended.delete(key);
    this.contended.add(key);
    if (this.contended.size > RECENT_KEYS) {
      const oldest = this.contended.keys().next();
      if (oldest.done !== true) this.contended.delete(oldest.value);
    }
  }

  private async read(key: string): Promise<Known> {
    this.stats.reads += 1;
    const entry = await this.kv.get(key);
    if (entry === null) return { record: emptyRecord(), revision: 0 };
    if (entry.operation !== 'PUT') return { record: emptyRecord(), revision: entry.revision };
    try {
      return { record: decodeRecord(entry.value), revision: entry.revision };
    } catch (err) {
      throw new RegistryUnavailable(`the registry record is unreadable: ${(err as Error).message}`);
    }
  }
}

function isConflict(err: unknown): boolean {
  return (err as { api_error?: { err_code?: number } } | null)?.api_error?.err_code === WRONG_LAST_SEQUENCE;
}
