// Two broker processes' worth of brokers (separate NATS connections, the same durable work-queue
// consumer) share the ingest stream: both do work, and every message is delivered exactly once.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { Broker } from '../../src/broker/broker.js';
import { BROKER_ID } from '../../src/wire/ids.js';
import type { PublishResult } from '../../src/sdk/client.js';
import { Waiter, startTestStack, type TestStack } from '../helpers/stack.js';
import { BROKER_IDENTITY } from '../../src/tls/identity.js';

const TOTAL = 400;
let stack: TestStack;
let second: Broker;

beforeAll(async () => {
  stack = await startTestStack();
  second = await stack.startAnotherBroker(2);
});

afterAll(async () => {
  await second?.stop();
  await stack?.stop();
});

it('two brokers split the work; each message reaches the subscriber once', async () => {
  const sub = await stack.client('notification');
  const pub = await stack.client('registration');
  const handled = new Map<string, number>();
  const waiter = new Waiter();
  await sub.subscribe('Patient', (d) => {
    handled.set(d.provenance.messageId, (handled.get(d.provenance.messageId) ?? 0) + 1);
    waiter.signal();
  });
  const results: PublishResult[] = await Promise.all(
    Array.from({ length: TOTAL }, (_, i) =>
      pub.publish({ resourceType: 'Patient', id: `two-${i}`, name: [{ family: `Twobroker${i}` }] }),
    ),
  );
  expect(results.filter((r) => r.status !== 'accepted')).toEqual([]);
  await waiter.until(() => handled.size === TOTAL, 60_000, 'all deliveries');
  expect([...handled.values()].every((n) => n === 1)).toBe(true);
  // A broker counts a message after it acks it, which is after the publisher already has its
  // receipt: await the count (each acceptance is logged right after it) instead of racing it.
  const counted = (): number => (stack.broker?.stats.accepted ?? 0) + second.stats.accepted;
  await stack.logs.waiter.until(() => counted() >= TOTAL, 20_000, 'both brokers to count every acceptance');
  const first = stack.broker?.stats.accepted ?? 0;
  expect(first + second.stats.accepted).toBe(TOTAL);
  expect(first).toBeGreaterThan(0);
  expect(second.stats.accepted).toBeGreaterThan(0);
});

it('a broker refuses to start when a subscriber has no public encryption key', async () => {
  const peers = stack.peers.filter((p) => !(p.service === 'billing' && p.use === 'enc'));
  const start = Broker.start({
    config: stack.config,
    catalog: stack.catalog,
    nc: await stack.connectAs(BROKER_IDENTITY, 'broker-3'),
    keys: stack.keys(BROKER_ID),
    peers,
    secrets: stack.secrets,
    logger: stack.logger,
  });
  await expect(start).rejects.toMatchObject({
    code: 'E_CONFIG_INVALID',
    message: expect.stringContaining('billing') as unknown,
  });
});
