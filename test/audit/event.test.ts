// buildAuditEvent: every kind of fact becomes a FHIR R4 AuditEvent that passes the project's validator
// (@fhir-typescript/r4-core model validation plus unknown-element rejection), in the BALP shape, carrying the
// patient only as the broker's keyed pseudonym, which the fact already carries (the builder holds no key).
import type { AuditEvent } from 'fhir/r4.js';
import { describe, expect, it } from 'vitest';
import { buildAuditEvent, type EventContext } from '../../src/audit/event.js';
import type { AuditFact } from '../../src/audit/facts.js';
import { DEFAULT_VALIDATION_LIMITS, validateResource } from '../../src/fhir/validate.js';
import { patientPseudonym } from '../../src/registry/pseudonym.js';

const secrets = { pseudonymKey: new Uint8Array(32).fill(9) };
const AT = Date.UTC(2026, 0, 2, 3, 4, 5, 678);
let n = 0;
const ctx: EventContext = { instanceId: 'host-1-abcdef', host: 'broker-host', now: () => AT, newId: () => `ev-${++n}` };

const PATIENT = 'Patient/pat-7731-zz';
const subject = {
  messageId: '0b5e7c1e-54a4-4b59-9d0f-5f2a1c3e9a10',
  resourceType: 'Observation',
  resourcePseudonym: patientPseudonym(secrets, 'Observation/obs-1'),
  patientPseudonym: patientPseudonym(secrets, PATIENT),
};
const sender = { service: 'registration' };

const FACTS: readonly AuditFact[] = [
  { kind: 'accepted', sender, subject, ingestSeq: 12 },
  {
    kind: 'rejected',
    sender,
    messageId: subject.messageId,
    resourceType: 'Patient',
    code: 'E_UNKNOWN_ELEMENT',
    path: 'Patient.name[0].nickname',
    ingestSeq: 13,
  },
  { kind: 'rejected', code: 'E_ENVELOPE_INVALID', ingestSeq: 14 },
  {
    kind: 'delivered',
    sender,
    recipient: { service: 'billing', address: '10.0.0.7' },
    subject,
    profileUrl: 'https://example.org/p/billing',
    purpose: 'HPAYMT',
    elements: ['Observation.code', 'Observation.subject'],
    deliveryId: `${subject.messageId}.billing`,
  },
  {
    kind: 'withheld',
    sender,
    recipient: { service: 'analytics' },
    subject,
    code: 'E_MODIFIER_WITHHELD',
    path: 'Observation.modifierExtension',
  },
  { kind: 'quarantined', recordId: 'q-4', code: 'E_SIGNATURE', sender, messageId: subject.messageId, ingestSeq: 15 },
  { kind: 'broker-start' },
  { kind: 'broker-stop' },
  { kind: 'catalog-loaded', hash: 'sha256-abc', services: 5, types: 3 },
  { kind: 'alert', rule: 'rejections', service: 'registration', detail: '10 rejections in 60000 ms (threshold 10)' },
  {
    kind: 'security-incident',
    incident: 'publish-violation',
    identity: 'notification',
    address: '127.0.0.1',
    count: 50,
    firstSeen: '2026-01-02T03:04:05.000Z',
    lastSeen: '2026-01-02T03:04:06.000Z',
    subjects: ['(not a phi-broker subject)', 'phi.ingest.registration.Patient'],
    moreSubjects: 2,
  },
  {
    kind: 'security-incident',
    incident: 'tls-handshake',
    address: '10.0.0.9',
    count: 3,
    firstSeen: '2026-01-02T03:04:05.000Z',
    lastSeen: '2026-01-02T03:04:05.000Z',
    refusals: ['no-certificate', 'unknown-authority'],
    unknownUser: true,
  },
  {
    kind: 'access',
    step: 'created',
    requestId: 'ar-00000000-0000-4000-8000-000000000001',
    patientPseudonym: 'pseudo-1',
    services: ['billing', 'ehr'],
    requester: 'patient-portal',
  },
  {
    kind: 'access-refused',
    requester: 'billing',
    op: 'create',
    code: 'E_ACCESS_NOT_ALLOWED',
    path: 'iss',
    messageId: subject.messageId,
  },
];

const byKind = (kind: AuditFact['kind']): AuditEvent => {
  const fact = FACTS.find((f) => f.kind === kind);
  if (fact === undefined) throw new Error(kind);
  return buildAuditEvent(fact, ctx);
};

describe('buildAuditEvent', () => {
  it.each(FACTS.map((f, i) => [`${f.kind} #${i}`, f] as const))('%s is a valid FHIR R4 AuditEvent', (_name, fact) => {
    const event = buildAuditEvent(fact, ctx);
    expect(() => validateResource(JSON.parse(JSON.stringify(event)), DEFAULT_VALIDATION_LIMITS)).not.toThrow();
    expect(event).toMatchObject({
      resourceType: 'AuditEvent',
      recorded: '2026-01-02T03:04:05.678Z',
      source: { observer: { identifier: { value: 'host-1-abcdef' } } },
    });
  });

  it('the validator does refuse a broken AuditEvent (so the test above can fail)', () => {
    const broken = { ...byKind('accepted'), outcome: '99', action: 'X' };
    expect(() => validateResource(JSON.parse(JSON.stringify(broken)), DEFAULT_VALIDATION_LIMITS)).toThrow(
      expect.objectContaining({ code: 'E_FHIR_INVALID' }),
    );
  });

  it('access created by a service (SDK): that service is the requesting source, the broker acts, the services asked are destinations', () => {
    const e = byKind('access');
    expect(e.agent.map((a) => [a.who?.identifier?.value, a.requestor, a.type?.coding?.[0]?.code])).toEqual([
      ['patient-portal', true, '110153'],
      ['host-1-abcdef', false, '110150'],
      ['billing', false, '110152'],
      ['ehr', false, '110152'],
    ]);
    expect(e.purposeOfEvent?.[0]?.coding?.[0]?.code).toBe('PATRQT');
  });

  it('access refused: Patient Record / refused, outcome 4 with code and path, the asking service as requestor, the message id only', () => {
    const e = byKind('access-refused');
    expect([e.type.code, e.subtype?.[0], e.action, e.outcome, e.outcomeDesc]).toEqual([
      '110110',
      { system: 'urn:phi-broker:access-step', code: 'refused' },
      'C',
      '4',
      'access refused: E_ACCESS_NOT_ALLOWED at iss',
    ]);
    expect(e.agent.map((a) => [a.who?.identifier?.value, a.requestor])).toEqual([
      ['billing', true],
      ['host-1-abcdef', false],
    ]);
    expect(e.entity?.map((x) => x.what?.identifier?.value)).toEqual([subject.messageId]);
    expect(e.purposeOfEvent?.[0]?.coding?.[0]?.code).toBe('PATRQT');
  });

  it('accepted: BALP create, publisher as requesting source, patient as pseudonym, resource and message id', () => {
    const e = byKind('accepted');
    expect(e.type).toMatchObject({ system: 'http://terminology.hl7.org/CodeSystem/audit-event-type', code: 'rest' });
    expect(e.subtype).toEqual([
      { system: 'http://hl7.org/fhir/restful-interaction', code: 'create', display: 'create' },
    ]);
    expect([e.action, e.outcome]).toEqual(['C', '0']);
    expect(e.agent[0]).toMatchObject({
      who: { identifier: { value: 'registration' } },
      requestor: true,
      type: { coding: [{ code: '110153' }] },
    });
    expect(e.agent[1]).toMatchObject({
      who: { identifier: { system: 'urn:phi-broker:instance', value: 'host-1-abcdef' } },
      requestor: false,
      network: { address: 'broker-host', type: '1' },
    });
    const entities = e.entity ?? [];
    expect(entities[0]).toEqual({
      what: {
        type: 'Patient',
        identifier: { system: 'urn:phi-broker:patient-pseudonym', value: patientPseudonym(secrets, PATIENT) },
      },
      type: { system: 'http://terminology.hl7.org/CodeSystem/audit-entity-type', code: '1', display: 'Person' },
      role: { system: 'http://terminology.hl7.org/CodeSystem/object-role', code: '1', display: 'Patient' },
    });
    // the logical id as the keyed pseudonym of Observation/obs-1, never in clear (an id may embed an identifier)
    expect(entities[1]?.what).toEqual({
      identifier: {
        system: 'urn:phi-broker:resource-pseudonym',
        value: patientPseudonym(secrets, 'Observation/obs-1'),
      },
      type: 'Observation',
    });
    expect(JSON.stringify(e)).not.toContain('obs-1');
    expect(entities[2]?.what).toEqual({
      identifier: { system: 'urn:phi-broker:message-id', value: subject.messageId },
    });
    expect(JSON.stringify(e)).not.toContain('pat-7731-zz');
  });

  it('a Bundle that travels whole names each entry patient (pseudonyms, once each)', () => {
    const bundleSubject = {
      messageId: subject.messageId,
      resourceType: 'Bundle',
      resourcePseudonym: patientPseudonym(secrets, 'Bundle/b-1'),
      patientPseudonyms: [PATIENT, 'Patient/other-7731', PATIENT].map((ref) => patientPseudonym(secrets, ref)),
    };
    const e = buildAuditEvent({ kind: 'accepted', sender, subject: bundleSubject, ingestSeq: 1 }, ctx);
    const patients = e.entity
      ?.filter((x) => x.what?.identifier?.system === 'urn:phi-broker:patient-pseudonym')
      .map((x) => x.what?.identifier?.value);
    expect(patients).toEqual([patientPseudonym(secrets, PATIENT), patientPseudonym(secrets, 'Patient/other-7731')]);
    expect(JSON.stringify(e)).not.toContain('7731');
  });

  it('a subject without a resource pseudonym (a Patient, a resource without id: test/broker/audit-facts.test.ts) names the resource by type only', () => {
    const e = buildAuditEvent(
      {
        kind: 'accepted',
        sender,
        subject: {
          messageId: subject.messageId,
          resourceType: 'Patient',
          patientPseudonym: patientPseudonym(secrets, PATIENT),
        },
        ingestSeq: 1,
      },
      ctx,
    );
    expect(e.entity?.[1]?.what).toEqual({ type: 'Patient' });
  });

  it('rejected: failed create with the code and element path; E_INTERNAL is a serious failure', () => {
    const e = byKind('rejected');
    expect([e.action, e.outcome, e.outcomeDesc]).toEqual(['C', '4', 'E_UNKNOWN_ELEMENT at Patient.name[0].nickname']);
    expect(buildAuditEvent({ kind: 'rejected', code: 'E_INTERNAL', ingestSeq: 1 }, ctx).outcome).toBe('8');
  });

  it('delivered: BALP privacy disclosure (DCM Export, ISO 21089 disclose) to the subscriber with purpose, profile and elements', () => {
    const e = byKind('delivered');
    expect(e.type).toMatchObject({ system: 'http://dicom.nema.org/resources/ontology/DCM', code: '110106' });
    expect(e.subtype?.[0]).toMatchObject({ code: 'disclose' });
    expect(e.purposeOfEvent).toEqual([
      { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-ActReason', code: 'HPAYMT' }] },
    ]);
    const recipient = e.agent.find((a) => a.who?.identifier?.value === 'billing');
    expect(recipient).toMatchObject({
      type: { coding: [{ code: '110152' }] },
      network: { address: '10.0.0.7', type: '2' },
      purposeOfUse: [{ coding: [{ code: 'HPAYMT' }] }],
    });
    const resource = e.entity?.find(
      (x) => x.what?.identifier?.value === patientPseudonym(secrets, 'Observation/obs-1'),
    );
    expect(resource?.detail).toEqual([
      { type: 'profile', valueString: 'https://example.org/p/billing' },
      { type: 'elements', valueString: 'Observation.code Observation.subject' },
    ]);
    expect(e.entity?.some((x) => x.what?.identifier?.value === `${subject.messageId}.billing`)).toBe(true);
  });

  it('withheld, quarantined, lifecycle, catalog and alert events carry their codes', () => {
    expect(byKind('withheld')).toMatchObject({
      outcome: '4',
      outcomeDesc: 'E_MODIFIER_WITHHELD at Observation.modifierExtension',
    });
    expect(byKind('quarantined').entity?.[0]?.what?.identifier).toEqual({
      system: 'urn:phi-broker:quarantine-record',
      value: 'q-4',
    });
    expect(byKind('broker-start').subtype?.[0]?.code).toBe('110120');
    expect(byKind('broker-stop').subtype?.[0]?.code).toBe('110121');
    const catalog = byKind('catalog-loaded');
    expect([catalog.type.code, catalog.subtype?.[0]?.code, catalog.entity?.[0]?.what?.identifier?.value]).toEqual([
      '110113',
      '110129',
      'sha256-abc',
    ]);
    expect(byKind('alert').subtype?.[0]).toEqual({ system: 'urn:phi-broker:alert-rule', code: 'rejections' });
  });
});
