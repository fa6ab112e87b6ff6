// Subscription state in NATS KV, so any gateway instance can answer for any subscription and take over its
// deliveries: `sub.<id>` (the record and its counters), `topic.<partner>.<Type>` (the one live subscription of a
// partner to a topic), `lease.<partner>.<Type>` (which instance delivers it). Every change is a compare-and-set
// (src/nats/kv-cas.ts). Events live in their own bucket, `<id>.<number>`, as the sealed delivery, with a read index
// `<id>.id.<digest>` (the partner's keyed digest of `<Type>/<id>` of the copy, worker.ts) naming the latest event.
import type { KV } from 'nats';
import { kvCompareAndSet, type KvCodec } from '../../nats/kv-cas.js';
import { BrokerError } from '../../wire/errors.js';
import type { SubscriptionRecord } from './model.js';

function jsonCodec<T>(): KvCodec<T> {
  return {
    encode: (v: T): Uint8Array => new TextEncoder().encode(JSON.stringify(v)),
    decode: (b: Uint8Array): T => JSON.parse(new TextDecoder().decode(b)) as T,
  };
}
const recordCodec = jsonCodec<SubscriptionRecord>();
const leaseCodec = jsonCodec<Lease>();
const eventCodec = jsonCodec<StoredEvent>();
const indexCodec = jsonCodec<ReadIndexEntry>();

/** Which event last carried a resource id (`GET /[type]/[id]`). */
export interface ReadIndexEntry {
  readonly number: number;
  readonly at: string;
}

/** One numbered event: the delivery exactly as PHI_DELIVER held it (sealed for the partner, signed by the broker). */
export interface StoredEvent {
  readonly number: number;
  /** PHI_DELIVER stream sequence. */
  readonly seq: number;
  /** Base64 of the envelope bytes. */
  readonly data: string;
  /** The broker's signature header. */
  readonly sig: string | undefined;
  readonly at: string;
}

interface Lease {
  readonly holder: string;
  readonly until: number;
}

export class SubscriptionStore {
  constructor(
    private readonly subs: KV,
    private readonly events: KV,
  ) {}

  async get(id: string): Promise<SubscriptionRecord | undefined> {
    const e = await this.subs.get(`sub.${id}`);
    return e === null || e.operation !== 'PUT' ? undefined : recordCodec.decode(e.value);
  }

  /** The live subscription of `partner` to `type`, if any. */
  async forTopic(partner: string, type: string): Promise<SubscriptionRecord | undefined> {
    const e = await this.subs.get(`topic.${partner}.${type}`);
    if (e === null || e.operation !== 'PUT') return undefined;
    const sub = await this.get(new TextDecoder().decode(e.value));
    return sub?.status === 'off' ? undefined : sub;
  }

  /** Stores a new subscription; refused when the partner already has a live one to that topic. */
  async create(record: SubscriptionRecord): Promise<void> {
    const key = `topic.${record.partner}.${record.resourceType}`;
    const existing = await this.forTopic(record.partner, record.resourceType);
    if (existing !== undefined)
      throw new BrokerError(
        'E_SUBSCRIPTION_INVALID',
        `you already have Subscription/${existing.id} to this topic; delete it first`,
        { path: 'Subscription.criteria' },
      );
    await this.subs.put(`sub.${record.id}`, recordCodec.encode(record));
    const prev = await this.subs.get(key);
    const bytes = new TextEncoder().encode(record.id);
    // Two racing creates: the compare-and-set lets one win; the loser's record is switched off.
    try {
      if (prev === null) await this.subs.create(key, bytes);
      else await this.subs.update(key, bytes, prev.revision);
    } catch (err) {
      await this.update(record.id, (r) => ({ ...r, status: 'off' }));
      throw new BrokerError(
        'E_SUBSCRIPTION_INVALID',
        'another subscription to this topic was created at the same time',
        {
          path: 'Subscription.criteria',
          cause: err,
        },
      );
    }
  }

  /** Applies `change` by compare-and-set; returns the stored record. */
  async update(id: string, change: (r: SubscriptionRecord) => SubscriptionRecord): Promise<SubscriptionRecord> {
    const r = await kvCompareAndSet(
      this.subs,
      `sub.${id}`,
      recordCodec,
      (cur) => (cur === undefined ? undefined : change(cur)),
      { path: `subscription ${id}` },
    );
    if (r.value === undefined) throw new BrokerError('E_SUBSCRIPTION_UNKNOWN', 'no such subscription', { path: 'id' });
    return r.value;
  }

  async putEvent(subId: string, e: StoredEvent): Promise<void> {
    await this.events.put(`${subId}.${e.number}`, eventCodec.encode(e));
  }

  async getEvent(subId: string, n: number): Promise<StoredEvent | undefined> {
    const e = await this.events.get(`${subId}.${n}`);
    return e === null || e.operation !== 'PUT' ? undefined : eventCodec.decode(e.value);
  }

  async putIndex(subId: string, digest: string, entry: ReadIndexEntry): Promise<void> {
    await this.events.put(`${subId}.id.${digest}`, indexCodec.encode(entry));
  }

  async getIndex(subId: string, digest: string): Promise<ReadIndexEntry | undefined> {
    const e = await this.events.get(`${subId}.id.${digest}`);
    return e === null || e.operation !== 'PUT' ? undefined : indexCodec.decode(e.value);
  }

  /**
   * Takes or renews the delivery lease of one topic for `holder` until `now + ms`: granted when free, expired or
   * already held by `holder`; compare-and-set, so two instances never both hold it.
   */
  async lease(partner: string, type: string, holder: string, now: number, ms: number): Promise<boolean> {
    const key = `lease.${partner}.${type}`;
    try {
      const r = await kvCompareAndSet(
        this.subs,
        key,
        leaseCodec,
        (cur) => (cur === undefined || cur.holder === holder || cur.until < now ? { holder, until: now + ms } : cur),
        { path: key, maxAttempts: 1 },
      );
      return r.value?.holder === holder;
    } catch {
      return false; // another instance wrote it first
    }
  }

  /** Gives the lease up (on stop), so another instance takes over at once. */
  async release(partner: string, type: string, holder: string): Promise<void> {
    const key = `lease.${partner}.${type}`;
    const e = await this.subs.get(key);
    if (e === null || e.operation !== 'PUT' || leaseCodec.decode(e.value).holder !== holder) return;
    await this.subs.delete(key, { previousSeq: e.revision }).catch(() => undefined);
  }
}
