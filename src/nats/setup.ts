// Creates (or updates) the JetStream streams, durable consumers and KV buckets phi-broker runs on.
// Idempotent: every broker process calls it at start. JetStream features used: work-queue retention
// (PHI_INGEST), limits retention by age (PHI_DELIVER), message de-duplication by Nats-Msg-Id (ADR-31),
// deny-delete on quarantine, KV (replay cache with TTL), replicated file storage (R1 on one node, R3/R5 on a
// cluster: docs/deployment.md). Every stream, KV bucket and object store takes its placement from here.
import {
  AckPolicy,
  DiscardPolicy,
  RetentionPolicy,
  StorageType,
  nanos,
  type Consumer,
  type ConsumerConfig,
  type JetStreamManager,
  type KV,
  type NatsConnection,
  type StreamConfig,
} from 'nats';
import type { Catalog } from '../catalog/types.js';
import type { BrokerConfig } from '../config/config.js';
import { BrokerError } from '../wire/errors.js';
import { BROKER_CONSUMER, KV_BUCKETS, STREAMS, deliveryConsumer, subjects } from '../wire/names.js';
import { DUPLICATE_WINDOW_MIN_MS } from '../wire/publish.js';
import { deliveryDurables } from './permissions.js';

/**
 * Copies JetStream keeps of every stream, KV bucket and object store: 1 on one node; 3 (or 5) on a cluster, where
 * each stream is a RAFT group that needs a majority, so an odd count survives (n - 1) / 2 lost nodes.
 */
export type Replicas = 1 | 3 | 5;
export const REPLICA_COUNTS: readonly Replicas[] = [1, 3, 5];
/** One nats-server: the development default, and what a bucket opened outside provisioning is created with. */
export const SINGLE_NODE_REPLICAS: Replicas = 1;

/** Storage and replica count of a stream (JetStream StreamConfig `storage`, `num_replicas`). */
export function streamPlacement(replicas: Replicas): { storage: StorageType; num_replicas: Replicas } {
  return { storage: StorageType.File, num_replicas: replicas };
}

/** The same placement for a KV bucket or object store (nats.js KvOptions / ObjectStoreOptions `replicas`). */
export function bucketPlacement(replicas: Replicas): { storage: StorageType; replicas: Replicas } {
  return { storage: StorageType.File, replicas };
}

/**
 * Scales an existing bucket's stream to `replicas` (JetStream stream update; 2.9 moves the data itself). nats.js
 * `views.kv`/`views.os` bind to an existing bucket unchanged, so provisioning calls this after them.
 */
export async function ensureBucketReplicas(jsm: JetStreamManager, stream: string, replicas: Replicas): Promise<void> {
  const { config } = await jsm.streams.info(stream);
  if (config.num_replicas !== replicas) await jsm.streams.update(stream, { ...config, num_replicas: replicas });
}

export interface StreamSettings {
  /** Copies of every stream and bucket (1 on one node, 3 or 5 on a cluster). */
  readonly replicas: Replicas;
  /** How long deliveries wait for an offline subscriber. */
  readonly deliverMaxAgeMs: number;
  readonly quarantineMaxAgeMs: number;
  readonly receiptMaxAgeMs: number;
  /**
   * JetStream de-duplication window (publisher retries and broker redeliveries inside it are dropped); at least the
   * longest SDK publish deadline (src/wire/publish.ts), so every resend of one published message is stored once.
   */
  readonly duplicateWindowMs: number;
  /** How long an accepted message id is remembered for replay detection (must exceed 2 × clock skew). */
  readonly replayWindowMs: number;
  /** Redelivery delay of an unacknowledged ingest message (a crashed broker's work moves on after it). */
  readonly ackWaitMs: number;
  /** JetStream `max_bytes` of each stream; unset: unlimited (-1). docs/broker.md "Storage limits". */
  readonly maxBytes?: StreamByteLimits;
}

export interface StreamByteLimits {
  readonly ingest: number;
  readonly deliver: number;
  readonly quarantine: number;
  readonly receipts: number;
  /** The replay bucket (KV phi_seen; discard new: a full bucket refuses claims and the ingest message is retried). */
  readonly seen: number;
}

/** The disclosure stream's settings (PHI_DISCLOSURES); `maxBytes` unset: unlimited. */
export interface DisclosureStreamSettings {
  readonly maxAgeMs: number;
  readonly duplicateWindowMs: number;
  readonly replicas: Replicas;
  readonly maxBytes?: number;
}

/** The stream settings of a broker configuration: one place, so the admin's provisioning and the broker never drift. */
export function streamSettings(
  config: Pick<
    BrokerConfig,
    | Exclude<keyof StreamSettings, 'maxBytes'>
    | 'ingestMaxBytes'
    | 'deliverMaxBytes'
    | 'quarantineMaxBytes'
    | 'receiptMaxBytes'
    | 'seenMaxBytes'
  >,
): StreamSettings {
  return {
    maxBytes: {
      ingest: config.ingestMaxBytes,
      deliver: config.deliverMaxBytes,
      quarantine: config.quarantineMaxBytes,
      receipts: config.receiptMaxBytes,
      seen: config.seenMaxBytes,
    },
    deliverMaxAgeMs: config.deliverMaxAgeMs,
    quarantineMaxAgeMs: config.quarantineMaxAgeMs,
    receiptMaxAgeMs: config.receiptMaxAgeMs,
    duplicateWindowMs: config.duplicateWindowMs,
    replayWindowMs: config.replayWindowMs,
    ackWaitMs: config.ackWaitMs,
    replicas: config.replicas,
  };
}

function streamConfigs(s: StreamSettings): Partial<StreamConfig>[] {
  if (s.duplicateWindowMs < DUPLICATE_WINDOW_MIN_MS) {
    throw new BrokerError(
      'E_CONFIG_INVALID',
      `duplicateWindowMs: must be at least ${DUPLICATE_WINDOW_MIN_MS} (the longest SDK publish deadline)`,
    );
  }
  // Streams take anything NATS carries (max_payload): an oversized message must reach the broker, which
  // rejects it with E_TOO_LARGE and quarantines it, rather than bounce off the stream unrecorded.
  const common = {
    ...streamPlacement(s.replicas),
    max_msg_size: -1,
    duplicate_window: nanos(s.duplicateWindowMs),
  };
  return [
    {
      ...common,
      name: STREAMS.ingest,
      subjects: [subjects.ingestAll],
      retention: RetentionPolicy.Workqueue,
      // Full: publishers' publishes are refused (the SDK reports the failure); nothing stored is dropped.
      max_bytes: s.maxBytes?.ingest ?? -1,
      discard: DiscardPolicy.New,
    },
    {
      ...common,
      name: STREAMS.deliver,
      subjects: [subjects.deliverAll],
      retention: RetentionPolicy.Limits,
      max_age: nanos(s.deliverMaxAgeMs),
      // Full: the broker's delivery publish is refused and the ingest message retried (backpressure), so an
      // offline subscriber's deliveries are never dropped to make room.
      max_bytes: s.maxBytes?.deliver ?? -1,
      discard: DiscardPolicy.New,
    },
    {
      ...common,
      name: STREAMS.quarantine,
      subjects: [subjects.quarantineAll],
      retention: RetentionPolicy.Limits,
      max_age: nanos(s.quarantineMaxAgeMs),
      // Full: old evidence is never dropped; the broker answers further rejections E_QUARANTINE_FULL.
      max_bytes: s.maxBytes?.quarantine ?? -1,
      discard: DiscardPolicy.New,
      deny_delete: true,
      deny_purge: true,
    },
    {
      ...common,
      name: STREAMS.receipts,
      subjects: [subjects.receiptsAll],
      retention: RetentionPolicy.Limits,
      max_age: nanos(s.receiptMaxAgeMs),
      // Receipts are notices (the audit trail is the record): the oldest give way.
      max_bytes: s.maxBytes?.receipts ?? -1,
      discard: DiscardPolicy.Old,
    },
  ];
}

async function ensureStream(jsm: JetStreamManager, config: Partial<StreamConfig>): Promise<void> {
  const name = config.name as string;
  try {
    const { config: current, state } = await jsm.streams.info(name);
    // Updated only when a setting differs: under the generated mTLS permissions only the admin identity may
    // update streams (src/nats/permissions.ts), and a broker starting against provisioned streams needs not.
    if (!differs(current, config)) return;
    // The server enforces a lowered max_bytes by removing the oldest messages, whatever the discard policy: a
    // stream that must never drop what it holds is not shrunk below its contents.
    const maxBytes = config.max_bytes ?? -1;
    if (config.discard === DiscardPolicy.New && maxBytes > 0 && state.bytes > maxBytes)
      throw new BrokerError(
        'E_CONFIG_INVALID',
        `${name}.max_bytes: the stream holds ${state.bytes} bytes, more than the configured ${maxBytes}; lowering it would drop its oldest messages`,
      );
    await jsm.streams.update(name, config);
  } catch (err) {
    if (!isNotFound(err)) throw err;
    await jsm.streams.add(config);
  }
}

/**
 * Creates the broker's durable consumer, or updates the settings that may change between restarts. Adding an
 * existing durable with another config works on nats-server 2.9 but fails on 2.10+ (the client sends
 * action "create"), so an existing consumer is updated instead.
 */
async function ensureBrokerConsumer(jsm: JetStreamManager, ackWaitMs: number): Promise<void> {
  const settings = { ack_wait: nanos(ackWaitMs), max_deliver: -1, max_ack_pending: 2_000 };
  try {
    await jsm.consumers.info(STREAMS.ingest, BROKER_CONSUMER);
  } catch (err) {
    if (!isNotFound(err)) throw err;
    await jsm.consumers.add(STREAMS.ingest, {
      durable_name: BROKER_CONSUMER,
      ack_policy: AckPolicy.Explicit,
      ...settings,
    });
    return;
  }
  await jsm.consumers.update(STREAMS.ingest, BROKER_CONSUMER, settings);
}

/**
 * The replay bucket with its TTL set to the replay window. `views.kv` binds to an existing bucket without changing
 * it, so a longer window (e.g. a larger clock skew) would otherwise leave the old, shorter TTL in place: ids would
 * be forgotten while their messages still pass the skew check, and a replay would be accepted.
 */
async function ensureReplayBucket(
  nc: NatsConnection,
  jsm: JetStreamManager,
  replayWindowMs: number,
  replicas: Replicas,
  maxBytes: number,
): Promise<KV> {
  const seen = await nc
    .jetstream()
    .views.kv(KV_BUCKETS.seen, { ttl: replayWindowMs, history: 1, max_bytes: maxBytes, ...bucketPlacement(replicas) });
  const stream = `KV_${KV_BUCKETS.seen}`;
  const { config, state } = await jsm.streams.info(stream);
  const maxAge = nanos(replayWindowMs);
  if (config.max_age !== maxAge || config.num_replicas !== replicas || config.max_bytes !== maxBytes) {
    // As ensureStream: a lowered limit would drop remembered ids (and let their replays through).
    if (maxBytes > 0 && state.bytes > maxBytes)
      throw new BrokerError(
        'E_CONFIG_INVALID',
        `${stream}.max_bytes: the bucket holds ${state.bytes} bytes, more than the configured ${maxBytes}; lowering it would forget accepted message ids`,
      );
    await jsm.streams.update(stream, {
      ...config,
      max_age: maxAge,
      duplicate_window: Math.min(config.duplicate_window, maxAge),
      num_replicas: replicas,
      max_bytes: maxBytes,
    });
  }
  return seen;
}

/**
 * JetStream API timeout for creating streams and consumers (nats.js defaults to 5 s): a cluster's meta leader commits
 * each through Raft, which on a loaded host takes longer than one request usually waits.
 */
export const SETUP_API_TIMEOUT_MS = 30_000;
/** Delivery consumers created at once (ensureDeliveryConsumers). */
const SETUP_CONCURRENCY = 4;

/** Streams, the broker's work-queue consumer and the replay KV bucket. */
export async function ensureBrokerInfrastructure(nc: NatsConnection, settings: StreamSettings): Promise<{ seen: KV }> {
  const jsm = await nc.jetstreamManager({ timeout: SETUP_API_TIMEOUT_MS });
  // Independent requests go out together (start-up time); only the consumer waits for its stream.
  const [seen] = await Promise.all([
    ensureReplayBucket(nc, jsm, settings.replayWindowMs, settings.replicas, settings.maxBytes?.seen ?? -1),
    Promise.all(streamConfigs(settings).map((config) => ensureStream(jsm, config))).then(() =>
      ensureBrokerConsumer(jsm, settings.ackWaitMs),
    ),
  ]);
  return { seen };
}

/**
 * The accounting of disclosures (45 CFR 164.528): limits retention by age (six years by default), deny delete and
 * deny purge, so no record can be removed before it ages out; de-duplication by Nats-Msg-Id (ADR-31) keeps a
 * redelivered ingest message from recording one disclosure twice inside the duplicate window.
 */
export async function ensureDisclosureStream(nc: NatsConnection, settings: DisclosureStreamSettings): Promise<void> {
  const jsm = await nc.jetstreamManager();
  await ensureStream(jsm, disclosureStreamConfig(settings));
}

function disclosureStreamConfig(settings: DisclosureStreamSettings): Partial<StreamConfig> {
  return {
    name: STREAMS.disclosures,
    subjects: [subjects.disclosuresAll],
    ...streamPlacement(settings.replicas),
    retention: RetentionPolicy.Limits,
    max_age: nanos(settings.maxAgeMs),
    duplicate_window: nanos(Math.min(settings.duplicateWindowMs, settings.maxAgeMs)),
    // Full: a disclosure is never dropped; the broker's write is refused and the ingest message retried.
    max_bytes: settings.maxBytes ?? -1,
    discard: DiscardPolicy.New,
    deny_delete: true,
    deny_purge: true,
  };
}

/** How many revisions of one restriction the consent bucket keeps (added, revoked, …: its history). */
const CONSENT_HISTORY = 16;

/**
 * The patient-restriction bucket (src/consent/store.ts). Values are sealed; keys are pseudonyms and consent ids.
 * Binds to the provisioned bucket; `replicas` applies only when it is missing and created here.
 */
export async function ensureConsentBucket(nc: NatsConnection, replicas: Replicas = SINGLE_NODE_REPLICAS): Promise<KV> {
  return nc.jetstream().views.kv(KV_BUCKETS.consent, { history: CONSENT_HISTORY, ...bucketPlacement(replicas) });
}

/** How long a delivery may stay unacknowledged before PHI_DELIVER redelivers it to the subscriber. */
export const DELIVERY_ACK_WAIT_MS = 30_000;

/** A subscriber's durable pull consumer on PHI_DELIVER: explicit acks, redelivered without limit, one filter. */
function deliveryConsumerConfig(name: string, filter: string, replicas: Replicas): Partial<ConsumerConfig> {
  return {
    durable_name: name,
    ack_policy: AckPolicy.Explicit,
    ack_wait: nanos(DELIVERY_ACK_WAIT_MS),
    max_deliver: -1,
    filter_subject: filter,
    num_replicas: replicas,
  };
}

/**
 * Creates the catalog's missing delivery durables on PHI_DELIVER, leaving existing ones as they are: the admin at
 * provisioning; under the broker's permissions only a check, a missing one E_SETUP_MISSING (docs/sdk.md).
 */
export async function ensureDeliveryConsumers(
  nc: NatsConnection,
  catalog: Catalog,
  replicas: Replicas = SINGLE_NODE_REPLICAS,
): Promise<string[]> {
  const jsm = await nc.jetstreamManager({ timeout: SETUP_API_TIMEOUT_MS });
  const services = [...catalog.services.keys()].sort();
  const durables = services.flatMap((service) => deliveryDurables(catalog, service));
  const ensure = async ({ name, filter }: { name: string; filter: string }): Promise<void> => {
    try {
      await jsm.consumers.info(STREAMS.deliver, name);
      return;
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
    try {
      await jsm.consumers.add(STREAMS.deliver, deliveryConsumerConfig(name, filter, replicas));
    } catch (err) {
      if (!isPermissionViolation(err)) throw err;
      throw missingConsumer(name);
    }
  };
  // A few at a time: in a cluster each new consumer is a Raft group the meta leader creates one after another, and
  // dozens sent at once leave the last of them waiting past the API timeout.
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(SETUP_CONCURRENCY, durables.length) }, async () => {
      while (next < durables.length) await ensure(durables[next++] as (typeof durables)[number]);
    }),
  );
  return durables.map((d) => d.name);
}

function missingConsumer(name: string): BrokerError {
  return new BrokerError(
    'E_SETUP_MISSING',
    `consumer ${STREAMS.deliver}/${name} is not provisioned: run \`phi-broker nats-provision\` (the admin identity creates it from the catalog)`,
  );
}

/**
 * Binds to a provisioned delivery durable (consumer info only; the SDK never creates or updates one): missing is
 * E_SETUP_MISSING, one the identity may not read E_NOT_AUTHORIZED.
 */
export async function bindDeliveryConsumer(nc: NatsConnection, service: string, type?: string): Promise<Consumer> {
  const name = deliveryConsumer(service, type);
  try {
    return await nc.jetstream().consumers.get(STREAMS.deliver, name);
  } catch (err) {
    if (isNotFound(err)) throw missingConsumer(name);
    if (isPermissionViolation(err)) {
      throw new BrokerError(
        'E_NOT_AUTHORIZED',
        `service ${service} may not read consumer ${STREAMS.deliver}/${name}: the catalog delivers it no ${type ?? 'resource type'}`,
      );
    }
    throw err;
  }
}

/** A NATS permissions violation (nats.js reports the server's -ERR 'Permissions Violation' on the request). */
function isPermissionViolation(err: unknown): boolean {
  const e = err as { code?: unknown; message?: unknown } | null;
  return e?.code === 'PERMISSIONS_VIOLATION' || /permissions violation/i.test(String(e?.message ?? ''));
}

/** True when `current` (as the server reports it) lacks any setting of `wanted` or holds another value. */
function differs(current: StreamConfig, wanted: Partial<StreamConfig>): boolean {
  return differingSettings(current, wanted).length > 0;
}

/** The settings of `wanted` that `current` lacks or holds another value of (names only). */
function differingSettings(current: StreamConfig, wanted: Partial<StreamConfig>): string[] {
  const have = current as unknown as Record<string, unknown>;
  return Object.entries(wanted)
    .filter(([key, value]) => JSON.stringify(have[key]) !== JSON.stringify(value))
    .map(([key]) => key);
}

/**
 * How the broker's streams (PHI_INGEST, PHI_DELIVER, PHI_QUARANTINE, PHI_RECEIPTS, PHI_DISCLOSURES) differ from the
 * configuration: `<stream>: missing` or `<stream>.<setting>` (names only, never values), empty when they match.
 * The readiness check (src/broker/health.ts); PHI_AUDIT's settings are the audit-integrity check's.
 */
export async function streamDrift(
  jsm: JetStreamManager,
  settings: StreamSettings,
  disclosures: DisclosureStreamSettings,
): Promise<string[]> {
  const wanted = [...streamConfigs(settings), disclosureStreamConfig(disclosures)];
  const found = await Promise.all(
    wanted.map(async (config): Promise<string[]> => {
      const name = config.name as string;
      try {
        const { config: current } = await jsm.streams.info(name);
        return differingSettings(current, config).map((key) => `${name}.${key}`);
      } catch (err) {
        if (isNotFound(err)) return [`${name}: missing`];
        throw err;
      }
    }),
  );
  return found.flat();
}

/** JetStream "consumer not found" (API error 10014) or "stream not found" (10059), as nats.js reports them. */
function isNotFound(err: unknown): boolean {
  const e = err as { code?: unknown; api_error?: { err_code?: number }; message?: unknown } | null;
  const apiCode = e?.api_error?.err_code;
  return e?.code === '404' || apiCode === 10014 || apiCode === 10059 || /not found/i.test(String(e?.message ?? ''));
}

/**
 * How long a client-assertion jti is remembered (KV phi_gateway_jti): an assertion may expire at most 5 minutes
 * ahead (SMART Backend Services) of a gateway clock that may lag the partner's by the allowed skew, and it is
 * accepted until exp plus that skew; one more skew of margin. src/gateway/assertion.ts holds the same bounds.
 */
export const GATEWAY_ASSERTION_MAX_LIFETIME_MS = 5 * 60_000;
export const GATEWAY_CLOCK_SKEW_MS = 60_000;
export const GATEWAY_JTI_TTL_MS = GATEWAY_ASSERTION_MAX_LIFETIME_MS + 3 * GATEWAY_CLOCK_SKEW_MS;

/**
 * How long a rate-limit window's counter is kept (KV phi_gateway_rate): the longest window a partner may have
 * (`partner.rateLimit.windowSeconds` is at most 3600, src/catalog/schema.ts), so no counter expires inside its window.
 */
export const GATEWAY_RATE_TTL_MS = 3_600_000;

/**
 * The gateways' rate-limit bucket (src/gateway/rate-limit.ts): one revision per key, expiring GATEWAY_RATE_TTL_MS after
 * its last write. `timeoutMs` bounds each operation (a gateway waits that long at most before failing closed).
 */
export async function ensureGatewayRateBucket(
  nc: NatsConnection,
  replicas: Replicas = SINGLE_NODE_REPLICAS,
  timeoutMs?: number,
): Promise<KV> {
  return nc
    .jetstream(timeoutMs === undefined ? {} : { timeout: timeoutMs })
    .views.kv(KV_BUCKETS.gatewayRate, { ttl: GATEWAY_RATE_TTL_MS, history: 1, ...bucketPlacement(replicas) });
}

/** The partner subscriptions bucket (src/gateway/subscriptions/store.ts): latest revision per key, no expiry. */
export async function ensureGatewaySubscriptionBuckets(
  nc: NatsConnection,
  eventsMaxAgeMs: number,
  replicas: Replicas = SINGLE_NODE_REPLICAS,
): Promise<{ subscriptions: KV; events: KV }> {
  const kv = nc.jetstream().views;
  return {
    subscriptions: await kv.kv(KV_BUCKETS.gatewaySubscriptions, { history: 1, ...bucketPlacement(replicas) }),
    // Events expire with the deliveries they copy (PHI_DELIVER max_age): $events returns what is retained.
    events: await kv.kv(KV_BUCKETS.gatewayEvents, { history: 1, ttl: eventsMaxAgeMs, ...bucketPlacement(replicas) }),
  };
}

/** The gateways' jti bucket (src/gateway/jti.ts): one revision per key, each expiring after GATEWAY_JTI_TTL_MS. */
export async function ensureGatewayJtiBucket(
  nc: NatsConnection,
  replicas: Replicas = SINGLE_NODE_REPLICAS,
): Promise<KV> {
  return nc
    .jetstream()
    .views.kv(KV_BUCKETS.gatewayJti, { ttl: GATEWAY_JTI_TTL_MS, history: 1, ...bucketPlacement(replicas) });
}

/** How long a gateway keeps an inbound request's answer for retries with the same idempotency key. */
export const GATEWAY_REQUEST_TTL_MS = 24 * 3_600_000;

/** The gateways' idempotency bucket (src/gateway/idempotency.ts): one answer per key, kept GATEWAY_REQUEST_TTL_MS. */
export async function ensureGatewayRequestsBucket(
  nc: NatsConnection,
  replicas: Replicas = SINGLE_NODE_REPLICAS,
): Promise<KV> {
  return nc
    .jetstream()
    .views.kv(KV_BUCKETS.gatewayRequests, { ttl: GATEWAY_REQUEST_TTL_MS, history: 1, ...bucketPlacement(replicas) });
}
