// Delivers one partner topic's notifications. Intake: consumes the partner's provisioned delivery durable
// (`deliver-<partner>-<Type>` on PHI_DELIVER) as the partner, opens each delivery once as the SDK does
// (src/sdk/delivery.ts), stores it as the next numbered event of every live subscription of that partner and topic
// (compare-and-set per subscription), and acknowledges it only then. Senders: one per subscription, posting its
// stored events in order from its own cursor, retrying with exponential backoff and full jitter without limit, and a
// `heartbeat` when idle for its period. One instance at a time holds the topic's KV lease and runs both.
import type { Consumer, JsMsg, NatsConnection } from 'nats';
import { createHmac, hkdfSync, randomUUID } from 'node:crypto';
import type { Keyring } from '../../crypto/keyring.js';
import type { ServiceKeys } from '../../crypto/keypairs.js';
import type { Logger } from '../../log/log.js';
import { bindDeliveryConsumer } from '../../nats/setup.js';
import { openDelivery, redeliveryDelay, verifyDelivery } from '../../sdk/delivery.js';
import { BrokerError, isBrokerError } from '../../wire/errors.js';
import { HEADERS } from '../../wire/names.js';
import type { FhirResource } from 'fhir/r4.js';
import type { SubscriptionRecord } from './model.js';
import { notificationBundle, type NotificationEvent, type NotificationType } from './notify.js';
import type { StoredEvent, SubscriptionStore } from './store.js';

/** Failed attempts in a row after which the subscription reports `error` (it keeps retrying). */
export const ERROR_THRESHOLD = 3;
export const SIGNATURE_HEADER = 'X-PHI-Broker-Signature';

export interface RetryPolicy {
  readonly baseMs: number;
  readonly maxMs: number;
}
export const DEFAULT_RETRY: RetryPolicy = { baseMs: 1_000, maxMs: 5 * 60_000 };
export const DEFAULT_LEASE_MS = 15_000;

/** Exponential backoff with full jitter (AWS Architecture Blog, "Exponential Backoff and Jitter"). */
export function retryDelay(failures: number, p: RetryPolicy): number {
  const cap = Math.min(p.maxMs, p.baseMs * 2 ** Math.min(failures, 20));
  return Math.max(1, Math.round(cap / 2 + (Math.random() * cap) / 2));
}

export interface Deliverer {
  /** Posts a body to the endpoint; resolves with the HTTP status (0 when no answer). */
  post(sub: SubscriptionRecord, body: string, signature: string): Promise<number>;
}

/**
 * The partner's read-index key: HKDF-SHA256 (RFC 5869) of its X25519 private key, so every gateway holding the
 * partner's keys derives the same one and the index names no resource id in the clear.
 */
export function readIndexKey(keys: ServiceKeys): Uint8Array {
  return new Uint8Array(hkdfSync('sha256', keys.enc.secretKey, new Uint8Array(0), 'phi-broker gateway read index', 32));
}

/** The read-index digest of one copy, `HMAC-SHA256(key, "<Type>/<id>")` in hex. */
export function readIndexDigest(key: Uint8Array, type: string, id: string): string {
  return createHmac('sha256', key).update(`${type}/${id}`).digest('hex');
}

export interface WorkerOptions {
  readonly partner: string;
  /** The partner's read-index key (readIndexKey). */
  readonly readKey: Uint8Array;
  readonly type: string;
  /** A connection as the partner's own NATS identity (it may read and ack its durables). */
  readonly partnerNc: NatsConnection;
  readonly keyring: Keyring;
  readonly brokerSigningKeys: ReadonlySet<string>;
  readonly store: SubscriptionStore;
  readonly holder: string;
  readonly baseUrl: () => string;
  readonly sign: (body: Uint8Array) => Promise<string>;
  readonly deliverer: Deliverer;
  /** Called after each notification the endpoint accepted (audit). */
  readonly onNotified: (sub: SubscriptionRecord, events: readonly NotificationEvent[]) => Promise<void>;
  readonly logger: Logger;
  readonly retry: RetryPolicy;
  readonly leaseMs: number;
}

/** What opens a partner's events and finds them by resource id. */
export type EventOpener = Pick<WorkerOptions, 'partner' | 'keyring' | 'brokerSigningKeys' | 'readKey'>;

/** Opens one stored or consumed delivery as the partner (verification as the SDK does it). */
export function openEvent(e: StoredEvent, opts: Omit<EventOpener, 'readKey'>): NotificationEvent {
  const env = verifyDelivery(Buffer.from(e.data, 'base64'), e.sig, opts.keyring, opts.brokerSigningKeys);
  const d = openDelivery<FhirResource>(env, opts.partner, opts.keyring);
  return { number: e.number, timestamp: e.at, deliveryId: d.provenance.deliveryId, resource: d.resource };
}

/** The notification body for `sub` and its events, with the payload its content asks for. */
export function renderNotification(
  sub: SubscriptionRecord,
  type: NotificationType,
  baseUrl: string,
  events: readonly NotificationEvent[],
): string {
  // id-only (Backport IG): each event names its copy, `<base>/<Type>/<id>`, for GET /[type]/[id]; empty names nothing.
  const shown =
    sub.content === 'full-resource'
      ? events
      : events.map((e) => ({
          ...e,
          resource: undefined,
          ...(sub.content === 'id-only' && e.resource?.id !== undefined
            ? { ref: `${e.resource.resourceType}/${e.resource.id}` }
            : {}),
        }));
  return JSON.stringify(notificationBundle(sub, type, baseUrl, shown, randomUUID(), new Date().toISOString()));
}

export class TopicWorker {
  private stopping = false;
  wake: (() => void) | undefined;
  private readonly done: Promise<void>;
  /** One sender per live subscription while this instance holds the lease. */
  private readonly senders = new Map<string, Sender>();

  constructor(private readonly o: WorkerOptions) {
    this.done = this.run().catch((err: unknown) => {
      o.logger.error(
        {
          event: 'gateway.subscription.worker.failed',
          partner: o.partner,
          type: o.type,
          code: isBrokerError(err) ? err.code : undefined,
        },
        'notification worker stopped',
      );
    });
  }

  /** Stops taking deliveries and sending (a post in flight ends first) and gives the lease up. */
  async stop(): Promise<void> {
    this.stopping = true;
    this.wake?.();
    await this.done;
    await this.o.store.release(this.o.partner, this.o.type, this.o.holder).catch(() => undefined);
  }

  private holds(): Promise<boolean> {
    return this.o.store.lease(this.o.partner, this.o.type, this.o.holder, Date.now(), this.o.leaseMs);
  }

  /** Starts a sender for each live subscription, stops those of subscriptions no longer live. */
  private async syncSenders(live: readonly SubscriptionRecord[]): Promise<void> {
    const ids = new Set(live.map((s) => s.id));
    for (const [id, sender] of this.senders)
      if (!ids.has(id) || sender.ended) {
        this.senders.delete(id);
        await sender.stop();
      }
    for (const id of ids) if (!this.senders.has(id)) this.senders.set(id, new Sender(this.o, id));
  }

  private async stopSenders(): Promise<void> {
    await Promise.all([...this.senders.values()].map((s) => s.stop()));
    this.senders.clear();
  }

  private async run(): Promise<void> {
    const { o } = this;
    let consumer: Consumer | undefined;
    let failures = 0;
    try {
      while (!this.stopping) {
        try {
          const live = await o.store.forTopic(o.partner, o.type);
          if (live.length === 0 || !(await this.holds())) {
            await this.stopSenders();
            await pause(this, Math.max(50, Math.floor(o.leaseMs / 3)));
            continue;
          }
          await this.syncSenders(live);
          consumer ??= await bindDeliveryConsumer(o.partnerNc, o.partner, o.type);
          // Short waits, so the lease is renewed well within its term.
          const m = await consumer.next({ expires: Math.max(1_000, Math.floor(o.leaseMs / 3)) });
          if (m !== null && (await this.intakeInOrder(m))) for (const s of this.senders.values()) s.nudge();
          failures = 0;
        } catch (err) {
          // NATS unreachable, KV contended, a setup problem: an unacknowledged delivery is redelivered; try again.
          failures++;
          o.logger.warn(
            {
              event: 'gateway.subscription.worker.retry',
              partner: o.partner,
              type: o.type,
              code: isBrokerError(err) ? err.code : undefined,
            },
            'notification worker failed a round; retrying',
          );
          // The lease may lapse meanwhile: senders run only while it is confirmed.
          await this.stopSenders();
          await pause(this, retryDelay(failures, o.retry));
        }
      }
    } finally {
      await this.stopSenders();
    }
  }

  /**
   * Keeps the delivery in hand until it is stored (reported in progress to JetStream meanwhile), so the next one is
   * never numbered before it; given back (nak) only when stopping or the lease is lost.
   */
  private async intakeInOrder(m: JsMsg): Promise<boolean> {
    const { o } = this;
    for (let failures = 1; ; failures++) {
      try {
        return await this.intake(m);
      } catch (err) {
        o.logger.warn(
          {
            event: 'gateway.subscription.intake.retry',
            partner: o.partner,
            type: o.type,
            seq: m.info.streamSequence,
            code: isBrokerError(err) ? err.code : undefined,
          },
          'could not store a delivery yet; retrying',
        );
        m.working();
        await pause(this, retryDelay(failures, o.retry));
        if (this.stopping || !(await this.holds())) {
          m.nak();
          return false;
        }
        m.working();
      }
    }
  }

  /**
   * Stores one delivery as the next event of each live subscription that has not numbered it yet, then acknowledges
   * it: acknowledged only once every subscription holds it. The list is read after the delivery was taken, so every
   * subscription created before it was published gets it. True when it was stored for at least one.
   */
  private async intake(m: JsMsg): Promise<boolean> {
    const { o } = this;
    const live = await o.store.forTopic(o.partner, o.type);
    if (live.length === 0) {
      // All deleted meanwhile: left in the durable for the next subscription, as when there is none.
      m.nak();
      return false;
    }
    const seq = m.info.streamSequence;
    const stored: StoredEvent = {
      number: 0,
      seq,
      data: Buffer.from(m.data).toString('base64'),
      sig: m.headers?.get(HEADERS.signature) || undefined,
      at: new Date(Math.floor(m.info.timestampNanos / 1e6)).toISOString(),
    };
    let event: NotificationEvent;
    try {
      event = openEvent(stored, o);
    } catch (err) {
      // As the SDK: a broker key not held yet is retried later; anything else is not a delivery to pass on.
      const keyProblem = isBrokerError(err) && err.code === 'E_KEY_UNKNOWN';
      o.logger.error(
        {
          event: 'gateway.subscription.delivery.invalid',
          partner: o.partner,
          seq,
          code: isBrokerError(err) ? err.code : undefined,
        },
        keyProblem ? 'cannot open a delivery yet' : 'rejected a delivery',
      );
      if (keyProblem) m.nak(redeliveryDelay(m.info.redeliveryCount));
      else m.term();
      return false;
    }
    let added = false;
    for (const sub of live) {
      // A redelivery of a delivery this subscription already numbered keeps its number.
      const cur = await o.store.get(sub.id);
      if (cur === undefined || cur.status === 'off' || cur.lastSeq >= seq) continue;
      const number = cur.eventCount + 1;
      // Stored before it is counted: a crash in between stores the same number again on redelivery.
      await o.store.putEvent(sub.id, { ...stored, number });
      if (event.resource?.id !== undefined)
        await o.store.putIndex(sub.id, readIndexDigest(o.readKey, event.resource.resourceType, event.resource.id), {
          number,
          at: stored.at,
        });
      const after = await o.store.update(sub.id, (r) =>
        r.lastSeq >= seq || r.eventCount !== number - 1 || r.status === 'off'
          ? r
          : { ...r, eventCount: number, lastSeq: seq },
      );
      if (after.lastSeq < seq && after.status !== 'off')
        throw new BrokerError('E_INTERNAL', 'event numbering moved under the lease');
      added = true;
    }
    await m.ackAck();
    return added;
  }
}

/** Waits `ms` or until the owner's wake() (stop, or new events). */
function pause(owner: { wake: (() => void) | undefined }, ms: number): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(() => {
      owner.wake = undefined;
      resolve();
    }, ms);
    owner.wake = () => {
      clearTimeout(t);
      owner.wake = undefined;
      resolve();
    };
  });
}

/**
 * Posts one subscription's stored events in order from its cursor (`delivered`), and heartbeats when idle. Each post
 * is claimed on the record first (claimSend), so a delete answered before the claim stops it, and one answered
 * after waits for it.
 */
class Sender {
  private stopping = false;
  ended = false;
  /** Ends an idle wait (new events, stop); a nudge while not waiting is kept for the next wait. */
  wake: (() => void) | undefined;
  private nudged = false;
  /** Ends a backoff wait (stop only: new events do not cut a backoff short). */
  private readonly backoff: { wake: (() => void) | undefined } = { wake: undefined };
  private readonly done: Promise<void>;

  constructor(
    private readonly o: WorkerOptions,
    private readonly id: string,
  ) {
    this.done = this.run()
      .catch((err: unknown) => {
        o.logger.error(
          {
            event: 'gateway.subscription.sender.failed',
            subscription: id,
            code: isBrokerError(err) ? err.code : undefined,
          },
          'notification sender stopped',
        );
      })
      .finally(() => {
        this.ended = true;
      });
  }

  /** New events were stored. */
  nudge(): void {
    this.nudged = true;
    this.wake?.();
  }

  async stop(): Promise<void> {
    this.stopping = true;
    this.wake?.();
    this.backoff.wake?.();
    await this.done;
  }

  private idleWait(ms: number): Promise<void> {
    return this.nudged ? Promise.resolve() : pause(this, ms);
  }

  private async run(): Promise<void> {
    const { o } = this;
    let failures = 0;
    while (!this.stopping) {
      let sub: SubscriptionRecord | undefined;
      this.nudged = false;
      try {
        sub = await o.store.get(this.id);
        if (sub === undefined || sub.status === 'off') return;
        // Nothing is sent before its handshake was answered (or could no longer be: a gateway that died meanwhile).
        if (sub.status === 'requested' && Date.now() < Date.parse(sub.created) + (sub.timeoutS + 5) * 1000) {
          await pause(this, Math.max(50, Math.floor(o.leaseMs / 3)));
          continue;
        }
        const outcome =
          sub.delivered < sub.eventCount ? await this.sendEvent(sub, sub.delivered + 1) : await this.idle(sub);
        if (outcome === 'off') return;
        failures = outcome === 'failed' ? failures + 1 : 0;
        if (outcome === 'failed') await pause(this.backoff, retryDelay(failures - 1, o.retry));
      } catch (err) {
        // KV or NATS trouble: the stored events stay; try again.
        failures++;
        o.logger.warn(
          {
            event: 'gateway.subscription.sender.retry',
            subscription: this.id,
            code: isBrokerError(err) ? err.code : undefined,
          },
          'notification sender failed a round; retrying',
        );
        await pause(this.backoff, retryDelay(failures, o.retry));
      }
    }
  }

  /** Nothing to send: a heartbeat when its period passed since the last notification, else wait for events. */
  private async idle(sub: SubscriptionRecord): Promise<Outcome> {
    const { o } = this;
    const wait = Math.max(50, Math.floor(o.leaseMs / 3));
    if (sub.heartbeatS === undefined) {
      await this.idleWait(wait);
      return 'waited';
    }
    const due = (sub.lastSent ?? Date.parse(sub.created)) + sub.heartbeatS * 1000;
    const now = Date.now();
    if (now < due) {
      await this.idleWait(Math.min(wait, due - now));
      return 'waited';
    }
    return this.post(sub, 'heartbeat', undefined);
  }

  private async sendEvent(sub: SubscriptionRecord, number: number): Promise<Outcome> {
    const { o } = this;
    const stored = await o.store.getEvent(sub.id, number);
    if (stored === undefined) {
      // Past the events bucket's retention (at least PHI_DELIVER's): nothing left to send under this number.
      o.logger.warn(
        { event: 'gateway.subscription.event.expired', subscription: sub.id, number },
        'event expired before the endpoint accepted it',
      );
      await o.store.update(sub.id, (r) => ({ ...r, delivered: Math.max(r.delivered, number) }));
      return 'sent';
    }
    return this.post(sub, 'event-notification', openEvent(stored, o));
  }

  /** Claims, posts and records one notification (an event, or a heartbeat when `event` is undefined). */
  private async post(
    sub: SubscriptionRecord,
    type: 'event-notification' | 'heartbeat',
    event: NotificationEvent | undefined,
  ): Promise<Outcome> {
    const { o } = this;
    const claimed = await o.store.claimSend(sub.id, o.holder, Date.now(), Date.now() + sub.timeoutS * 1000 + 5_000);
    if (claimed === undefined) return 'off';
    if (claimed === 'busy') return 'failed';
    if (event !== undefined && claimed.delivered >= event.number) {
      // Accepted meanwhile (sent by the previous holder of the lease): not sent again.
      await o.store.update(sub.id, ({ sending: _released, ...rest }) => rest);
      return 'sent';
    }
    const events = event === undefined ? [] : [event];
    const body = renderNotification(claimed, type, o.baseUrl(), events);
    const status = await o.deliverer.post(claimed, body, await o.sign(new TextEncoder().encode(body)));
    const ok = status >= 200 && status < 300;
    // Audited before it counts as delivered: a notification the trail does not hold is sent again, never lost.
    if (ok && event !== undefined) await o.onNotified(claimed, events);
    const after = await o.store.update(sub.id, (r) => {
      const { sending: _released, ...rest } = r;
      const failures = ok ? 0 : r.failures + 1;
      return {
        ...rest,
        ...(ok ? { lastSent: Date.now() } : {}),
        delivered: ok && event !== undefined ? Math.max(r.delivered, event.number) : r.delivered,
        failures,
        status: r.status === 'off' ? 'off' : ok ? 'active' : failures >= ERROR_THRESHOLD ? 'error' : r.status,
      };
    });
    if (ok) {
      o.logger.info(
        type === 'heartbeat'
          ? { event: 'gateway.subscription.heartbeat', subscription: sub.id, holder: o.holder }
          : { event: 'gateway.subscription.notified', subscription: sub.id, number: event?.number, holder: o.holder },
        type === 'heartbeat' ? 'heartbeat delivered' : 'notification delivered',
      );
      return 'sent';
    }
    o.logger.warn(
      {
        event: 'gateway.subscription.notify.failed',
        subscription: sub.id,
        type,
        number: event?.number,
        status,
        failures: after.failures,
      },
      'rest-hook did not answer 2xx; retrying',
    );
    return 'failed';
  }
}

type Outcome = 'sent' | 'failed' | 'waited' | 'off';
