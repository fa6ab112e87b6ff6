// The replay cache (src/broker/replay-cache.ts) on a real JetStream KV bucket: first claim wins, the same
// ingest sequence is a redelivery, another sequence is E_REPLAY, and ids of any allowed shape work as keys.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ReplayCache } from '../../src/broker/replay-cache.js';
import { AckedPublisher } from '../../src/nats/acked-publish.js';
import { ensureBrokerInfrastructure } from '../../src/nats/setup.js';
import { startTestNats, type TestNats } from '../helpers/nats.js';

const MINUTE = 60_000;
let nats: TestNats;
let cache: ReplayCache;

beforeAll(async () => {
  nats = await startTestNats();
  const nc = await nats.connect();
  const { seen } = await ensureBrokerInfrastructure(nc, {
    deliverMaxAgeMs: 60 * MINUTE,
    quarantineMaxAgeMs: 60 * MINUTE,
    receiptMaxAgeMs: 60 * MINUTE,
    duplicateWindowMs: 2 * MINUTE,
    replayWindowMs: 30 * MINUTE,
    ackWaitMs: 30_000,
    replicas: 1,
  });
  cache = new ReplayCache(seen, new AckedPublisher(nc));
});

afterAll(async () => {
  await nats?.stop();
});

describe('ReplayCache', () => {
  it('the first claim wins; the same ingest sequence again is a redelivery, another one is E_REPLAY', async () => {
    await cache.check('6f1c2a9e-3b7d-4e21-9a55-0c8d7e6f5a41', 10);
    await expect(cache.check('6f1c2a9e-3b7d-4e21-9a55-0c8d7e6f5a41', 10)).resolves.toBeUndefined();
    await expect(cache.check('6f1c2a9e-3b7d-4e21-9a55-0c8d7e6f5a41', 11)).rejects.toMatchObject({
      code: 'E_REPLAY',
      path: 'id',
    });
  });

  it('ids with characters KV keys do not allow (":" and "." runs) are keyed by their hash', async () => {
    await cache.check('urn:msg:a..b', 20);
    await expect(cache.check('urn:msg:a..b', 21)).rejects.toMatchObject({ code: 'E_REPLAY' });
    await cache.check('urn:msg:a..c', 22);
  });
});
