// Creates (or updates) the JetStream streams, durable consumers and KV buckets phi-broker runs on.
// Idempotent: every broker process calls it at start. JetStream features used: work-queue retention
// (PHI_INGEST), limits retention by age (PHI_DELIVER), message de-duplication by Nats-Msg-Id (ADR-31),
// deny-delete on quarantine, KV (replay cache with TTL).
import {
  AckPolicy,
  DiscardPolicy,
  RetentionPolicy,
  StorageType,
  nanos,
  type JetStreamManager,
  type KV,
  type NatsConnection,
  type StreamConfig,
} from 'nats';
import { BROKER_CONSUMER, KV_BUCKETS, STREAMS, deliveryConsumer, subjects } from './names.js';

export interface StreamSettings {
  /** How long deliveries wait for an offline subscriber. */
  readonly deliverMaxAgeMs: number;
  readonly quarantineMaxAgeMs: number;
  readonly receiptMaxAgeMs: number;
  /** JetStream de-duplication window (publisher retries and broker redeliveries inside it are dropped). */
  readonly duplicateWindowMs: number;
  /** How long an accepted message id is remembered for replay detection (must exceed 2 × clock skew). */
  readonly replayWindowMs: number;
  /** Redelivery delay of an unacknowledged ingest message (a crashed broker's work moves on after it). */
  readonly ackWaitMs: number;
}

function streamConfigs(s: StreamSettings): Partial<StreamConfig>[] {
  // Streams take anything NATS carries (max_payload): an oversized message must reach the broker, which
  // rejects it with E_TOO_LARGE and quarantines it, rather than bounce off the stream unrecorded.
  const common = { storage: StorageType.File, num_replicas: 1, max_msg_size: -1, duplicate_window: nanos(s.duplicateWindowMs) };
  return [
    { ...common, name: STREAMS.ingest, subjects: [subjects.ingestAll], retention: RetentionPolicy.Workqueue, discard: DiscardPolicy.New },
    { ...common, name: STREAMS.deliver, subjects: [subjects.deliverAll], retention: RetentionPolicy.Limits, max_age: nanos(s.deliverMaxAgeMs) },
    {
      ...common,
      name: STREAMS.quarantine,
      subjects: [subjects.quarantineAll],
      retention: RetentionPolicy.Limits,
      max_age: nanos(s.quarantineMaxAgeMs),
      deny_delete: true,
    },
    { ...common, name: STREAMS.receipts, subjects: [subjects.receiptsAll], retention: RetentionPolicy.Limits, max_age: nanos(s.receiptMaxAgeMs) },
  ];
}

async function ensureStream(jsm: JetStreamManager, config: Partial<StreamConfig>): Promise<void> {
  const name = config.name as string;
  try {
    await jsm.streams.info(name);
    await jsm.streams.update(name, config);
  } catch (err) {
    if ((err as { code?: string }).code !== '404' && !String((err as Error).message).includes('not found')) throw err;
    await jsm.streams.add(config);
  }
}

/** Streams, the broker's work-queue consumer and the replay KV bucket. */
export async function ensureBrokerInfrastructure(nc: NatsConnection, settings: StreamSettings): Promise<{ seen: KV }> {
  const jsm = await nc.jetstreamManager();
  for (const config of streamConfigs(settings)) await ensureStream(jsm, config);
  await jsm.consumers.add(STREAMS.ingest, {
    durable_name: BROKER_CONSUMER,
    ack_policy: AckPolicy.Explicit,
    ack_wait: nanos(settings.ackWaitMs),
    max_deliver: -1,
    max_ack_pending: 2_000,
  });
  const seen = await nc.jetstream().views.kv(KV_BUCKETS.seen, { ttl: settings.replayWindowMs, history: 1, storage: StorageType.File });
  return { seen };
}

/** The durable consumer a subscriber reads its deliveries from (created by the subscriber's SDK or by `up`). */
export async function ensureDeliveryConsumer(nc: NatsConnection, service: string, type?: string): Promise<string> {
  const jsm = await nc.jetstreamManager();
  const name = deliveryConsumer(service, type);
  try {
    await jsm.consumers.info(STREAMS.deliver, name);
  } catch {
    await jsm.consumers.add(STREAMS.deliver, {
      durable_name: name,
      ack_policy: AckPolicy.Explicit,
      ack_wait: nanos(30_000),
      max_deliver: -1,
      filter_subject: subjects.deliverFilter(service, type),
    });
  }
  return name;
}
