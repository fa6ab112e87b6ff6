// AuditEventJson: the JSON the trail stores is byte for byte JSON.stringify(buildAuditEvent(fact)) for every kind
// of fact — the first fact of a template (which makes it) and every later one (which only fills it), with values
// that need JSON escaping, and with catalog values that collide with the template's placeholders.
import { describe, expect, it } from 'vitest';
import { AuditEventJson } from '../../src/audit/event-json.js';
import { buildAuditEvent, type EventContext } from '../../src/audit/event.js';
import type { AuditFact, AuditSubject } from '../../src/audit/facts.js';
import { DEFAULT_VALIDATION_LIMITS, validateResource } from '../../src/fhir/validate.js';
import { patientPseudonym } from '../../src/registry/pseudonym.js';

const secrets = { pseudonymKey: new Uint8Array(32).fill(9) };

/** Two contexts that hand out the same ids and times: one for the templates, one for the reference builder. */
function twinContexts(): [EventContext, EventContext] {
  const make = (): EventContext => {
    let n = 0;
    let t = Date.UTC(2026, 0, 2, 3, 4, 5, 678);
    return { instanceId: 'host-1-abcdef', host: 'broker-host', now: () => (t += 7), newId: () => `ev-${++n}` };
  };
  return [make(), make()];
}

/** The subject the broker makes (src/broker/audit-facts.ts): the keyed pseudonyms of `<Type>/<id>` and of the patient. */
function subjectOf(
  messageId: string,
  resourceType: string,
  id: string | undefined,
  patientRef: string | undefined,
): AuditSubject {
  return {
    messageId,
    resourceType,
    ...(id === undefined ? {} : { resourcePseudonym: patientPseudonym(secrets, `${resourceType}/${id}`) }),
    ...(patientRef === undefined ? {} : { patientPseudonym: patientPseudonym(secrets, patientRef) }),
  };
}

const elements = ['Observation.code', 'Observation.subject', 'Observation.value[x]'];
const sender = { service: 'ehr' };

function messageFacts(i: number, shape: (s: AuditSubject) => AuditSubject = (s) => s): AuditFact[] {
  const subject = shape(
    subjectOf(`0b5e7c1e-54a4-4b59-9d0f-${String(i).padStart(12, '0')}`, 'Observation', `obs-${i}`, `Patient/p-${i}`),
  );
  return [
    {
      kind: 'accepted',
      sender,
      subject,
      ingestSeq: 100 + i,
      keys: { verified: 'ehr:sig:1', unwrapped: `broker:enc:1~ehr:enc:${i}` },
    },
    {
      kind: 'delivered',
      sender,
      recipient: { service: 'sub1' },
      subject,
      profileUrl: 'https://example.org/p/full',
      purpose: 'TREAT',
      elements,
      deliveryId: `${subject.messageId}.sub1`,
      keys: { released: 'broker:enc:1~sub1:enc:1', signed: 'broker:sig:1' },
    },
    {
      kind: 'delivered',
      sender,
      recipient: { service: 'billing', address: '10.0.0.7' },
      subject,
      profileUrl: 'https://example.org/p/billing',
      purpose: 'HPAYMT',
      elements: ['Observation.code'],
      deliveryId: `${subject.messageId}.billing`,
    },
    {
      kind: 'withheld',
      sender,
      recipient: { service: 'analytics', address: 'analytics.internal' },
      subject,
      code: 'E_MODIFIER_WITHHELD',
      path: `Observation.component[${i}].modifierExtension`,
    },
    {
      kind: 'withheld',
      sender,
      recipient: { service: 'research' },
      subject,
      code: 'restricted:purpose:HRESCH',
      purpose: 'HRESCH',
      consent: `consent-${i}`,
    },
    { kind: 'withheld', sender, recipient: { service: 'sub3' }, subject, code: 'E_TOO_LARGE' },
  ];
}

const OTHER_FACTS: readonly AuditFact[] = [
  {
    kind: 'rejected',
    sender,
    messageId: 'm-1',
    resourceType: 'Patient',
    code: 'E_UNKNOWN_ELEMENT',
    path: 'Patient.name[0].nickname',
    ingestSeq: 13,
  },
  { kind: 'rejected', code: 'E_ENVELOPE_INVALID', ingestSeq: 14 },
  { kind: 'quarantined', recordId: 'q-4', code: 'E_SIGNATURE', sender, messageId: 'm-1', ingestSeq: 15 },
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
    step: 'answered',
    requestId: 'ar-1',
    patientPseudonym: 'pseudo-1',
    services: ['billing'],
    resources: 3,
    sha256: 'abc',
  },
  {
    kind: 'access-refused',
    requester: 'billing',
    op: 'create',
    code: 'E_ACCESS_NOT_ALLOWED',
    path: 'iss',
    messageId: 'm-2',
  },
];

/** Every fact through both paths, in order; returns the texts and the writer (its counts). */
function compare(facts: readonly AuditFact[]): { texts: string[]; writer: AuditEventJson } {
  const [fast, reference] = twinContexts();
  const writer = new AuditEventJson(fast);
  const texts = facts.map((fact) => {
    const text = writer.json(fact);
    expect(text).toBe(JSON.stringify(buildAuditEvent(fact, reference)));
    return text;
  });
  return { texts, writer };
}

describe('AuditEventJson', () => {
  it('writes exactly what the builder writes, for the template-making and the template-filling facts of every kind', () => {
    const facts = [...messageFacts(1), ...OTHER_FACTS, ...messageFacts(2), ...messageFacts(3), ...OTHER_FACTS];
    const { texts, writer } = compare(facts);
    // 3 templates (accepted, 2 delivered) from message 1, filled for messages 2 and 3; withheld and the other kinds are built each time
    expect([writer.filled, writer.built]).toEqual([6, 3 + 3 * 3 + 2 * OTHER_FACTS.length]);
    // the later messages were filled in, not copied: each carries its own ids
    expect(texts[OTHER_FACTS.length + 6 + 1]).toContain('0b5e7c1e-54a4-4b59-9d0f-000000000002.sub1');
    expect(texts[OTHER_FACTS.length + 6 + 1]).not.toContain('000000000001');
  });

  it('Patient, no resource id, no patient, a Bundle with its entry patients, facts without keys', () => {
    const facts: AuditFact[] = [];
    for (let i = 1; i <= 3; i++) {
      facts.push(...messageFacts(i, ({ resourcePseudonym: _, ...s }) => ({ ...s, resourceType: 'Patient' })));
      facts.push(...messageFacts(i, ({ resourcePseudonym: _, ...s }) => s));
      facts.push(...messageFacts(i, ({ patientPseudonym: _, ...s }) => s));
      facts.push(
        ...messageFacts(i, ({ patientPseudonym: _, ...s }) => ({
          ...s,
          resourceType: 'Bundle',
          patientPseudonyms: [`Patient/p-${i}`, 'Patient/other', `Patient/p-${i}`].map((ref) =>
            patientPseudonym(secrets, ref),
          ),
        })),
      );
      facts.push({
        kind: 'accepted',
        sender,
        subject: subjectOf(`m-${i}`, 'Patient', undefined, `Patient/q-${i}`),
        ingestSeq: i,
      });
    }
    const { writer } = compare(facts);
    expect(writer.filled).toBeGreaterThan(0);
  });

  it('escapes values as JSON does (quotes, backslashes, control and non-ASCII characters, lone surrogates)', () => {
    const odd = [
      'plain',
      'a"b',
      'back\\slash',
      'tab\there',
      'naïve–Ü',
      'emoji 😀',
      'lone \ud800 surrogate',
      'nul \u0000',
      'pua \uf000\uf081',
    ];
    // the first (plain) pair makes the templates; every odd value goes through a template's holes
    const { writer } = compare(
      odd.flatMap((v, i): AuditFact[] => [
        {
          kind: 'accepted',
          sender,
          subject: { messageId: v, resourceType: 'Observation', resourcePseudonym: v, patientPseudonym: `P${v}` },
          ingestSeq: i,
          keys: { verified: v, unwrapped: v },
        },
        {
          kind: 'delivered',
          sender,
          recipient: { service: 'sub1' },
          subject: { messageId: `m-${i}`, resourceType: 'Observation', resourcePseudonym: v, patientPseudonym: v },
          profileUrl: 'https://example.org/p/a',
          purpose: 'TREAT',
          elements,
          deliveryId: v,
          keys: { released: v, signed: v },
        },
      ]),
    );
    expect([writer.filled, writer.built]).toEqual([2 * (odd.length - 1), 2]);
  });

  it('a fact that differs from a templated one in any value the builder reads gets its own event text', () => {
    const subject = (i: number): AuditSubject => subjectOf(`m-${i}`, 'Observation', `o-${i}`, `Patient/p-${i}`);
    const base = (i: number): Extract<AuditFact, { kind: 'delivered' }> => ({
      kind: 'delivered',
      sender,
      recipient: { service: 'sub1' },
      subject: subject(i),
      profileUrl: 'https://example.org/p/a',
      purpose: 'TREAT',
      elements,
      deliveryId: `m-${i}.sub1`,
    });
    const variants: ((i: number) => AuditFact)[] = [
      base,
      (i) => ({ ...base(i), purpose: 'HPAYMT' }),
      (i) => ({ ...base(i), profileUrl: 'https://example.org/p/b' }),
      (i) => ({ ...base(i), elements: ['Observation.code'] }),
      (i) => ({ ...base(i), recipient: { service: 'sub1', address: '10.0.0.9' } }),
      (i) => ({ ...base(i), recipient: { service: 'sub1', address: 'sub1.internal' } }),
      (i) => ({ ...base(i), sender: { service: 'lab' } }),
      (i) => ({ ...base(i), subject: { ...subject(i), resourceType: 'Condition' } }),
      (i) => ({ ...base(i), keys: { released: 'k1', signed: 'k2' } }),
      (i) => ({ kind: 'withheld', sender, recipient: { service: 'sub1' }, subject: subject(i), code: 'E_TOO_LARGE' }),
      (i) => ({
        kind: 'withheld',
        sender,
        recipient: { service: 'sub1' },
        subject: subject(i),
        code: 'E_TOO_LARGE',
        purpose: 'TREAT',
      }),
      (i) => ({ kind: 'accepted', sender, subject: subject(i), ingestSeq: i }),
    ];
    // each variant twice, interleaved: the second round is written from the first round's templates
    const { writer } = compare([1, 2].flatMap((i) => variants.map((v) => v(i))));
    // the two withheld variants are never templated: built both times
    expect([writer.filled, writer.built]).toEqual([variants.length - 2, variants.length + 2]);
  });

  it('catalog values that look like placeholders do not corrupt an event (the template is refused, the builder writes it)', () => {
    const url = 'https://example.org/p/\uf001\uf080\uf0ff\uf07f';
    const facts = [1, 2, 3].flatMap((i) =>
      messageFacts(i).map((f): AuditFact =>
        f.kind === 'delivered' ? { ...f, profileUrl: url, recipient: { service: '\uf002' } } : f,
      ),
    );
    const { texts, writer } = compare(facts);
    expect(texts[7]).toContain(url);
    // the two delivered of each message are built (their templates refused) and so are the three withheld; accepted is filled after message 1
    expect([writer.filled, writer.built]).toEqual([2, 6 + 2 * 5]);
  });

  it('events written from a template are valid FHIR R4 AuditEvents', () => {
    const [fast] = twinContexts();
    const writer = new AuditEventJson(fast);
    for (const f of messageFacts(1)) writer.json(f);
    for (const f of messageFacts(2)) {
      expect(() => validateResource(JSON.parse(writer.json(f)), DEFAULT_VALIDATION_LIMITS)).not.toThrow();
    }
    expect(writer.filled).toBe(3);
  });
});
