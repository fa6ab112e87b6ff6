// The audit chain against a real nats-server: PHI_AUDIT refuses deletion and purging; the writer group-commits
// concurrent appends into records that verify; a second writer on the same chain is refused instead of
// interleaving; a restart with the same instance id continues the chain; a forged copy of the stored records
// is caught at the right sequence. Records v2 and v3: the facts render as the v1 writer's exact AuditEvents, a chain of
// v1, v2 and v3 records verifies, and a changed or garbled v2 or v3 record is caught; a record of one Patient
// delivered to three subscribers stores at most 1.5 KB in PHI_AUDIT. A checkpoint no stream can witness is still stored.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { AuditEvent } from 'fhir/r4.js';
import type { NatsConnection } from 'nats';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readAuditRecords } from '../../src/audit/read.js';
import { AuditEventJson } from '../../src/audit/event-json.js';
import type { AuditFact, AuditSubject } from '../../src/audit/facts.js';
import { decodeRecord, encodeEventsRecord } from '../../src/audit/record.js';
import { eventId, renderEventJson } from '../../src/audit/render.js';
import { ensureAuditStream } from '../../src/audit/setup.js';
import { verifyAuditRecords, type StoredRecord } from '../../src/audit/verify.js';
import { AuditTrail } from '../../src/audit/trail.js';
import { ChainWriter, type ChainWriterOptions } from '../../src/audit/writer.js';
import { decodeWitnessHead } from '../../src/audit/witness.js';
import { generateServiceKeys, type SigningKeyPair } from '../../src/crypto/keypairs.js';
import { initCrypto } from '../../src/crypto/sodium.js';
import { createLogger } from '../../src/log/log.js';
import { STREAMS, subjects } from '../../src/wire/names.js';
import { startTestNats, type TestNats } from '../helpers/nats.js';
import { LogCapture } from '../helpers/stack.js';

const DAY = 24 * 60 * 60 * 1000;
const AUDIT_SETTINGS = { maxAgeMs: 2192 * DAY, duplicateWindowMs: 120_000, replicas: 1 } as const;
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
  await ensureAuditStream(nc, AUDIT_SETTINGS);
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
  // The chain mechanics, over records of plain stand-in events (record v1); v2 (facts) below.
  recordVersion: 1,
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

  it('a checkpoint whose head cannot be witnessed is still stored: the writer warns, the next heads are witnessed', async () => {
    const jsm = await nc.jetstreamManager();
    const subject = subjects.witness('w-unwitnessed');
    await jsm.streams.delete(STREAMS.auditWitness);
    try {
      const writer = await ChainWriter.open(options('w-unwitnessed', { checkpointEvery: 1 }));
      await writer.append([event(1)]); // record 1, checkpoint 2 (head 1): no stream takes its witness
      await logs.until(
        (r) => r['event'] === 'audit.witness.failed' && r['chain'] === 'w-unwitnessed' && r['head'] === 1,
        'the witness warning',
      );
      await ensureAuditStream(nc, AUDIT_SETTINGS);
      await writer.append([event(2)]); // record 3, checkpoint 4 (head 3)
      await writer.close(); // final checkpoint 5 (head 4)
      const kinds = (await stored('w-unwitnessed')).map((r) => decodeRecord(r.data)?.checkpoint?.head ?? 'events');
      expect(kinds).toEqual(['events', 1, 'events', 3, 4]);
      const info = await jsm.streams.info(STREAMS.auditWitness, { subjects_filter: subject });
      expect(info.state.subjects?.[subject]).toBe(2); // heads 3 and 4; head 1 was never stored
      const last = await jsm.streams.getMessage(STREAMS.auditWitness, { last_by_subj: subject });
      expect(decodeWitnessHead(new TextDecoder().decode(last.data))).toMatchObject({ head: 4, final: true });
    } finally {
      await ensureAuditStream(nc, AUDIT_SETTINGS);
    }
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

describe('records v2 and v3 (facts, rendered on read)', () => {
  const subject = (i: number): AuditSubject => ({
    messageId: `0b5e7c1e-54a4-4b59-9d0f-${String(i).padStart(12, '0')}`,
    resourceType: 'Patient',
    patientPseudonym: `pp-${'x'.repeat(38)}${i}`,
  });
  const elements = ['Patient.name', 'Patient.birthDate', 'Patient.address', 'Patient.telecom'];
  /** One Patient message's facts as the broker makes them: accepted, delivered × 3 (sharing subject and lists). */
  const messageFacts = (i: number): AuditFact[] => {
    const s = subject(i);
    const sender = { service: 'registration' };
    return [
      {
        kind: 'accepted',
        sender,
        subject: s,
        ingestSeq: i,
        keys: { verified: 'registration:sig:1', unwrapped: 'broker:enc:1' },
      },
      ...['sub1', 'sub2', 'sub3'].map((r): AuditFact => ({
        kind: 'delivered',
        sender,
        recipient: { service: r },
        subject: s,
        profileUrl: `https://example.org/p/${r}`,
        purpose: 'TREAT',
        elements,
        deliveryId: `${s.messageId}.${r}`,
        keys: { released: `${r}:enc:1`, signed: 'broker:sig:1' },
      })),
    ];
  };
  const odd: AuditFact[] = [
    {
      kind: 'withheld',
      sender: { service: 'ehr' },
      recipient: { service: 'sub2', address: '10.0.0.7' },
      subject: subject(0),
      code: 'restricted:recipient',
      consent: 'c-1',
    },
    {
      kind: 'rejected',
      code: 'E_SENDER_THROTTLED',
      ingestSeq: 9,
      count: 37,
      codes: { E_VALUE_INVALID: 7, E_NOT_FHIR: 30 },
    },
    { kind: 'catalog-loaded', hash: 'sha256-abc', services: 5, types: 3 },
    { kind: 'alert', rule: 'rejections', detail: 'quote " back \\ naïve 😀 \u0000' },
  ];

  it('stores the facts in less than half the bytes; each event renders byte for byte as the v1 writer stored it; v1+v2+v3 verify', async () => {
    const chain = 'mixed';
    const source = { host: 'broker-host' };
    // Records 1 (v1 events) and 2 (its checkpoint), then the same chain continued by a v2 writer, then a v3 writer.
    const v1 = await ChainWriter.open(options(chain, { recordVersion: 1, source }));
    const v1ctx = { instanceId: chain, host: source.host, now: Date.now, newId: () => 'v1-event' };
    await v1.append(messageFacts(1).map((f) => new AuditEventJson(v1ctx).json(f)));
    await v1.close();
    const at = Date.now();
    for (const [k, version] of ([2, 3] as const).entries()) {
      const w = await ChainWriter.open(options(chain, { recordVersion: version, source }));
      await Promise.all([
        ...Array.from({ length: 20 }, (_, i) =>
          w.appendFacts(messageFacts(2 + 20 * k + i).map((fact) => ({ fact, at: at - i }))),
        ),
        w.appendFacts(odd.map((fact) => ({ fact, at }))),
      ]);
      await w.close();
    }
    const records = await stored(chain);
    const decoded = records.map((r) => decodeRecord(r.data));
    const versions = decoded.map((r) => r?.v);
    expect(versions.slice(0, 2)).toEqual([1, 1]);
    const firstV3 = versions.indexOf(3);
    expect(firstV3).toBeGreaterThan(2);
    expect(versions.slice(2, firstV3).every((v) => v === 2)).toBe(true);
    expect(versions.slice(firstV3).every((v) => v === 3)).toBe(true);
    expect(verifyAuditRecords(records, { signingKey: keyOf })).toMatchObject({
      ok: true,
      chains: [{ chain, events: 4 + 40 * 4 + 2 * odd.length, closed: true }],
    });

    // The v1 writer's bytes for the same facts, ids and times: AuditEventJson (templates, filled per event) in a
    // v1 record, one encoder per chain as the trail keeps.
    const factBytes = { 2: 0, 3: 0 };
    let v1Bytes = 0;
    const compared = { 2: 0, 3: 0 };
    let place = { id: '', at: 0 };
    const writerJson = new AuditEventJson({ ...v1ctx, now: () => place.at, newId: () => place.id });
    for (const [n, r] of decoded.entries()) {
      if (r === undefined || r.v === 1 || r.facts === undefined) continue;
      const v = r.v;
      const texts = r.facts.map((f, i) => {
        expect(f.id).toBe(eventId(chain, r.seq, i));
        place = f;
        const text = writerJson.json(f.fact);
        expect(renderEventJson(f, { chain, seq: r.seq, index: i, source })).toBe(text);
        compared[v] += 1;
        return text;
      });
      const asV1 = encodeEventsRecord(chain, r.seq, r.prev, r.at, texts);
      expect(decodeRecord(asV1)?.events).toEqual(r.events);
      v1Bytes += asV1.byteLength;
      factBytes[v] += (records[n] as StoredRecord).data.byteLength;
    }
    expect(compared).toEqual({ 2: 20 * 4 + odd.length, 3: 20 * 4 + odd.length });
    expect(writerJson.filled).toBeGreaterThan(100); // the templates the v1 writer fills, not only the builder
    expect(factBytes[2] + factBytes[3]).toBeLessThan(v1Bytes / 2);

    for (const version of [2, 3]) {
      // A changed record (a pseudonym in its value table) or a removed one breaks the chain; one whose facts no longer
      // decode is malformed.
      const i = decoded.findIndex((r) => r?.v === version && r.facts !== undefined);
      const target = records[i] as StoredRecord;
      const text = Buffer.from(target.data).toString('utf8');
      const changed = records.map((r, k) =>
        k === i ? { ...r, data: Buffer.from(text.replace('"pp-x', '"pp-y')) } : r,
      );
      expect(verifyAuditRecords(changed, { signingKey: keyOf }).broken).toMatchObject({
        kind: 'changed',
        chain,
        seq: decoded[i]?.seq,
      });
      const removed = records.filter((_, k) => k !== i);
      expect(verifyAuditRecords(removed, { signingKey: keyOf }).broken).toMatchObject({
        kind: 'removed',
        seq: decoded[i]?.seq,
      });
      // v2: an unknown kind; v3: a fact's shape pointing at a value that is not key names.
      const garble =
        version === 2
          ? (t: string) => t.replace(/"facts":\[\[(\d+),\{"kind":\d+/, '"facts":[[$1,{"kind":99999')
          : (t: string) => t.replace(/"facts":\[\[(\d+),\[\d+,/, '"facts":[[$1,[0,');
      expect(garble(text)).not.toBe(text);
      const garbled = records.map((r, k) => (k === i ? { ...r, data: Buffer.from(garble(text)) } : r));
      expect(decodeRecord((garbled[i] as StoredRecord).data)).toBeUndefined();
      expect(verifyAuditRecords(garbled, { signingKey: keyOf }).broken).toMatchObject({
        kind: 'malformed',
        streamSeq: target.streamSeq,
      });
    }
  });

  it('a record of one Patient delivered to three subscribers stores at most 1.5 KB in PHI_AUDIT (v3; v2 more)', async () => {
    // As the broker writes it (bench/catalog/fanout-3, fhir-profiles/): a chain named <host>-<pid>-<6 hex>, a UUID
    // message id, 43-character pseudonyms, the profiles' URLs and element lists, the key ids of the key directory.
    const profile = (name: string): string => `https://phi-broker.dev/fhir/StructureDefinition/${name}`;
    const growth: Record<number, number> = {};
    for (const version of [2, 3] as const) {
      const chain = `broker-host-48213-${version}a9525`;
      const messageId = '98bcf8e7-dba6-4ec7-b487-1e7b25d97d9b';
      const subject = { messageId, resourceType: 'Patient', patientPseudonym: 'p'.repeat(43) };
      const sender = { service: 'registration' };
      const subscribers = [
        ['sub1', 'patient-full', 'TREAT', ['Patient']],
        ['sub2', 'patient-contact', 'HOPERAT', ['Patient.name', 'Patient.telecom', 'Patient.modifierExtension']],
        [
          'sub3',
          'patient-billing',
          'HPAYMT',
          ['Patient.identifier', 'Patient.name', 'Patient.address', 'Patient.birthDate', 'Patient.modifierExtension'],
        ],
      ] as const;
      const facts: AuditFact[] = [
        {
          kind: 'accepted',
          sender,
          subject,
          ingestSeq: 123456,
          keys: { verified: 'registration:sig:1', unwrapped: 'broker:enc:1~registration:enc:1' },
        },
        ...subscribers.map(([service, name, purpose, elements]): AuditFact => ({
          kind: 'delivered',
          sender,
          recipient: { service },
          subject,
          profileUrl: profile(name),
          purpose,
          elements,
          deliveryId: `${messageId}.${service}`,
          keys: { released: `broker:enc:1~${service}:enc:1`, signed: 'broker:sig:1' },
        })),
      ];
      const w = await ChainWriter.open(options(chain, { recordVersion: version, source: { host: 'broker-host' } }));
      await w.appendFacts([{ fact: { kind: 'broker-start' }, at: Date.now() }]); // not the chain's first record
      const jsm = await nc.jetstreamManager();
      const before = (await jsm.streams.info(STREAMS.audit)).state;
      await w.appendFacts(facts.map((fact) => ({ fact, at: Date.now() })));
      const after = (await jsm.streams.info(STREAMS.audit)).state;
      const last = await jsm.streams.getMessage(STREAMS.audit, { last_by_subj: `phi.audit.${chain}` });
      await w.close();
      expect(after.messages - before.messages).toBe(1);
      growth[version] = after.bytes - before.bytes;
      expect(decodeRecord(last.data)).toMatchObject({ v: version, seq: 2 });
      expect(decodeRecord(last.data)?.facts?.map((f) => f.fact)).toEqual(facts);
    }
    expect(growth[3]).toBeLessThanOrEqual(1500);
    expect(growth[2]).toBeGreaterThan(growth[3] as number);
  });
});
