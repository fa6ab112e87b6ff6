// JetStream setup against a real nats-server (src/nats/setup.ts): the streams, the broker's work-queue consumer, the
// subscribers' delivery consumers and the replay bucket as configured; idempotent; and what a restart with changed settings does to each of them.
import { AckPolicy, RetentionPolicy, StorageType, nanos, type JetStreamManager, type NatsConnection } from 'nats';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import {
  DELIVERY_ACK_WAIT_MS,
  bindDeliveryConsumer,
  ensureBrokerInfrastructure,
  ensureDeliveryConsumers,
  type StreamSettings,
} from '../../src/nats/setup.js';
import { loadCatalog } from '../../src/runtime/catalog-dir.js';
import { ROOT } from '../helpers/stack.js';
import { startTestNats, type TestNats } from '../helpers/nats.js';
import { PUBLISH_DEADLINE_MAX_MS } from '../../src/wire/publish.js';

const MINUTE = 60_000;
const DAY = 24 * 60 * MINUTE;
const SETTINGS: StreamSettings = {
  deliverMaxAgeMs: 7 * DAY,
  quarantineMaxAgeMs: 90 * DAY,
  receiptMaxAgeMs: DAY,
  duplicateWindowMs: 2 * MINUTE,
  replayWindowMs: 12 * MINUTE,
  ackWaitMs: 30_000,
  replicas: 1,
};

let nats: TestNats;
let nc: NatsConnection;
let jsm: JetStreamManager;

beforeAll(async () => {
  nats = await startTestNats();
  nc = await nats.connect('setup-test');
  jsm = await nc.jetstreamManager();
}, 30_000);

afterAll(async () => {
  await nats?.stop();
});

describe('ensureBrokerInfrastructure', () => {
  it('creates the four streams as designed', async () => {
    await ensureBrokerInfrastructure(nc, SETTINGS);
    const ingest = (await jsm.streams.info('PHI_INGEST')).config;
    expect(ingest).toMatchObject({
      subjects: ['phi.ingest.>'],
      retention: RetentionPolicy.Workqueue,
      storage: StorageType.File,
      max_msg_size: -1,
      duplicate_window: nanos(2 * MINUTE),
    });
    const deliver = (await jsm.streams.info('PHI_DELIVER')).config;
    expect(deliver).toMatchObject({
      subjects: ['phi.deliver.>'],
      retention: RetentionPolicy.Limits,
      max_age: nanos(7 * DAY),
      max_msg_size: -1,
    });
    const quarantine = (await jsm.streams.info('PHI_QUARANTINE')).config;
    expect(quarantine).toMatchObject({
      subjects: ['phi.quarantine.>'],
      retention: RetentionPolicy.Limits,
      max_age: nanos(90 * DAY),
      deny_delete: true,
      deny_purge: true,
    });
    // NATS itself refuses to purge or delete quarantine records.
    await expect(jsm.streams.purge('PHI_QUARANTINE')).rejects.toThrow(/purge/i);
    await expect(jsm.streams.deleteMessage('PHI_QUARANTINE', 1)).rejects.toThrow();
    const receipts = (await jsm.streams.info('PHI_RECEIPTS')).config;
    expect(receipts).toMatchObject({ subjects: ['phi.receipt.>'], max_age: nanos(DAY) });
  });

  it('creates the broker consumer (explicit ack, unlimited redelivery, the ack wait) and the replay bucket (TTL = replay window)', async () => {
    await ensureBrokerInfrastructure(nc, SETTINGS);
    const c = (await jsm.consumers.info('PHI_INGEST', 'broker')).config;
    expect(c).toMatchObject({
      durable_name: 'broker',
      ack_policy: AckPolicy.Explicit,
      ack_wait: nanos(30_000),
      max_deliver: -1,
      max_ack_pending: 2_000,
    });
    const kv = await jsm.streams.info('KV_phi_seen');
    expect(kv.config.max_age).toBe(nanos(12 * MINUTE));
    expect(kv.config.max_msgs_per_subject).toBe(1);
  });

  it('is idempotent and keeps what is stored', async () => {
    const { seen } = await ensureBrokerInfrastructure(nc, SETTINGS);
    await seen.put('k1', new TextEncoder().encode('7'));
    await nc.jetstream().publish('phi.quarantine.ehr', new TextEncoder().encode('{}'));
    const again = await ensureBrokerInfrastructure(nc, SETTINGS);
    expect(new TextDecoder().decode((await again.seen.get('k1'))?.value)).toBe('7');
    expect((await jsm.streams.info('PHI_QUARANTINE')).state.messages).toBe(1);
  });

  it('a restart with a changed ack wait updates the existing broker consumer (nats-server 2.9 and 2.10+)', async () => {
    await ensureBrokerInfrastructure(nc, { ...SETTINGS, ackWaitMs: 5_000 });
    expect((await jsm.consumers.info('PHI_INGEST', 'broker')).config.ack_wait).toBe(nanos(5_000));
    await ensureBrokerInfrastructure(nc, SETTINGS);
    expect((await jsm.consumers.info('PHI_INGEST', 'broker')).config.ack_wait).toBe(nanos(30_000));
  });

  it('a restart with a longer replay window lengthens the replay bucket TTL (else replays inside the new skew window pass)', async () => {
    await ensureBrokerInfrastructure(nc, { ...SETTINGS, replayWindowMs: 60 * MINUTE });
    expect((await jsm.streams.info('KV_phi_seen')).config.max_age).toBe(nanos(60 * MINUTE));
    // and back to a window shorter than the bucket's de-duplication window
    await ensureBrokerInfrastructure(nc, { ...SETTINGS, replayWindowMs: 60_000 });
    const kv = (await jsm.streams.info('KV_phi_seen')).config;
    expect(kv.max_age).toBe(nanos(60_000));
    expect(kv.duplicate_window).toBeLessThanOrEqual(nanos(60_000));
    await ensureBrokerInfrastructure(nc, SETTINGS);
    expect((await jsm.streams.info('KV_phi_seen')).config.max_age).toBe(nanos(12 * MINUTE));
  });

  it('a restart with changed retention updates the streams in place', async () => {
    await ensureBrokerInfrastructure(nc, { ...SETTINGS, deliverMaxAgeMs: 3 * DAY, duplicateWindowMs: 5 * MINUTE });
    const deliver = (await jsm.streams.info('PHI_DELIVER')).config;
    expect([deliver.max_age, deliver.duplicate_window]).toEqual([nanos(3 * DAY), nanos(5 * MINUTE)]);
    await ensureBrokerInfrastructure(nc, SETTINGS);
    expect((await jsm.streams.info('PHI_DELIVER')).config.max_age).toBe(nanos(7 * DAY));
  });

  it('JetStream refuses a de-duplication window longer than a stream max age (why parseConfig refuses it)', async () => {
    await expect(ensureBrokerInfrastructure(nc, { ...SETTINGS, receiptMaxAgeMs: MINUTE })).rejects.toThrow(
      /duplicates window can not be larger then max age/,
    );
    await ensureBrokerInfrastructure(nc, SETTINGS);
  });

  it('refuses a de-duplication window shorter than the longest SDK publish deadline, changing nothing', async () => {
    const before = (await jsm.streams.info('PHI_INGEST')).config.duplicate_window;
    await expect(
      ensureBrokerInfrastructure(nc, { ...SETTINGS, duplicateWindowMs: PUBLISH_DEADLINE_MAX_MS - 1 }),
    ).rejects.toMatchObject({
      code: 'E_CONFIG_INVALID',
      message: `duplicateWindowMs: must be at least ${PUBLISH_DEADLINE_MAX_MS} (the longest SDK publish deadline)`,
    });
    expect((await jsm.streams.info('PHI_INGEST')).config.duplicate_window).toBe(before);
    expect(before).toBeGreaterThanOrEqual(nanos(PUBLISH_DEADLINE_MAX_MS));
  });
});

describe('ensureDeliveryConsumers', () => {
  const catalog = loadCatalog({ subjects: join(ROOT, 'subjects'), profiles: join(ROOT, 'fhir-profiles') });

  it("creates every subscriber's all-types durable and one per subscribed type, filtered to its subjects", async () => {
    const names = await ensureDeliveryConsumers(nc, catalog, 1);
    expect(names).toEqual(expect.arrayContaining(['deliver-notification', 'deliver-notification-Patient']));
    // A service that subscribes to nothing gets no consumer.
    expect(names.filter((n) => n.startsWith('deliver-registration'))).toEqual([]);
    const listed: string[] = [];
    for await (const c of jsm.consumers.list('PHI_DELIVER')) listed.push(c.name);
    expect(listed.sort()).toEqual([...names].sort());
    expect((await jsm.consumers.info('PHI_DELIVER', 'deliver-notification')).config).toMatchObject({
      filter_subject: 'phi.deliver.notification.>',
      ack_policy: AckPolicy.Explicit,
      max_deliver: -1,
      ack_wait: nanos(DELIVERY_ACK_WAIT_MS),
    });
    const perType = await jsm.consumers.info('PHI_DELIVER', 'deliver-notification-Patient');
    expect(perType.config.filter_subject).toBe('phi.deliver.notification.Patient');
    expect(perType.config.deliver_subject).toBeUndefined();
  });

  it('is idempotent and keeps the consumer position', async () => {
    await nc.jetstream().publish('phi.deliver.pharmacy.Patient', new TextEncoder().encode('x'));
    await ensureDeliveryConsumers(nc, catalog, 1);
    const consumer = await nc.jetstream().consumers.get('PHI_DELIVER', 'deliver-pharmacy');
    const m = await consumer.next({ expires: 5_000 });
    expect(await m?.ackAck()).toBe(true);
    await ensureDeliveryConsumers(nc, catalog, 1);
    const info = await jsm.consumers.info('PHI_DELIVER', 'deliver-pharmacy');
    expect(info.num_pending).toBe(0);
    expect(info.delivered.stream_seq).toBeGreaterThan(0);
  });
});

describe('bindDeliveryConsumer', () => {
  it('binds to a provisioned consumer without changing it', async () => {
    const before = await jsm.consumers.info('PHI_DELIVER', 'deliver-pharmacy');
    const consumer = await bindDeliveryConsumer(nc, 'pharmacy');
    expect((await consumer.info()).name).toBe('deliver-pharmacy');
    expect((await jsm.consumers.info('PHI_DELIVER', 'deliver-pharmacy')).config).toEqual(before.config);
  });

  it('a missing consumer is E_SETUP_MISSING naming it, and none is created', async () => {
    const err = await bindDeliveryConsumer(nc, 'registration', 'Patient').catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'E_SETUP_MISSING' });
    expect((err as Error).message).toContain('PHI_DELIVER/deliver-registration-Patient');
    expect((err as Error).message).toContain('nats-provision');
    await expect(jsm.consumers.info('PHI_DELIVER', 'deliver-registration-Patient')).rejects.toThrow(/not found/i);
  });
});
