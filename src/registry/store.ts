// The patient-to-service registry in the JetStream KV bucket phi_registry, written by compare-and-set (NATS ADR-8)
// from several broker processes; remembered revisions, contended keys and group commit: docs/patient-rights.md#registry.
import { type KV, type NatsConnection } from 'nats';
import { SINGLE_NODE_REPLICAS, bucketPlacement, type Replicas } from '../nats/setup.js';
import { AckedPublisher } from '../nats/acked-publish.js';
import { isWrongLastSequence } from '../nats/jetstream-errors.js';
import { retryOnConflict } from '../nats/kv-cas.js';
import { isBrokerError } from '../wire/errors.js';
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

/** How many keys' last known record and revision the store remembers (least recently used dropped first). */
export const RECENT_KEYS = 1024;

/** The registry could not be written (contended beyond the compare-and-set attempts, or a stored value unreadable): retry the message. */
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
    try {
      await retryOnConflict(() => this.writeOnce(key, observations), { path: KV_BUCKETS.registry });
    } catch (err) {
      if (isBrokerError(err) && err.code === 'E_KV_CONTENDED')
        throw new RegistryUnavailable(err.message, { cause: err });
      throw err;
    }
  }

  /** One compare-and-set round: on top of the remembered revision, or of a fresh read when there is none or the key is contended. */
  private async writeOnce(key: string, observations: readonly Observation[]): Promise<void> {
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
    } catch (err) {
      // Whatever happened, what this store knew about the key may be stale now: read it afresh next time.
      this.known.delete(key);
      if (isWrongLastSequence(err)) {
        this.stats.conflicts += 1;
        if (base === remembered) this.markContended(key);
      }
      throw err;
    }
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
