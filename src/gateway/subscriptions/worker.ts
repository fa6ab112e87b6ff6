// Delivers one partner topic's notifications: consumes the partner's provisioned delivery durable
// (`deliver-<partner>-<Type>` on PHI_DELIVER) as the partner, opens each delivery as the SDK does
// (src/sdk/delivery.ts), numbers it in KV, posts a signed notification to the rest-hook and acknowledges the
// delivery only after a 2xx. Each numbered event is indexed by the copy's `<Type>/<id>` for `GET /[type]/[id]`. Failures retry with exponential backoff and full jitter, without limit. One instance at
// a time holds the topic's KV lease, so events go out one by one, in order, and no two instances send one number.
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
/** How often a delivery in hand is reported as still being worked on (PHI_DELIVER ack_wait is 30 s). */
const WORKING_STEP_MS = 10_000;

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
  private wake: (() => void) | undefined;
  private readonly done: Promise<void>;

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

  /** Stops after the event in hand (left unacknowledged if not delivered) and gives the lease up. */
  async stop(): Promise<void> {
    this.stopping = true;
    this.wake?.();
    await this.done;
    await this.o.store.release(this.o.partner, this.o.type, this.o.holder).catch(() => undefined);
  }

  /** Waits `ms` or until stop(). */
  private pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        this.wake = undefined;
        resolve();
      }, ms);
      this.wake = () => {
        clearTimeout(t);
        this.wake = undefined;
        resolve();
      };
    });
  }

  private holds(): Promise<boolean> {
    return this.o.store.lease(this.o.partner, this.o.type, this.o.holder, Date.now(), this.o.leaseMs);
  }

  private async run(): Promise<void> {
    const { o } = this;
    let consumer: Consumer | undefined;
    let failures = 0;
    while (!this.stopping) {
      try {
        const sub = await o.store.forTopic(o.partner, o.type);
        if (sub === undefined || !(await this.holds())) {
          await this.pause(Math.max(50, Math.floor(o.leaseMs / 3)));
          continue;
        }
        consumer ??= await bindDeliveryConsumer(o.partnerNc, o.partner, o.type);
        // Short waits, so the lease is renewed well within its term.
        const m = await consumer.next({ expires: Math.max(1_000, Math.floor(o.leaseMs / 3)) });
        if (m !== null) await this.handle(m, sub);
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
        await this.pause(retryDelay(failures, o.retry));
      }
    }
  }

  private async handle(m: JsMsg, sub: SubscriptionRecord): Promise<void> {
    const { o } = this;
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
      event = openEvent({ ...stored, number: 0 }, o);
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
      return;
    }
    // Number it: a redelivery of the last numbered delivery keeps its number; an older one was already sent.
    let current = sub;
    if (seq < current.lastSeq || (seq === current.lastSeq && current.delivered >= current.eventCount)) {
      m.ack();
      return;
    }
    if (seq > current.lastSeq) {
      const number = current.eventCount + 1;
      await o.store.putEvent(sub.id, { ...stored, number });
      if (event.resource?.id !== undefined)
        await o.store.putIndex(sub.id, readIndexDigest(o.readKey, event.resource.resourceType, event.resource.id), {
          number,
          at: stored.at,
        });
      current = await o.store.update(sub.id, (r) =>
        r.lastSeq >= seq ? r : { ...r, eventCount: number, lastSeq: seq },
      );
      if (current.lastSeq !== seq) throw new BrokerError('E_INTERNAL', 'event numbering moved under the lease');
    }
    const numbered: NotificationEvent = { ...event, number: current.eventCount };
    for (let attempt = 0; ; attempt++) {
      const body = renderNotification(current, 'event-notification', o.baseUrl(), [numbered]);
      const signature = await o.sign(new TextEncoder().encode(body));
      const status = await o.deliverer.post(current, body, signature);
      if (status >= 200 && status < 300) {
        // Audited before the acknowledgement: a notification the trail does not hold is sent again, never lost.
        await o.onNotified(current, [numbered]);
        await m.ackAck();
        current = await o.store.update(sub.id, (r) => ({
          ...r,
          delivered: Math.max(r.delivered, numbered.number),
          failures: 0,
          status: r.status === 'off' ? 'off' : 'active',
        }));
        o.logger.info(
          { event: 'gateway.subscription.notified', subscription: sub.id, number: numbered.number, holder: o.holder },
          'notification delivered',
        );
        return;
      }
      current = await o.store.update(sub.id, (r) => ({
        ...r,
        failures: r.failures + 1,
        status: r.status === 'off' ? 'off' : r.failures + 1 >= ERROR_THRESHOLD ? 'error' : r.status,
      }));
      o.logger.warn(
        {
          event: 'gateway.subscription.notify.failed',
          subscription: sub.id,
          number: numbered.number,
          status,
          failures: current.failures,
        },
        'rest-hook did not answer 2xx; retrying',
      );
      if (this.stopping || current.status === 'off') {
        m.nak(); // left for the next holder of the lease
        return;
      }
      // Wait in steps well inside ack_wait (30 s), telling JetStream the delivery is still in hand and renewing the lease.
      let wait = retryDelay(current.failures - 1, o.retry);
      while (wait > 0 && !this.stopping) {
        m.working();
        const step = Math.min(wait, WORKING_STEP_MS, Math.floor(o.leaseMs / 3));
        await this.pause(step);
        wait -= step;
        if (!(await this.holds())) {
          m.nak();
          return;
        }
      }
      m.working();
    }
  }
}
