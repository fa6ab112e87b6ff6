// Two broker processes' worth of brokers (separate connections, the same work queue) under load: each writes
// its own chain (its own instance id), neither chain breaks, every accepted message is audited exactly once,
// and together the chains account for every delivery.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { readAuditRecords } from '../../src/audit/read.js';
import { decodeRecord } from '../../src/audit/record.js';
import { verifyAuditRecords, type StoredRecord } from '../../src/audit/verify.js';
import { ChainWriter } from '../../src/audit/writer.js';
import { Broker } from '../../src/broker/broker.js';
import { parseConfig } from '../../src/config/config.js';
import { BROKER_ID } from '../../src/wire/ids.js';
import { startTestStack, type TestStack } from '../helpers/stack.js';
import { ADMIN_IDENTITY, BROKER_IDENTITY } from '../../src/tls/identity.js';

const TOTAL = 300;
let stack: TestStack;
let second: Broker;

beforeAll(async () => {
  // Small checkpoint interval, so checkpoints interleave with load.
  stack = await startTestStack({ config: { auditCheckpointEvery: 3 } });
  second = await stack.startAnotherBroker(2);
});

afterAll(async () => {
  await stack?.stop();
});

it('both chains verify, and every accepted message is audited once with its deliveries', async () => {
  const pub = await stack.client('registration');
  const results = await Promise.all(
    Array.from({ length: TOTAL }, (_, i) =>
      pub.publish({ resourceType: 'Patient', id: `load-${i}`, name: [{ family: `Loadtest${i}` }] }),
    ),
  );
  expect(results.filter((r) => r.status !== 'accepted')).toEqual([]);
  await Promise.all([stack.broker?.stop(), second.stop()]);
  stack.broker = undefined;

  const nc = await stack.connectAs(ADMIN_IDENTITY, 'auditor');
  const records: StoredRecord[] = [];
  for await (const r of readAuditRecords(nc)) records.push(r);
  const key = stack.peers.find((k) => k.service === BROKER_ID && k.use === 'sig');
  const report = verifyAuditRecords(records, { signingKey: (kid) => (kid === key?.kid ? key.publicKey : undefined) });
  expect(report.broken).toBeUndefined();
  expect(report.ok).toBe(true);
  expect(report.chains).toHaveLength(2);
  expect(report.chains.every((c) => c.closed && c.checkpoints > 1)).toBe(true);

  const events = records.flatMap((r) => decodeRecord(r.data)?.events ?? []);
  const accepted = events.filter(
    (e) => e.type.code === 'rest' && e.outcome === '0' && e.agent[0]?.who?.identifier?.value === 'registration',
  );
  const messageIds = accepted.map((e) => e.entity?.find((x) => x.name === 'message')?.what?.identifier?.value);
  expect(new Set(messageIds)).toEqual(new Set(results.map((r) => r.id)));
  expect(messageIds).toHaveLength(TOTAL);
  expect(events.filter((e) => e.type.code === '110106' && e.outcome === '0')).toHaveLength(TOTAL * 5);
  // Both brokers did audited work.
  const chainsWithAccepted = new Set(accepted.map((e) => e.source.observer.identifier?.value));
  expect(chainsWithAccepted.size).toBe(2);
}, 120_000);

it('a broker whose chain another writer took over acknowledges nothing more; another broker audits its messages', async () => {
  const nc = await stack.connectAs(BROKER_IDENTITY, 'slot-a');
  const a = await Broker.start({
    config: parseConfig({ ...stack.config, instanceId: 'slot-a' }),
    catalog: stack.catalog,
    nc,
    keys: stack.keys(BROKER_ID),
    peers: stack.peers,
    secrets: stack.secrets,
    logger: stack.logger.child({ instance: 'a' }),
  });
  // A second writer on slot-a's chain (a misconfigured twin) appends first.
  const twin = await ChainWriter.open({
    nc: await stack.connectAs(BROKER_IDENTITY, 'twin'),
    chain: 'slot-a',
    signer: stack.keys(BROKER_ID).sign,
    checkpointEvery: 1000,
    checkpointMs: 60_000,
    maxRecordBytes: 65_536,
    now: Date.now,
    logger: stack.logger,
    recordVersion: 1, // a bare stand-in event (record v1)
  });
  await twin.append([JSON.stringify({ resourceType: 'AuditEvent', id: 'twin' })]);
  const b = await Broker.start({
    config: stack.config,
    catalog: stack.catalog,
    nc: await stack.connectAs(BROKER_IDENTITY, 'broker-b'),
    keys: stack.keys(BROKER_ID),
    peers: stack.peers,
    secrets: stack.secrets,
    logger: stack.logger.child({ instance: 'b' }),
  });
  const pub = await stack.client('registration');
  const results = await Promise.all(
    Array.from({ length: 20 }, (_, i) =>
      pub.publish({ resourceType: 'Patient', id: `slot-${i}`, name: [{ family: `Slottest${i}` }] }),
    ),
  );
  expect(results.map((r) => r.status)).toEqual(Array<string>(20).fill('accepted'));
  await stack.logs.until(
    (r) => r['event'] === 'audit.chain.conflict' && r['chain'] === 'slot-a',
    'broker a to meet the twin',
  );
  await stack.logs.waiter.until(() => b.stats.accepted === 20, 60_000, 'broker b to take every message');
  expect(a.stats.accepted).toBe(0);
  await Promise.all([a.stop(), b.stop(), twin.close()]);

  const records: StoredRecord[] = [];
  for await (const r of readAuditRecords(await stack.connectAs(ADMIN_IDENTITY, 'auditor-2'))) records.push(r);
  const events = records.flatMap((r) => decodeRecord(r.data)?.events ?? []);
  // (The twin's record holds a bare stand-in event, without a type.)
  const acceptedIds = events
    .filter(
      (e) => e.type?.code === 'rest' && e.outcome === '0' && e.agent[0]?.who?.identifier?.value === 'registration',
    )
    .map((e) => e.entity?.find((x) => x.name === 'message')?.what?.identifier?.value);
  for (const r of results) expect(acceptedIds).toContain(r.id);
  // slot-a's chain holds its start events and the twin's record, never an interleaving of the two writers.
  const key = stack.peers.find((k) => k.service === BROKER_ID && k.use === 'sig');
  expect(verifyAuditRecords(records, { signingKey: (kid) => (kid === key?.kid ? key.publicKey : undefined) }).ok).toBe(
    true,
  );
}, 120_000);
