// The right-of-access exchange (pure): a question opens only for the service it is sealed to and only when the
// broker signed it; an answer is accepted only from the service asked, for exactly that question, as a valid
// collection Bundle; the patient reference never appears in the bytes on the wire.
import { beforeAll, describe, expect, it } from 'vitest';
import { openAnswerEnvelope } from '../../../src/access/desk/answer.js';
import { openQuestion, sealAnswerEnvelope, sealQuestion } from '../../../src/access/protocol/holder-exchange.js';
import { DEFAULT_PATIENT_MATCH } from '../../../src/catalog/types.js';
import { initCrypto } from '../../../src/crypto/sodium.js';
import { DEFAULT_VALIDATION_LIMITS } from '../../../src/fhir/limits.js';
import type { FhirResource } from '../../../src/fhir/resource.js';
import { makeParties, type Parties } from '../../envelope/parties.js';

let p: Parties;
const REF = 'Patient/Zq7731Mike';
const NOW = Date.UTC(2026, 10, 3);

beforeAll(async () => {
  await initCrypto();
  p = makeParties('access-protocol');
});

function question(service: 'billing' | 'registration' = 'billing') {
  return sealQuestion({
    requestId: 'ar-1',
    service,
    attempt: 2,
    patientRef: REF,
    now: NOW,
    signer: p.keys.broker.sign,
    keyring: p.rings.broker,
  });
}

const resources: FhirResource[] = [{ resourceType: 'Patient', id: 'Zq7731Mike', name: [{ family: 'Protocolova' }] }];

describe('question', () => {
  it('opens for the service it is sealed to, with the reference; the bytes never hold it', () => {
    const q = question();
    expect(q.id).toBe('ar-1.billing.2');
    expect(openQuestion(q.bytes, q.sig, p.rings.billing, 'billing')).toEqual({ id: 'ar-1.billing.2', patientRef: REF });
    expect(Buffer.from(q.bytes).toString('latin1')).not.toContain('Zq7731Mike');
  });

  it('is refused by another service, and when not signed by the broker', () => {
    const q = question();
    expect(() => openQuestion(q.bytes, q.sig, p.rings.registration, 'registration')).toThrow(
      expect.objectContaining({ code: 'E_ENVELOPE_INVALID', path: 'keys' }) as Error,
    );
    expect(() => openQuestion(q.bytes, undefined, p.rings.billing, 'billing')).toThrow(
      expect.objectContaining({ code: 'E_SIGNATURE' }) as Error,
    );
    // A service cannot pose as the broker: a "question" it signs is refused.
    const forged = sealAnswerEnvelope({
      questionId: 'x',
      service: 'registration',
      resources,
      now: NOW,
      signer: p.keys.registration.sign,
      keyring: p.rings.registration,
    });
    expect(() => openQuestion(forged.bytes, forged.sig, p.rings.billing, 'billing')).toThrow(
      expect.objectContaining({ code: 'E_SIGNATURE', path: 'iss' }) as Error,
    );
  });
});

describe('answer', () => {
  it('is accepted from the service asked, for that question, as its resources', () => {
    const a = sealAnswerEnvelope({
      questionId: 'ar-1.billing.2',
      service: 'billing',
      resources,
      now: NOW,
      signer: p.keys.billing.sign,
      keyring: p.rings.billing,
    });
    expect(
      openAnswerEnvelope(
        a.bytes,
        a.sig,
        p.rings.broker,
        { questionId: 'ar-1.billing.2', service: 'billing', patientRef: REF, rule: DEFAULT_PATIENT_MATCH },
        DEFAULT_VALIDATION_LIMITS,
      ),
    ).toEqual({ ok: true, resources });
    expect(Buffer.from(a.bytes).toString('latin1')).not.toContain('Protocolova');
    const none = sealAnswerEnvelope({
      questionId: 'ar-1.billing.2',
      service: 'billing',
      resources: [],
      now: NOW,
      signer: p.keys.billing.sign,
      keyring: p.rings.billing,
    });
    expect(
      openAnswerEnvelope(
        none.bytes,
        none.sig,
        p.rings.broker,
        { questionId: 'ar-1.billing.2', service: 'billing', patientRef: REF, rule: DEFAULT_PATIENT_MATCH },
        DEFAULT_VALIDATION_LIMITS,
      ),
    ).toEqual({ ok: true, resources: [] });
  });

  it('is refused from another service, for another question, or unsigned; a service error is a coded miss', () => {
    const expected = { questionId: 'ar-1.billing.2', service: 'billing', patientRef: REF, rule: DEFAULT_PATIENT_MATCH };
    const other = sealAnswerEnvelope({
      questionId: 'ar-1.billing.2',
      service: 'registration',
      resources,
      now: NOW,
      signer: p.keys.registration.sign,
      keyring: p.rings.registration,
    });
    expect(() =>
      openAnswerEnvelope(other.bytes, other.sig, p.rings.broker, expected, DEFAULT_VALIDATION_LIMITS),
    ).toThrow(expect.objectContaining({ code: 'E_SENDER_MISMATCH' }) as Error);
    const stale = sealAnswerEnvelope({
      questionId: 'ar-1.billing.1',
      service: 'billing',
      resources,
      now: NOW,
      signer: p.keys.billing.sign,
      keyring: p.rings.billing,
    });
    expect(() =>
      openAnswerEnvelope(stale.bytes, stale.sig, p.rings.broker, expected, DEFAULT_VALIDATION_LIMITS),
    ).toThrow(expect.objectContaining({ code: 'E_ENVELOPE_INVALID', path: 'id' }) as Error);
    expect(() =>
      openAnswerEnvelope(stale.bytes, undefined, p.rings.broker, expected, DEFAULT_VALIDATION_LIMITS),
    ).toThrow(expect.objectContaining({ code: 'E_SIGNATURE' }) as Error);
    const failed = sealAnswerEnvelope({
      questionId: 'ar-1.billing.2',
      service: 'billing',
      resources: undefined,
      now: NOW,
      signer: p.keys.billing.sign,
      keyring: p.rings.billing,
    });
    expect(openAnswerEnvelope(failed.bytes, failed.sig, p.rings.broker, expected, DEFAULT_VALIDATION_LIMITS)).toEqual({
      ok: false,
      code: 'SERVICE_ERROR',
    });
    const invalid = sealAnswerEnvelope({
      questionId: 'ar-1.billing.2',
      service: 'billing',
      resources: [{ resourceType: 'Patient', id: 'x', nickname: 'Z' }],
      now: NOW,
      signer: p.keys.billing.sign,
      keyring: p.rings.billing,
    });
    expect(() =>
      openAnswerEnvelope(invalid.bytes, invalid.sig, p.rings.broker, expected, DEFAULT_VALIDATION_LIMITS),
    ).toThrow(
      expect.objectContaining({ code: 'E_UNKNOWN_ELEMENT', path: 'Bundle.entry[0].resource.nickname' }) as Error,
    );
    const badDate = sealAnswerEnvelope({
      questionId: 'ar-1.billing.2',
      service: 'billing',
      resources: [
        resources[0] as FhirResource,
        { resourceType: 'Patient', id: 'Zq7731Mike', birthDate: 'Zq7731-not-a-date' },
      ],
      now: NOW,
      signer: p.keys.billing.sign,
      keyring: p.rings.billing,
    });
    let err: unknown;
    try {
      openAnswerEnvelope(badDate.bytes, badDate.sig, p.rings.broker, expected, DEFAULT_VALIDATION_LIMITS);
    } catch (e) {
      err = e;
    }
    expect(err).toMatchObject({ code: 'E_FHIR_INVALID', path: 'Bundle.entry[1].resource.birthDate' });
    expect((err as Error).message).toMatch(/^Bundle\.entry\[1\]\.resource \(Patient\): /);
    expect((err as Error).message).not.toContain('Zq7731');
  });

  it('validates resource by resource: an answer larger than one resource may be (1 MiB) is accepted', () => {
    const many: FhirResource[] = Array.from({ length: 3000 }, (_, i) => ({
      resourceType: 'Observation',
      id: `obs-${i}`,
      status: 'final',
      code: { text: 'x'.repeat(400) },
      subject: { reference: REF },
    }));
    const a = sealAnswerEnvelope({
      questionId: 'ar-1.billing.2',
      service: 'billing',
      resources: many,
      now: NOW,
      signer: p.keys.billing.sign,
      keyring: p.rings.billing,
    });
    expect(a.bytes.length).toBeGreaterThan(DEFAULT_VALIDATION_LIMITS.maxResourceSize);
    const opened = openAnswerEnvelope(
      a.bytes,
      a.sig,
      p.rings.broker,
      { questionId: 'ar-1.billing.2', service: 'billing', patientRef: REF, rule: DEFAULT_PATIENT_MATCH },
      DEFAULT_VALIDATION_LIMITS,
    );
    expect(opened).toEqual({ ok: true, resources: many });
  });

  it('is refused whole when a resource is about another patient, or about no patient the rule resolves', () => {
    const expected = { questionId: 'ar-1.billing.2', service: 'billing', patientRef: REF, rule: DEFAULT_PATIENT_MATCH };
    const other: FhirResource = {
      resourceType: 'Observation',
      id: 'o2',
      status: 'final',
      code: { text: 'pulse' },
      subject: { reference: 'Patient/Zq7731Oscar' },
    };
    const a = sealAnswerEnvelope({
      questionId: 'ar-1.billing.2',
      service: 'billing',
      resources: [...resources, other],
      now: NOW,
      signer: p.keys.billing.sign,
      keyring: p.rings.billing,
    });
    let err: unknown;
    try {
      openAnswerEnvelope(a.bytes, a.sig, p.rings.broker, expected, DEFAULT_VALIDATION_LIMITS);
    } catch (e) {
      err = e;
    }
    expect(err).toMatchObject({
      code: 'E_ACCESS_OTHER_PATIENT',
      path: 'Bundle.entry[1].resource',
      message: 'Bundle.entry[1].resource: this Observation is about another patient than the one asked',
    });
  });
});

describe("answers made of the broker's minimum-necessary copies", () => {
  const PROFILE = 'https://phi-broker.example/fhir/StructureDefinition/observation-brief';
  const TOKEN = 'Patient/ab3cde7fghijklmnopqrstuvwxyz2345';
  const expected = {
    questionId: 'ar-1.billing.2',
    service: 'billing',
    patientRef: REF,
    rule: DEFAULT_PATIENT_MATCH,
    pseudonymousRef: TOKEN,
    deliveredProfiles: new Map([['Observation', new Set([PROFILE])]]),
  };
  // A copy as a profile without status and with the subject pseudonymised delivers it: required status withheld.
  const copy = (profile: string): FhirResource => ({
    resourceType: 'Observation',
    id: 'q4k2',
    meta: { profile: [profile] },
    code: { text: 'pulse' },
    subject: { reference: TOKEN },
  });
  const seal = (rs: FhirResource[]) =>
    sealAnswerEnvelope({
      questionId: 'ar-1.billing.2',
      service: 'billing',
      resources: rs,
      now: NOW,
      signer: p.keys.billing.sign,
      keyring: p.rings.billing,
    });
  const open = (rs: FhirResource[], exp: Parameters<typeof openAnswerEnvelope>[3] = expected) => {
    const a = seal(rs);
    return openAnswerEnvelope(a.bytes, a.sig, p.rings.broker, exp, DEFAULT_VALIDATION_LIMITS);
  };

  it('the question also names the patient as the copies to that service do', () => {
    const q = sealQuestion({
      requestId: 'ar-1',
      service: 'billing',
      attempt: 1,
      patientRef: REF,
      patientPseudonym: TOKEN,
      now: NOW,
      signer: p.keys.broker.sign,
      keyring: p.rings.broker,
    });
    expect(openQuestion(q.bytes, q.sig, p.rings.billing, 'billing')).toEqual({
      id: 'ar-1.billing.1',
      patientRef: REF,
      patientPseudonym: TOKEN,
    });
    expect(Buffer.from(q.bytes).toString('latin1')).not.toContain('ab3cde7');
  });

  it("accepts a copy named by the service's pseudonym of the patient, lacking a required element its profile withholds", () => {
    expect(open([copy(PROFILE)])).toEqual({ ok: true, resources: [copy(PROFILE)] });
  });

  it('holds everything else to the full check: another profile, no pseudonym expected, no id', () => {
    expect(() => open([copy('https://elsewhere.example/StructureDefinition/obs')])).toThrow(
      expect.objectContaining({ code: 'E_FHIR_INVALID', path: 'Bundle.entry[0].resource.status' }) as Error,
    );
    const { pseudonymousRef: _p, ...withoutPseudonym } = expected;
    expect(() => open([copy(PROFILE)], withoutPseudonym)).toThrow(
      expect.objectContaining({ code: 'E_ACCESS_OTHER_PATIENT', path: 'Bundle.entry[0].resource' }) as Error,
    );
    const { id: _id, ...noId } = copy(PROFILE);
    expect(() => open([noId as FhirResource])).toThrow(
      expect.objectContaining({ code: 'E_FHIR_INVALID', path: 'Bundle.entry[0].resource.id' }) as Error,
    );
  });
});
