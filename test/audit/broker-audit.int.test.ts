// The broker's audit trail end to end over a real nats-server: a mixed flow (a Patient fanned out to five
// subscribers, an Observation delivered to one subscriber and withheld from another, a rejected message)
// produces exactly the expected AuditEvents, each valid FHIR R4; the chain verifies; and no planted PHI value
// reaches the stored audit records, the JetStream files on disk, or the logs.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { AuditEvent } from 'fhir/r4.js';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { readAuditRecords } from '../../src/audit/read.js';
import { decodeRecord } from '../../src/audit/record.js';
import { verifyAuditRecords, type StoredRecord } from '../../src/audit/verify.js';
import { BROKER_ID } from '../../src/wire/ids.js';
import { DEFAULT_VALIDATION_LIMITS, validateResource } from '../../src/fhir/validate.js';
import { patientPseudonym } from '../../src/registry/pseudonym.js';
import { filesUnder, startTestStack, type TestStack } from '../helpers/stack.js';
import { ADMIN_IDENTITY } from '../../src/tls/identity.js';

const PHI = ['Zanzibarova', 'Quenneville', 'MRN-AUDIT-9931', '1971-03-04', 'pat-audit-1', 'Bramblewick'];
const PATIENT = {
  resourceType: 'Patient',
  id: 'pat-audit-1',
  identifier: [{ system: 'urn:oid:1.2.36.146.595.217.0.1', value: 'MRN-AUDIT-9931' }],
  name: [{ family: 'Zanzibarova', given: ['Quenneville'] }],
  birthDate: '1971-03-04',
  address: [{ city: 'Bramblewick' }],
};
const OBSERVATION = {
  resourceType: 'Observation',
  id: 'obs-audit-1',
  status: 'final',
  code: { text: 'glucose' },
  subject: { reference: 'Patient/pat-audit-1' },
  // The de-identified analytics profile withholds modifierExtension: analytics is denied its copy.
  modifierExtension: [{ url: 'http://example.org/fhir/StructureDefinition/entered-in-error', valueBoolean: false }],
};

let stack: TestStack;
let records: StoredRecord[];
let events: AuditEvent[];
let ids: { patient: string; observation: string; rejected: string };
let instanceId: string;

beforeAll(async () => {
  stack = await startTestStack();
  const registration = await stack.client('registration');
  const ehr = await stack.client('ehr');
  const p = await registration.publish(PATIENT);
  const o = await ehr.publish(OBSERVATION);
  const r = await registration.publish({
    ...PATIENT,
    id: 'pat-audit-2',
    name: [{ family: 'Zanzibarova', nickname: 'Z' }],
  });
  expect([p.status, o.status, r.status]).toEqual(['accepted', 'accepted', 'rejected']);
  ids = { patient: p.id, observation: o.id, rejected: r.id };
  // Stopping the broker writes broker-stop and the final checkpoint, and waits for everything in flight.
  await stack.broker?.stop();
  stack.broker = undefined;
  const nc = await stack.connectAs(ADMIN_IDENTITY, 'auditor');
  records = [];
  for await (const rec of readAuditRecords(nc)) records.push(rec);
  events = records.flatMap((rec) => decodeRecord(rec.data)?.events ?? []);
  instanceId = decodeRecord((records[0] as StoredRecord).data)?.chain ?? '';
});

afterAll(async () => {
  await stack?.stop();
});

const about = (messageId: string): AuditEvent[] =>
  events.filter((e) => e.entity?.some((x) => x.what?.identifier?.value === messageId));
const codeOf = (e: AuditEvent): string => `${e.type.code}/${e.subtype?.[0]?.code ?? ''}/${e.outcome ?? ''}`;
const recipient = (e: AuditEvent): string | undefined =>
  e.agent.find((a) => a.type?.coding?.[0]?.code === '110152')?.who?.identifier?.value;

it('the flow produces exactly the expected AuditEvents, in order, each valid FHIR R4', () => {
  expect(events.map((e) => codeOf(e))).toEqual([
    '110100/110120/0', // broker start
    '110113/110129/0', // catalog loaded
    'rest/create/0', // Patient accepted
    ...Array<string>(5).fill('110106/disclose/0'), // … delivered to ehr, notification, billing, pharmacy, public-health
    'rest/create/0', // Observation accepted
    '110106/disclose/0', // … delivered to ehr
    '110106/disclose/4', // … withheld from analytics
    'rest/create/4', // rejected
    'rest/create/0', // … quarantined
    '110100/110121/0', // broker stop
  ]);
  for (const e of events)
    expect(() => validateResource(JSON.parse(JSON.stringify(e)), DEFAULT_VALIDATION_LIMITS)).not.toThrow();
  expect(new Set(events.map((e) => e.id)).size).toBe(events.length);
  expect(events.every((e) => e.source.observer.identifier?.value === instanceId)).toBe(true);
});

it('the Patient: accepted from registration, delivered to each subscriber with its purpose, profile and elements', () => {
  const pseudonym = patientPseudonym(stack.secrets, 'Patient/pat-audit-1');
  const [accepted, ...delivered] = about(ids.patient);
  expect(accepted?.agent[0]?.who?.identifier?.value).toBe('registration');
  expect(delivered.map(recipient)).toEqual(['ehr', 'notification', 'billing', 'pharmacy', 'public-health']);
  for (const e of [accepted, ...delivered]) {
    expect(e?.entity?.find((x) => x.role?.code === '1')?.what?.identifier?.value).toBe(pseudonym);
  }
  const billing = delivered.find((e) => recipient(e) === 'billing');
  const profile = stack.catalog.profiles.get('patient-billing');
  expect(billing?.purposeOfEvent?.[0]?.coding?.[0]?.code).toBe('HPAYMT');
  expect(billing?.entity?.flatMap((x) => x.detail ?? [])).toEqual([
    { type: 'profile', valueString: profile?.url },
    { type: 'elements', valueString: profile?.allow.join(' ') },
    // key release: billing's copy was wrapped under the broker~billing KEK, signed by the broker's key
    { type: 'key-released', valueString: 'billing:enc:1~broker:enc:1' },
    { type: 'key-signed', valueString: 'broker:sig:1' },
  ]);
  // key use: the publisher's signature verified, its data key unwrapped under the broker~registration KEK
  expect(accepted?.entity?.flatMap((x) => x.detail ?? []).filter((d) => d.type?.startsWith('key-'))).toEqual([
    { type: 'key-verified', valueString: 'registration:sig:1' },
    { type: 'key-unwrapped', valueString: 'broker:enc:1~registration:enc:1' },
  ]);
});

it('the Observation: delivered to ehr, withheld from analytics with the code and path, both about the same patient', () => {
  const evs = about(ids.observation);
  expect(evs.map((e) => [e.outcome, recipient(e) ?? null])).toEqual([
    ['0', instanceId], // accepted: the broker (its who is source.observer) is the destination
    ['0', 'ehr'],
    ['4', 'analytics'],
  ]);
  expect(evs[2]?.outcomeDesc).toBe('E_MODIFIER_WITHHELD at Observation.modifierExtension');
  expect(evs[0]?.entity?.find((x) => x.role?.code === '4')?.what?.identifier?.value).toBe(
    patientPseudonym(stack.secrets, 'Observation/obs-audit-1'),
  );
  expect(evs[2]?.entity?.find((x) => x.role?.code === '1')?.what?.identifier?.value).toBe(
    patientPseudonym(stack.secrets, 'Patient/pat-audit-1'),
  );
});

it('the rejection: refused with its code and path, and its quarantine record', () => {
  const [rejected, quarantined] = about(ids.rejected);
  expect(rejected).toMatchObject({ outcome: '4', outcomeDesc: 'E_UNKNOWN_ELEMENT at Patient.name[0].nickname' });
  // The quarantine record is named after the ingest sequence (src/broker/quarantine.ts), which both events carry.
  const ingestSeq = rejected?.entity?.flatMap((x) => x.detail ?? []).find((d) => d.type === 'ingest-seq')?.valueString;
  expect(ingestSeq).toMatch(/^\d+$/);
  expect(quarantined?.entity?.[0]?.what?.identifier).toEqual({
    system: 'urn:phi-broker:quarantine-record',
    value: `q-${ingestSeq}`,
  });
});

it('the chain verifies under the broker key and ends with its final checkpoint', () => {
  const key = stack.peers.find((k) => k.service === BROKER_ID && k.use === 'sig');
  const report = verifyAuditRecords(records, { signingKey: (kid) => (kid === key?.kid ? key.publicKey : undefined) });
  expect(report).toMatchObject({
    ok: true,
    chains: [{ chain: instanceId, closed: true, unsealed: 0, events: events.length }],
  });
});

it('no planted PHI value in the stored audit records (their facts and the events rendered from them), the JetStream files on disk, or the logs', () => {
  const storedText = [...records.map((r) => Buffer.from(r.data).toString('utf8')), JSON.stringify(events)].join('\n');
  const onDisk = filesUnder(join(stack.nats.dir, 'nats')).filter((f) => f.includes('PHI_AUDIT'));
  expect(onDisk.length).toBeGreaterThan(0);
  const diskBytes = Buffer.concat(onDisk.map((f) => readFileSync(f)));
  expect(diskBytes.includes(Buffer.from('"facts":[['))).toBe(true); // record v3, stored in these files
  for (const phi of PHI) {
    expect(storedText).not.toContain(phi);
    expect(diskBytes.includes(Buffer.from(phi))).toBe(false);
    expect(stack.logs.text()).not.toContain(phi);
  }
});
