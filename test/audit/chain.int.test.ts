// The audit chain against a real nats-server: PHI_AUDIT refuses deletion and purging; the writer group-commits
// concurrent appends into records that verify; a second writer on the same chain is refused instead of
// interleaving; a restart with the same instance id continues the chain; a forged copy of the stored records
// is caught at the right sequence.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { AuditEvent } from 'fhir/r4.js';
import type { NatsConnection } from 'nats';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readAuditRecords } from '../../src/audit/read.js';
import { decodeRecord } from '../../src/audit/record.js';
import { ensureAuditStream } from '../../src/audit/setup.js';
import { verifyAuditRecords, type StoredRecord } from '../../src/audit/verify.js';
import { AuditTrail } from '../../src/audit/trail.js';
import { ChainWriter, type ChainWriterOptions } from '../../src/audit/writer.js';
import { generateServiceKeys, type SigningKeyPair } from '../../src/crypto/keypairs.js';
import { initCrypto } from '../../src/crypto/sodium.js';
import { createLogger } from '../../src/log/log.js';
import { STREAMS } from '../../src/wire/names.js';
import { startTestNats, type TestNats } from '../helpers/nats.js';
import { LogCapture } from '../helpers/stack.js';

const DAY = 24 * 60 * 60 * 1000;
let nats: TestNats;
let nc: NatsConnection;
let signer: SigningKeyPair;
const logs = new LogCapture();
const logger = createLogger({ level: 'debug', destination: logs });

beforeAll(async () => {
  await initCrypto();
  signer = generateServiceKeys('broker').sign;
  nats = await startTestNats();
  nc = await nats.connect('audit-test');
  await ensureAuditStream(nc, { maxAgeMs: 2192 * DAY, duplicateWindowMs: 120_000, replicas: 1 });
});

afterAll(async () => {
  await nats?.stop();
});

const options = (chain: string, extra: Partial<ChainWriterOptions> = {}): ChainWriterOptions => ({
  nc,
  chain,
  signer,
  checkpointEvery: 5,
  checkpointMs: DAY,
  maxRecordBytes: 64 * 1024,
  now: Date.now,
  logger,
  ...extra,
});

const event = (i: number): string => JSON.stringify({ resourceType: 'AuditEvent', id: `e-${i}` });
const keyOf = (kid: string): Uint8Array | undefined => (kid === signer.kid ? signer.publicKey : undefined);

async function stored(chain?: string): Promise<StoredRecord[]> {
  const out: StoredRecord[] = [];
  for await (const r of readAuditRecords(nc))
    if (chain === undefined || r.subject === `phi.audit.${chain}`) out.push(r);
  return out;
}

describe('PHI_AUDIT', () => {
  it('is write once: NATS refuses to delete a record or purge the stream', async () => {
    const jsm = await nc.jetstreamManager();
    await nc.jetstream().publish('phi.audit.probe', new TextEncoder().encode('{}'));
    const { config, state } = await jsm.streams.info(STREAMS.audit);
    expect([config.deny_delete, config.deny_purge, config.max_age]).toEqual([true, true, 2192 * DAY * 1e6]);
    await expect(jsm.streams.deleteMessage(STREAMS.audit, state.last_seq)).rejects.toThrow(/delete/i);
    await expect(jsm.streams.deleteMessage(STREAMS.audit, state.last_seq, false)).rejects.toThrow(/delete/i);
    await expect(jsm.streams.purge(STREAMS.audit)).rejects.toThrow(/purge/i);
    await expect(jsm.streams.purge(STREAMS.audit, { filter: 'phi.audit.probe' })).rejects.toThrow(/purge/i);
    // Nor can the protection be lifted by a configuration update.
    await expect(jsm.streams.update(STREAMS.audit, { ...config, deny_delete: false })).rejects.toThrow(
      /deny message deletes/,
    );
    await expect(jsm.streams.update(STREAMS.audit, { ...config, deny_purge: false })).rejects.toThrow(
      /deny stream purge|purge/i,
    );
    expect((await jsm.streams.info(STREAMS.audit)).state.messages).toBe(state.messages);
  });

  it('a broker configured with a shorter retention refuses to start rather than shorten it', async () => {
    await expect(
      ensureAuditStream(nc, { maxAgeMs: 30 * DAY, duplicateWindowMs: 120_000, replicas: 1 }),
    ).rejects.toMatchObject({
      code: 'E_CONFIG_INVALID',
      message: expect.stringContaining('auditMaxAgeMs') as unknown,
    });
    expect((await (await nc.jetstreamManager()).streams.info(STREAMS.audit)).config.max_age).toBe(2192 * DAY * 1e6);
  });
});

describe('ChainWriter', () => {
  it('group-commits concurrent appends; each resolves once stored; the chain and its checkpoints verify', async () => {
    const writer = await ChainWriter.open(options('w1'));
    const appends = Array.from({ length: 300 }, (_, i) => writer.append([event(i), event(i + 1000)]));
    await Promise.all(appends);
    await writer.close();
    const records = await stored('w1');
    const decoded = records.map((r) => decodeRecord(r.data));
    const events = decoded.flatMap((r) => r?.events ?? []);
    expect(events).toHaveLength(600);
    // Fewer records than appends: appends made while a record was in flight share the next one.
    const eventRecords = decoded.filter((r) => r?.events !== undefined).length;
    expect(eventRecords).toBeLessThan(300);
    expect(new Set(events.map((e) => e.id)).size).toBe(600);
    const report = verifyAuditRecords(records, { signingKey: keyOf });
    expect(report.ok).toBe(true);
    expect(report.chains[0]).toMatchObject({ chain: 'w1', closed: true, unsealed: 0, events: 600 });
    expect(report.chains[0]?.checkpoints).toBe(Math.floor(eventRecords / 5) + 1);
  });

  it('a checkpoint is written when checkpointMs has passed (injected clock), not only every N records', async () => {
    let now = 1_000_000;
    const writer = await ChainWriter.open(
      options('w-time', { checkpointEvery: 1000, checkpointMs: 60_000, now: () => now }),
    );
    await writer.append([event(1)]);
    now += 60_000;
    await writer.append([event(2)]);
    await logs.until((r) => r['event'] === 'audit.checkpoint' && r['chain'] === 'w-time', 'the timed checkpoint');
    await writer.close();
    const kinds = (await stored('w-time')).map((r) =>
      decodeRecord(r.data)?.checkpoint === undefined ? 'events' : 'checkpoint',
    );
    // The second append found the interval passed: the head (record 1) is sealed before record 3 is written.
    expect(kinds).toEqual(['events', 'checkpoint', 'events', 'checkpoint']);
  });

  it('a second writer on the same chain is refused (expected last subject sequence), never interleaved', async () => {
    const a = await ChainWriter.open(options('dup'));
    const b = await ChainWriter.open(options('dup'));
    await a.append([event(1)]);
    await expect(b.append([event(2)])).rejects.toMatchObject({ code: 'E_AUDIT_CHAIN' });
    await expect(b.append([event(3)])).rejects.toMatchObject({ code: 'E_AUDIT_CHAIN' });
    await logs.until((r) => r['event'] === 'audit.chain.conflict' && r['chain'] === 'dup', 'the conflict log line');
    await a.append([event(4)]);
    await a.close();
    await b.close();
    const records = await stored('dup');
    expect(records.flatMap((r) => decodeRecord(r.data)?.events ?? []).map((e) => e.id)).toEqual(['e-1', 'e-4']);
    expect(verifyAuditRecords(records, { signingKey: keyOf }).ok).toBe(true);
  });

  it('two writers that open a new chain at once: only one starts it', async () => {
    const [a, b] = await Promise.all([ChainWriter.open(options('race')), ChainWriter.open(options('race'))]);
    const results = await Promise.allSettled([a.append([event(1)]), b.append([event(2)])]);
    expect(results.map((r) => r.status).sort()).toEqual(['fulfilled', 'rejected']);
    await Promise.all([a.close(), b.close()]);
    expect(verifyAuditRecords(await stored('race'), { signingKey: keyOf }).ok).toBe(true);
  });

  it('a restart with the same instance id continues the chain', async () => {
    const first = await ChainWriter.open(options('restart'));
    await first.append([event(1)]);
    await first.close();
    const second = await ChainWriter.open(options('restart'));
    expect(second.chainSeq).toBe(2);
    await second.append([event(2)]);
    await second.close();
    const records = await stored('restart');
    expect(records.map((r) => decodeRecord(r.data)?.seq)).toEqual([1, 2, 3, 4]);
    expect(verifyAuditRecords(records, { signingKey: keyOf })).toMatchObject({
      ok: true,
      chains: [{ chain: 'restart', records: 4, checkpoints: 2, closed: true }],
    });
  });

  it('a forged copy of the stored chain is caught at the altered, removed, reordered or inserted sequence', async () => {
    const writer = await ChainWriter.open(options('forge'));
    for (let i = 0; i < 12; i++) await writer.append([event(i)]);
    await writer.close();
    const records = await stored('forge');
    expect(records.length).toBeGreaterThan(12);
    expect(verifyAuditRecords(records, { signingKey: keyOf }).ok).toBe(true);
    const copy = (): StoredRecord[] => records.map((r) => ({ ...r }));
    const altered = copy();
    const target = altered[3] as StoredRecord;
    altered[3] = { ...target, data: Buffer.from(Buffer.from(target.data).toString('utf8').replace('"e-', '"x-')) };
    expect(verifyAuditRecords(altered, { signingKey: keyOf }).broken).toMatchObject({
      kind: 'changed',
      chain: 'forge',
      seq: 4,
    });
    const removed = copy();
    removed.splice(3, 1);
    expect(verifyAuditRecords(removed, { signingKey: keyOf }).broken).toMatchObject({ kind: 'removed', seq: 4 });
    const reordered = copy();
    [reordered[3], reordered[4]] = [reordered[4] as StoredRecord, reordered[3] as StoredRecord];
    expect(verifyAuditRecords(reordered, { signingKey: keyOf }).broken).toMatchObject({ kind: 'reordered', seq: 4 });
    const inserted = copy();
    inserted.splice(3, 0, { ...(inserted[3] as StoredRecord), streamSeq: 0 });
    expect(verifyAuditRecords(inserted, { signingKey: keyOf }).broken).toMatchObject({ kind: 'inserted', seq: 4 });
  });
});

describe('AuditTrail alerts', () => {
  it('an alert rule that fires is logged, published on phi.alert.<rule> and recorded in the chain', async () => {
    const file = join(nats.dir, 'alerts.json');
    writeFileSync(file, JSON.stringify({ authFailures: { threshold: 2, windowMs: 60_000 } }));
    const trail = await AuditTrail.open({
      nc,
      settings: {
        instanceId: 'alerting',
        auditMaxAgeMs: 2192 * DAY,
        auditIntegrityCheckMs: 0,
        auditCheckpointEvery: 1000,
        auditCheckpointMs: DAY,
        duplicateWindowMs: 120_000,
        alertRulesFile: file,
        replicas: 1,
      },
      signer,
      logger,
    });
    const watcher = await nats.connect('alert-watcher');
    const sub = watcher.subscribe('phi.alert.>', { max: 1 });
    const received = (async () => {
      for await (const m of sub)
        return { subject: m.subject, event: JSON.parse(new TextDecoder().decode(m.data)) as AuditEvent };
      return undefined;
    })();
    await watcher.flush();
    const failure = { kind: 'rejected' as const, sender: { service: 'billing' }, code: 'E_SIGNATURE', ingestSeq: 7 };
    await trail.record([failure]);
    await trail.record([failure]);
    const got = await received;
    expect(got?.subject).toBe('phi.alert.auth-failures');
    expect(got?.event).toMatchObject({
      resourceType: 'AuditEvent',
      type: { code: '110113' },
      subtype: [{ code: 'auth-failures' }],
    });
    await logs.until(
      (r) => r['event'] === 'audit.alert' && r['rule'] === 'auth-failures' && r['service'] === 'billing',
      'the alert log line',
    );
    await trail.close();
    const events = (await stored('alerting')).flatMap((r) => decodeRecord(r.data)?.events ?? []);
    expect(events.map((e) => e.subtype?.[0]?.code)).toEqual(['create', 'create', 'auth-failures']);
    expect(events[2]?.id).toBe(got?.event.id);
  });
});
