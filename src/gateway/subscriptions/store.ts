// Subscription state in NATS KV, so any gateway instance can answer for any subscription and take over its
// deliveries: `sub.<id>` (the record and its counters), `topic.<partner>.<Type>` (the ids of the partner's live
// subscriptions to a topic), `lease.<partner>.<Type>` (which instance delivers it). Every change is a
// compare-and-set (src/nats/kv-cas.ts). Events live in their own bucket, `<id>.<number>`, as the sealed delivery
// (each subscription's outbox), with a read index `<id>.id.<digest>` (worker.ts) naming the latest event of a copy.
import { setTimeout as delay } from 'node:timers/promises';
import type { KV } from 'nats';
import { kvCompareAndSet, type KvCodec } from '../../nats/kv-cas.js';
import { BrokerError } from '../../wire/errors.js';
import { MAX_SUBSCRIPTIONS_PER_TOPIC, type SubscriptionRecord } from './model.js';

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
const idsCodec = jsonCodec<string[]>();

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

  /** The live (not `off`) subscriptions of `partner` to `type`, oldest first. */
  async forTopic(partner: string, type: string): Promise<SubscriptionRecord[]> {
    const e = await this.subs.get(`topic.${partner}.${type}`);
    if (e === null || e.operation !== 'PUT') return [];
    const live: SubscriptionRecord[] = [];
    for (const id of idsCodec.decode(e.value)) {
      const sub = await this.get(id);
      if (sub !== undefined && sub.status !== 'off') live.push(sub);
    }
    return live;
  }

  /** Stores a new subscription and adds it to its topic's list; refused past MAX_SUBSCRIPTIONS_PER_TOPIC. */
  async create(record: SubscriptionRecord): Promise<void> {
    await this.subs.put(`sub.${record.id}`, recordCodec.encode(record));
    const key = `topic.${record.partner}.${record.resourceType}`;
    try {
      await kvCompareAndSet(
        this.subs,
        key,
        idsCodec,
        (ids = []) => {
          if (ids.length >= MAX_SUBSCRIPTIONS_PER_TOPIC)
            throw new BrokerError(
              'E_SUBSCRIPTION_INVALID',
              `you already have ${MAX_SUBSCRIPTIONS_PER_TOPIC} subscriptions to this topic; delete one first`,
              { path: 'Subscription.criteria' },
            );
          return [...ids, record.id];
        },
        { path: key },
      );
    } catch (err) {
      await this.update(record.id, (r) => ({ ...r, status: 'off' }));
      throw err;
    }
  }

  /**
   * Switches a subscription `off` and takes it off its topic's list; waits (up to `maxWaitMs`) for a notification
   * being posted when it landed, so none is sent after this returns. Returns the record as it was before.
   */
  async remove(id: string, now: () => number, maxWaitMs: number): Promise<SubscriptionRecord> {
    let before: SubscriptionRecord | undefined;
    const after = await this.update(id, (r) => {
      before = r;
      return r.status === 'off' ? r : { ...r, status: 'off', deleted: new Date(now()).toISOString() };
    });
    const key = `topic.${after.partner}.${after.resourceType}`;
    await kvCompareAndSet(
      this.subs,
      key,
      idsCodec,
      (ids) => (ids === undefined || !ids.includes(id) ? ids : ids.filter((x) => x !== id)),
      { path: key },
    );
    // A sender claims each post by compare-and-set (claimSend) unless the record is off: wait out a claim made first.
    const deadline = now() + maxWaitMs;
    for (let r = await this.get(id); r?.sending !== undefined && r.sending.until > now() && now() < deadline;) {
      await delay(50);
      r = await this.get(id);
    }
    return before ?? after;
  }

  /**
   * Claims the next post to a subscription for `holder` until `until`: refused (undefined) when it is `off`, and
   * `busy` while another instance's claim runs (a lease handed over mid-post).
   */
  async claimSend(
    id: string,
    holder: string,
    now: number,
    until: number,
  ): Promise<SubscriptionRecord | 'busy' | undefined> {
    let busy = false;
    const r = await kvCompareAndSet(
      this.subs,
      `sub.${id}`,
      recordCodec,
      (cur) => {
        busy = false;
        if (cur === undefined || cur.status === 'off') return cur;
        if (cur.sending !== undefined && cur.sending.holder !== holder && cur.sending.until > now) {
          busy = true;
          return cur;
        }
        return { ...cur, sending: { holder, until } };
      },
      { path: `subscription ${id}` },
    );
    if (busy) return 'busy';
    return r.value === undefined || r.value.status === 'off' ? undefined : r.value;
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
