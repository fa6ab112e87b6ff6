// The broker writes the patient-to-service registry beside a message's deliveries (one socket write, one round
// trip) instead of after them. What must not change: a message whose registry write fails is retried, never
// acknowledged nor reported "accepted" until the registry holds it; its retries add no second copy of any
// delivery (Nats-Msg-Id de-duplication in PHI_DELIVER); and the registry counts it once.
import type { JetStreamManager, NatsConnection } from 'nats';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KV_BUCKETS, STREAMS } from '../../src/wire/names.js';
import { patientPseudonym } from '../../src/registry/pseudonym.js';
import { RegistryStore } from '../../src/registry/store.js';
import type { PhiClient, PublishResult } from '../../src/sdk/client.js';
import { startTestStack, type TestStack } from '../helpers/stack.js';

/** The example catalog's subscribers of Patient, written out independently of the code under test. */
const PATIENT_SUBSCRIBERS = ['billing', 'ehr', 'notification', 'pharmacy', 'public-health'];
const PATIENT_ID = 'Zq8842Echo';

let stack: TestStack;
let inspector: NatsConnection;
let jsm: JetStreamManager;
let registration: PhiClient;

beforeAll(async () => {
  stack = await startTestStack();
  inspector = await stack.connect('inspector');
  jsm = await inspector.jetstreamManager();
  registration = await stack.client('registration', { publishDeadlineMs: 60_000 });
}, 60_000);

afterAll(async () => {
  await stack?.stop();
});

describe('a registry write that fails beside the deliveries', () => {
  let result: PublishResult;
  let newDeliveries: number;

  beforeAll(async () => {
    // The registry goes away: every compare-and-set on it is answered "no responders" (503).
    await jsm.streams.delete(`KV_${KV_BUCKETS.registry}`);
    const before = (await jsm.streams.info(STREAMS.deliver)).state.messages;
    let settled = false;
    const publishing = registration
      .publish({ resourceType: 'Patient', id: PATIENT_ID, name: [{ family: 'Echo' }] })
      .finally(() => {
        settled = true;
      });
    // Two attempts, each with its deliveries published beside the failing registry write (RETRY_DELAY_MS apart).
    await stack.logs.waiter.until(
      () =>
        stack.logs.records().filter((r) => r['event'] === 'ingest.retry' && r['errorClass'] === 'RegistryUnavailable')
          .length >= 2,
      20_000,
      'two retries',
    );
    await inspector.flush();
    expect(settled).toBe(false);
    expect(stack.logs.records().some((r) => r['event'] === 'ingest.rejected')).toBe(false);
    // The registry comes back; the next retry stores it and only then is the message accepted.
    await RegistryStore.open(inspector);
    result = await publishing;
    newDeliveries = (await jsm.streams.info(STREAMS.deliver)).state.messages - before;
  }, 60_000);

  it('is accepted only once the registry holds it', () => {
    expect(result).toMatchObject({ status: 'accepted', deliveries: PATIENT_SUBSCRIBERS.length });
  });

  it('left exactly one copy of each delivery despite the retries', () => {
    expect(newDeliveries).toBe(PATIENT_SUBSCRIBERS.length);
  });

  it('is counted once in the registry, for the sender and every recipient', async () => {
    const store = await RegistryStore.open(inspector);
    const record = await store.get(patientPseudonym(stack.secrets, `Patient/${PATIENT_ID}`));
    expect(record).toBeDefined();
    const services = record?.services ?? {};
    expect(Object.keys(services).sort()).toEqual(['registration', ...PATIENT_SUBSCRIBERS].sort());
    expect(services['registration']?.source?.count).toBe(1);
    for (const s of PATIENT_SUBSCRIBERS) expect(services[s]?.recipient?.count, s).toBe(1);
  });
});
