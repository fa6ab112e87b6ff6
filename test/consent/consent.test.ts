// Restrictions as FHIR R4 Consent (pure): what add builds validates against R4, reads back to exactly what it
// denies, refuses what the broker could not enforce with E_CONSENT_INVALID naming the option, and never echoes a
// patient reference in an error. Under `match: identifier` the Consent names its patient by a logical reference
// (identifier) that resolves back to the canonical `<system>|<value>`. The decision and the sealed storage format
// are checked here too.
import { describe, expect, it } from 'vitest';
import type { Consent } from 'fhir/r4.js';
import { initCrypto } from '../../src/crypto/sodium.js';
import type { PatientMatchDef } from '../../src/catalog/types.js';
import {
  buildConsent,
  checkConsent,
  consentPatient,
  denyAllRestriction,
  restrictionOf,
  revokedConsent,
  type Restriction,
} from '../../src/consent/consent.js';
import { restrictionCheck, securityLabels, type RestrictionPolicy } from '../../src/consent/decide.js';
import { consentStoreKey, openConsentValue, sealConsentValue } from '../../src/consent/sealed.js';
import { BrokerError } from '../../src/wire/errors.js';
import { DEFAULT_VALIDATION_LIMITS, validateResource } from '../../src/fhir/validate.js';
import { fhirSchemaErrors } from '../helpers/fhir-schema.js';

const SERVICES = new Set(['ehr', 'billing', 'partner-payer', 'analytics']);
const ID = '3f0c2d4e-1a2b-4c3d-8e9f-0123456789ab';
const PATIENT = 'Patient/zq-restrict-7731';
const base = {
  id: ID,
  patient: PATIENT,
  denyRecipients: [],
  denyPurposes: [],
  denyLabels: [],
  at: Date.UTC(2026, 11, 1),
};
const BY_REF: PatientMatchDef = { match: 'reference', unresolved: 'accept' };
const MRN = 'http://hospital.example.org/mrn';
const BY_MRN: PatientMatchDef = { match: 'identifier', system: MRN, unresolved: 'accept' };

function thrown(fn: () => unknown): BrokerError {
  try {
    fn();
  } catch (e) {
    if (e instanceof BrokerError) return e;
    throw e;
  }
  throw new Error('expected a BrokerError');
}

describe('buildConsent', () => {
  it('builds an R4 Consent (scope patient-privacy, base permit, one deny provision per kind) that validates', () => {
    const c = buildConsent(
      {
        ...base,
        denyRecipients: ['partner-payer'],
        denyPurposes: ['HRESCH'],
        denyLabels: ['PSY', 'HIV'],
        reason: 'paid <out> of pocket & "private"',
      },
      SERVICES,
      BY_REF,
    );
    expect(validateResource(c, DEFAULT_VALIDATION_LIMITS)).toBe(c);
    expect(c).toMatchObject({
      resourceType: 'Consent',
      id: ID,
      status: 'active',
      patient: { reference: PATIENT },
      dateTime: '2026-12-01T00:00:00.000Z',
    });
    expect(c.scope.coding?.[0]).toMatchObject({
      system: 'http://terminology.hl7.org/CodeSystem/consentscope',
      code: 'patient-privacy',
    });
    expect(c.provision?.type).toBe('permit');
    expect(c.provision?.provision?.map((p) => p.type)).toEqual(['deny', 'deny', 'deny']);
    expect(c.provision?.provision?.[0]?.actor?.[0]?.reference.identifier).toEqual({
      system: 'urn:phi-broker:service',
      value: 'partner-payer',
    });
    expect(c.provision?.provision?.[2]?.securityLabel?.map((l) => l.code)).toEqual(['PSY', 'HIV']);
    expect(c.text?.div).toContain('paid &lt;out&gt; of pocket &amp; &quot;private&quot;');
    const r = restrictionOf(c);
    expect([[...r.recipients], [...r.purposes], [...r.labels], r.active, r.all]).toEqual([
      ['partner-payer'],
      ['HRESCH'],
      ['PSY', 'HIV'],
      true,
      false,
    ]);
  });

  it.each([
    [
      { denyRecipients: ['partner-x'] },
      'Consent.provision.provision.actor.reference',
      'Consent.provision.provision.actor.reference: no service "partner-x" in the catalog',
    ],
    [
      { denyPurposes: ['SHOPPING'] },
      'Consent.provision.provision.purpose',
      'Consent.provision.provision.purpose: "SHOPPING" is not a purpose of use the catalog routes with (HL7 v3 ActReason)',
    ],
    [
      { denyLabels: ['XYZ'] },
      'Consent.provision.provision.securityLabel',
      'Consent.provision.provision.securityLabel: "XYZ" is not a known sensitivity label (HL7 v3 ActCode)',
    ],
    [
      {},
      'Consent.provision.provision',
      'Consent.provision.provision: a restriction denies at least one recipient, purpose of use or sensitivity label',
    ],
  ])('refuses %j with E_CONSENT_INVALID naming %s', (extra, path, message) => {
    const e = thrown(() => buildConsent({ ...base, ...extra }, SERVICES, BY_REF));
    expect([e.code, e.path, e.message]).toEqual(['E_CONSENT_INVALID', path, message]);
  });

  it("refuses a patient not in the rule's canonical form without repeating it", () => {
    const e = thrown(() =>
      buildConsent({ ...base, patient: 'MRN-7731-SECRET', denyLabels: ['PSY'] }, SERVICES, BY_REF),
    );
    expect([e.code, e.path, e.message]).toEqual([
      'E_PATIENT_UNRESOLVED',
      'patient',
      'patient: expected Patient/<id> (the catalog matches patients by reference)',
    ]);
    const byMrn = thrown(() =>
      buildConsent({ ...base, patient: 'Patient/zq-7731', denyLabels: ['PSY'] }, SERVICES, BY_MRN),
    );
    expect([byMrn.code, byMrn.path]).toEqual(['E_PATIENT_UNRESOLVED', 'patient']);
    expect(byMrn.message).toBe(
      `patient: expected <value> or ${MRN}|<value>, not Patient/<id> (the catalog matches patients by that identifier system)`,
    );
    for (const err of [e, byMrn]) expect(err.message).not.toContain('7731');
  });

  it('under match: identifier, names the patient by a logical reference that resolves back to <system>|<value>', () => {
    for (const given of ['MRN-7731-SECRET', `${MRN}|MRN-7731-SECRET`]) {
      const c = buildConsent({ ...base, patient: given, denyLabels: ['PSY'] }, SERVICES, BY_MRN);
      expect(validateResource(c, DEFAULT_VALIDATION_LIMITS)).toBe(c);
      expect(c.patient).toEqual({ type: 'Patient', identifier: { system: MRN, value: 'MRN-7731-SECRET' } });
      expect(consentPatient(c, BY_MRN)).toBe(`${MRN}|MRN-7731-SECRET`);
    }
    // A Consent written under one rule does not read under the other (the broker's view fails closed on it).
    const byRef = buildConsent({ ...base, denyLabels: ['PSY'] }, SERVICES, BY_REF);
    expect(consentPatient(byRef, BY_REF)).toBe(PATIENT);
    expect(thrown(() => checkConsent(byRef, BY_MRN))).toMatchObject({
      code: 'E_CONSENT_INVALID',
      path: 'Consent.patient',
    });
  });

  it('revoking makes it inactive; a shape it does not write (two kinds in one deny provision) is refused', () => {
    const c = buildConsent({ ...base, denyRecipients: ['billing'] }, SERVICES, BY_REF);
    const revoked = revokedConsent(c, Date.parse('2026-02-01T00:00:00Z'));
    expect(restrictionOf(checkConsent(revoked, BY_REF)).active).toBe(false);
    // When it ended: provision.period.end; dateTime (when it was agreed) is kept.
    expect(revoked.provision?.period).toEqual({ start: c.dateTime, end: '2026-02-01T00:00:00.000Z' });
    expect(revoked.dateTime).toBe(c.dateTime);
    expect(fhirSchemaErrors(revoked)).toEqual([]);
    const combined: Consent = {
      ...c,
      provision: {
        type: 'permit',
        provision: [
          {
            type: 'deny',
            purpose: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-ActReason', code: 'TREAT' }],
            securityLabel: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'PSY' }],
          },
        ],
      },
    };
    expect(thrown(() => checkConsent(combined, BY_REF))).toMatchObject({
      code: 'E_CONSENT_INVALID',
      path: 'Consent.provision.provision[0]',
    });
  });
});

describe('restrictionCheck', () => {
  const r = (over: Partial<Restriction>): Restriction => ({
    id: 'c1',
    active: true,
    recipients: new Set(),
    purposes: new Set(),
    labels: new Set(),
    all: false,
    ...over,
  });
  const policy = (m: Record<string, Restriction[]>): RestrictionPolicy => ({
    hasAny: () => Object.keys(m).length > 0,
    restrictionsOf: (p) => m[p],
  });
  const labelled = {
    resourceType: 'Observation',
    id: 'o1',
    meta: {
      security: [
        { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'PSY' },
        { system: 'http://terminology.hl7.org/CodeSystem/v3-Confidentiality', code: 'R' },
      ],
    },
  };

  it('denies by recipient, by purpose (exact code) and by label; others pass', () => {
    const check = restrictionCheck(
      policy({
        p1: [
          r({ recipients: new Set(['billing']) }),
          r({ id: 'c2', purposes: new Set(['TREAT']) }),
          r({ id: 'c3', labels: new Set(['PSY']) }),
        ],
      }),
      labelled,
      () => 'p1',
    );
    expect(check?.('billing', 'HPAYMT')).toEqual({ consent: 'c1', reason: 'recipient' });
    expect(check?.('ehr', 'TREAT')).toEqual({ consent: 'c2', reason: 'purpose', code: 'TREAT' });
    expect(check?.('analytics', 'HRESCH')).toEqual({ consent: 'c3', reason: 'label', code: 'PSY' });
    const unlabelled = restrictionCheck(
      policy({ p1: [r({ labels: new Set(['PSY']) })] }),
      { resourceType: 'Observation', id: 'o2' },
      () => 'p1',
    );
    expect(unlabelled?.('analytics', 'HRESCH')).toBeUndefined();
    expect(
      restrictionCheck(policy({ p1: [r({ purposes: new Set(['TREAT']) })] }), labelled, () => 'p1')?.('ehr', 'ETREAT'),
    ).toBeUndefined();
  });

  it("checks a whole Bundle entry by entry, with the Bundle's own labels", () => {
    const obs = (p: string, labels: object[] = []) => ({
      resource: { resourceType: 'Observation', id: p, meta: { security: labels } },
    });
    const bundle = {
      resourceType: 'Bundle',
      id: 'b',
      type: 'collection',
      meta: { security: [{ code: 'HIV' }] },
      entry: [obs('p2'), { resource: { resourceType: 'Bundle', id: 'inner', type: 'collection', entry: [obs('p1')] } }],
    };
    const byId = (res: { id?: string }): string | undefined => res.id;
    const policy2 = policy({ p1: [r({ id: 'c7', labels: new Set(['HIV']) })] });
    expect(restrictionCheck(policy2, bundle, byId)?.('ehr', 'TREAT')).toEqual({
      consent: 'c7',
      reason: 'label',
      code: 'HIV',
    });
    expect(restrictionCheck(policy2, { ...bundle, meta: {} }, byId)?.('ehr', 'TREAT')).toBeUndefined();
    expect(restrictionCheck(policy({ p3: [r({ recipients: new Set(['ehr']) })] }), bundle, byId)).toBeUndefined();
  });

  it('asks for the patient only when some restriction exists, and restricts nothing without a patient', () => {
    let asked = 0;
    expect(restrictionCheck(policy({}), labelled, () => (asked++, 'p1'))).toBeUndefined();
    expect(asked).toBe(0);
    expect(
      restrictionCheck(policy({ p1: [r({ recipients: new Set(['ehr']) })] }), labelled, () => undefined),
    ).toBeUndefined();
    expect(
      restrictionCheck(policy({ p1: [r({ recipients: new Set(['ehr']) })] }), labelled, () => 'p2'),
    ).toBeUndefined();
  });

  it('an unreadable restriction denies everything about its patient', () => {
    expect(
      restrictionCheck(policy({ p1: [denyAllRestriction('c9')] }), labelled, () => 'p1')?.('ehr', 'TREAT'),
    ).toEqual({ consent: 'c9', reason: 'unreadable' });
  });

  it('reads labels from the resource and its contained resources (v3-ActCode, or no system)', () => {
    const res = {
      resourceType: 'DiagnosticReport',
      id: 'd',
      contained: [{ resourceType: 'Observation', meta: { security: [{ code: 'HIV' }] } }],
      meta: {
        security: [
          { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'SUD' },
          { system: 'http://example.org/other', code: 'PSY' },
        ],
      },
    };
    expect([...securityLabels(res)].sort()).toEqual(['HIV', 'SUD']);
  });
});

describe('sealed consent values', () => {
  it('open only under the KV key they were sealed for, and hold no readable patient data', async () => {
    await initCrypto();
    const key = consentStoreKey({ pseudonymKey: new Uint8Array(32).fill(3) });
    const c = buildConsent({ ...base, denyLabels: ['PSY'], reason: 'Quillfeather asks' }, SERVICES, BY_REF);
    const sealed = sealConsentValue(key, 'pA.' + ID, c);
    expect(Buffer.from(sealed).toString('latin1')).not.toMatch(/zq-restrict|Quillfeather|Patient/);
    expect(openConsentValue(key, 'pA.' + ID, sealed)).toEqual(c);
    expect(thrown(() => openConsentValue(key, 'pB.' + ID, sealed)).code).toBe('E_DECRYPT');
  });
});
