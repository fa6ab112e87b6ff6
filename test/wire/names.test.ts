// NATS names (src/wire/names.ts): every subject, stream and consumer name, spelled out here independently, and the
// parser of ingest subjects refusing every token that is not a service id or a resource type.
import { describe, expect, it } from 'vitest';
import {
  chainWriter,
  gatewayChain,
  operatorChain,
  BROKER_CONSUMER,
  BROKER_QUEUE,
  HEADERS,
  KV_BUCKETS,
  OBJECT_STORES,
  RAW_TYPE,
  STREAMS,
  deliveryConsumer,
  parseIngestSubject,
  subjectGrammar,
  subjects,
} from '../../src/wire/names.js';

describe('subjects', () => {
  it('are built from a service id and a resource type token', () => {
    expect(subjects.ingest('registration', 'Patient')).toBe('phi.ingest.registration.Patient');
    expect(subjects.ingest('public-health', RAW_TYPE)).toBe('phi.ingest.public-health._raw');
    expect(subjects.deliver('ehr', 'Observation')).toBe('phi.deliver.ehr.Observation');
    expect(subjects.deliverFilter('ehr')).toBe('phi.deliver.ehr.>');
    expect(subjects.deliverFilter('ehr', 'Observation')).toBe('phi.deliver.ehr.Observation');
    expect(subjects.receipt('billing')).toBe('phi.receipt.billing');
    expect(subjects.quarantine('billing')).toBe('phi.quarantine.billing');
    expect(subjects.quarantine('')).toBe('phi.quarantine._unknown');
    expect(subjects.quarantine('Not.A*Service')).toBe('phi.quarantine._unknown');
    expect(subjects.access('pharmacy')).toBe('phi.access.pharmacy');
    expect(subjects.accessControl).toBe('phi.control.access');
    expect(subjects.accessPart('pharmacy', '0123456789abcdef0123456789abcdef')).toBe(
      'phi.access.pharmacy.part.0123456789abcdef0123456789abcdef',
    );
    expect(subjects.accessParts('pharmacy')).toBe('phi.access.pharmacy.part.*');
    expect([subjects.ingestAll, subjects.deliverAll, subjects.quarantineAll, subjects.receiptsAll]).toEqual([
      'phi.ingest.>',
      'phi.deliver.>',
      'phi.quarantine.>',
      'phi.receipt.>',
    ]);
  });

  it.each([
    ['a wildcard service', () => subjects.ingest('*', 'Patient')],
    ['a service with a dot', () => subjects.deliver('ehr.x', 'Patient')],
    ['an upper-case service', () => subjects.receipt('EHR')],
    ['an empty service', () => subjects.deliverFilter('')],
    ['a wildcard access service', () => subjects.access('>')],
    ['a wildcard answer parts token', () => subjects.accessPart('pharmacy', '*')],
    ['an answer parts token that is not 32 hex digits', () => subjects.accessPart('pharmacy', 'Patient-123')],
    ['a wildcard answer parts service', () => subjects.accessParts('*')],
    ['a wildcard type', () => subjects.ingest('ehr', '>')],
    ['a type with a dot', () => subjects.deliver('ehr', 'Patient.name')],
    ['a lower-case type', () => subjects.ingest('ehr', 'patient')],
    ['a value-like type', () => subjects.ingest('ehr', 'Patient/123')],
    ['an instance id with a dot', () => subjects.audit('host.example')],
    ['a wildcard instance id', () => subjects.audit('*')],
    ['an alert rule with a dot', () => subjects.alert('a.b')],
  ])('refuse %s with TypeError (a caller mistake; nothing PHI-like enters a subject)', (_n, f) => {
    expect(f).toThrow(TypeError);
  });

  it('audit chains and alerts have their own subjects', () => {
    expect([subjects.auditAll, subjects.audit('host-42-a1b2c3'), subjects.alert('rejections')]).toEqual([
      'phi.audit.>',
      'phi.audit.host-42-a1b2c3',
      'phi.alert.rejections',
    ]);
    // Witnessed heads sit outside phi.audit.>, so PHI_AUDIT never holds them and PHI_AUDIT_WITNESS never a record.
    expect([subjects.witnessAll, subjects.witness('host-42-a1b2c3')]).toEqual([
      'phi.witness.audit.>',
      'phi.witness.audit.host-42-a1b2c3',
    ]);
    expect(() => subjects.witness('a.b')).toThrow(TypeError);
  });

  it('gateways and operator commands write chains in namespaces of their own, each with its signing party', () => {
    expect([subjects.audit(gatewayChain('host-1-abcdef')), subjects.witness(gatewayChain('host-1-abcdef'))]).toEqual([
      'phi.audit.gw.host-1-abcdef',
      'phi.witness.audit.gw.host-1-abcdef',
    ]);
    expect([subjects.gatewayAuditAll, subjects.gatewayWitnessAll]).toEqual([
      'phi.audit.gw.*',
      'phi.witness.audit.gw.*',
    ]);
    expect(['host-1-abcdef', gatewayChain('h-1'), operatorChain('h-2')].map(chainWriter)).toEqual([
      'broker',
      'gateway',
      'operator',
    ]);
    expect(() => gatewayChain('a.b')).toThrow(TypeError);
    expect(() => subjects.audit('gw.')).toThrow(TypeError);
  });

  it('streams, bucket, consumer and header names are fixed', () => {
    expect(STREAMS).toEqual({
      ingest: 'PHI_INGEST',
      deliver: 'PHI_DELIVER',
      quarantine: 'PHI_QUARANTINE',
      receipts: 'PHI_RECEIPTS',
      disclosures: 'PHI_DISCLOSURES',
      audit: 'PHI_AUDIT',
      auditWitness: 'PHI_AUDIT_WITNESS',
    });
    expect(KV_BUCKETS).toEqual({
      seen: 'phi_seen',
      consent: 'phi_consent',
      registry: 'phi_registry',
      access: 'phi_access',
      gatewayJti: 'phi_gateway_jti',
      gatewayRequests: 'phi_gateway_requests',
      gatewayRate: 'phi_gateway_rate',
      gatewaySubscriptions: 'phi_gateway_subscriptions',
      gatewayEvents: 'phi_gateway_events',
      keys: 'phi_keys',
    });
    expect(OBJECT_STORES).toEqual({ accessAnswers: 'phi_access_answers' });
    expect(BROKER_CONSUMER).toBe('broker');
    expect(BROKER_QUEUE).toBe('phi-broker');
    expect(HEADERS).toEqual({
      msgId: 'Nats-Msg-Id',
      signature: 'Phi-Sig',
      code: 'Phi-Code',
      record: 'Phi-Record',
      part: 'Phi-Part',
      parts: 'Phi-Parts',
    });
  });
});

describe('disclosure subjects', () => {
  const pseudonym = 'A'.repeat(40) + '-_9';

  it('are phi.disclosure.<patient pseudonym>.<recipient>, or _unresolved', () => {
    expect(subjects.disclosure(pseudonym, 'partner-payer')).toBe(`phi.disclosure.${pseudonym}.partner-payer`);
    expect(subjects.disclosure('_unresolved', 'public-health')).toBe('phi.disclosure._unresolved.public-health');
    expect(subjects.disclosuresOf(pseudonym)).toBe(`phi.disclosure.${pseudonym}.>`);
  });

  it.each(['Patient/123', 'MRN-7731', '*', '>', 'a.b', 'A'.repeat(44)])(
    'refuse %s as a patient token (only a pseudonym enters a subject)',
    (token) => {
      expect(() => subjects.disclosure(token, 'partner-payer')).toThrow(TypeError);
      expect(() => subjects.disclosuresOf(token)).toThrow(TypeError);
    },
  );
});

describe('parseIngestSubject', () => {
  it('parses phi.ingest.<service>.<Type> and the raw token', () => {
    expect(parseIngestSubject('phi.ingest.registration.Patient')).toEqual({ service: 'registration', type: 'Patient' });
    expect(parseIngestSubject('phi.ingest.public-health.ExplanationOfBenefit')).toEqual({
      service: 'public-health',
      type: 'ExplanationOfBenefit',
    });
    expect(parseIngestSubject('phi.ingest.ehr._raw')).toEqual({ service: 'ehr', type: RAW_TYPE });
  });

  it('round-trips every subject it builds', () => {
    for (const [service, type] of [
      ['a', 'Patient'],
      ['x-1', RAW_TYPE],
      ['z'.repeat(63), 'Bundle'],
    ] as const) {
      expect(parseIngestSubject(subjects.ingest(service, type))).toEqual({ service, type });
    }
  });

  it.each([
    'phi.ingest.registration',
    'phi.ingest.registration.Patient.extra',
    'phi.deliver.registration.Patient',
    'PHI.ingest.registration.Patient',
    'phi.ingest..Patient',
    'phi.ingest.registration.',
    'phi.ingest.Registration.Patient',
    'phi.ingest.1abc.Patient',
    `phi.ingest.${'a'.repeat(64)}.Patient`,
    'phi.ingest.registration.patient',
    'phi.ingest.registration.$raw',
    'phi.ingest.registration.raw',
    'phi.ingest.registration.Pat1ent',
    'phi.ingest.*.Patient',
    'phi.ingest.registration.>',
    '',
  ])('returns undefined for %j', (subject) => {
    expect(parseIngestSubject(subject)).toBeUndefined();
  });
});

describe('type tokens follow the wire format rule (RESOURCE_TYPE_NAME_PATTERN)', () => {
  it("a one-letter type name parses (whether R4 defines it is the broker pipeline's question: E_UNKNOWN_RESOURCE_TYPE)", () => {
    expect(parseIngestSubject('phi.ingest.registration.P')).toEqual({ service: 'registration', type: 'P' });
  });
});

describe('deliveryConsumer', () => {
  it('names one durable per service (all types) or per service and type', () => {
    expect(deliveryConsumer('ehr')).toBe('deliver-ehr');
    expect(deliveryConsumer('ehr', 'Patient')).toBe('deliver-ehr-Patient');
    expect(deliveryConsumer('public-health', 'Patient')).toBe('deliver-public-health-Patient');
    expect(deliveryConsumer('ehr', RAW_TYPE)).toBe('deliver-ehr-_raw');
  });

  it('stays unambiguous: a service id never has capitals, a type token always starts with one', () => {
    expect(deliveryConsumer('a-bx')).not.toBe(deliveryConsumer('a', 'Bx'));
    expect(() => deliveryConsumer('a', 'b')).toThrow(TypeError);
    expect(() => deliveryConsumer('A')).toThrow(TypeError);
    expect(() => deliveryConsumer('ehr', 'Patient.x')).toThrow(TypeError);
  });
});

describe('subjectGrammar (what a security incident may name)', () => {
  const fits = subjectGrammar({
    services: new Set(['registration', 'lab']),
    types: new Set(['Patient', 'Observation']),
    instances: new Set(['broker-1']),
    alertRules: new Set(['rejections']),
  });

  it("accepts phi-broker's subjects whose tokens are the catalog's names, and wildcards", () => {
    for (const s of [
      'phi.ingest.registration.Patient',
      'phi.deliver.lab.Observation',
      'phi.ingest.lab._raw',
      'phi.deliver.*.Patient',
      'phi.deliver.>',
      '>',
      'phi.receipt.lab',
      'phi.quarantine.registration',
      'phi.access.lab.part.0123456789abcdef0123456789abcdef',
      'phi.control.access',
      'phi.request.access.lab',
      'phi.audit.broker-1',
      'phi.witness.audit.*',
      'phi.audit.cli.*',
      'phi.audit.gw.*',
      'phi.witness.audit.gw.*',
      'phi.witness.audit.cli.>',
      'phi.alert.rejections',
      '$JS.API.STREAM.PURGE.PHI_AUDIT',
      '$JS.API.CONSUMER.INFO.PHI_DELIVER.deliver-lab-Observation',
      '$JS.API.>',
    ])
      expect({ s, fits: fits(s) }).toEqual({ s, fits: true });
  });

  it('refuses any token a client could have chosen: names outside the catalog, pseudonyms, inboxes, free text', () => {
    for (const s of [
      'phi.ingest.johnsmith.Patient', // a well-formed service id that is not the catalog's
      'phi.ingest.registration.Smith',
      'phi.audit.Jane-Doe',
      'phi.audit.cli.Jane-Doe', // an operator or gateway chain id is a host name: never named
      'phi.audit.gw.host-1-abcdef',
      'phi.witness.audit.cli.Jane-Doe',
      'phi.disclosure.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA.lab',
      '_INBOX.lab.abc',
      '$KV.phi_registry.key',
      '$JS.API.STREAM.INFO.SMITH',
      'Zephyrine.Oakhollow',
      'phi.ingest.registration.Patient.extra',
      'phi..ingest',
      'phi.>.x',
      '',
    ])
      expect({ s, fits: fits(s) }).toEqual({ s, fits: false });
  });
});
