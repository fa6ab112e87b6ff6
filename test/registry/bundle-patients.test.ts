// A Bundle registered entry by entry (pure): each entry's patient under the catalog's rule, resolved among the
// Bundle's own entries where the reference is a fullUrl (urn:uuid, as Synthea writes them); nested Bundles depth
// first; the plan groups entry types by patient, counts unresolved entries under `_unresolved`, or refuses the
// message naming the entry when the catalog says `unresolved: reject`.
import { describe, expect, it } from 'vitest';
import type { PatientMatchDef } from '../../src/catalog/types.js';
import type { FhirResource } from '../../src/fhir/resource.js';
import { patientParts } from '../../src/registry/bundle-patients.js';
import { resolveMessagePatients } from '../../src/registry/message-patients.js';
import { planRegistration } from '../../src/registry/recorder.js';
import { UNRESOLVED_KEY } from '../../src/registry/store.js';

const MRN = 'http://hospital.example.org/mrn';
const BY_REF: PatientMatchDef = { match: 'reference', unresolved: 'accept' };
const BY_MRN: PatientMatchDef = { match: 'identifier', system: MRN, unresolved: 'accept' };
const U1 = 'urn:uuid:11111111-1111-4111-8111-111111111111';
const U2 = 'urn:uuid:22222222-2222-4222-8222-222222222222';

const obs = (subject: object): object => ({
  resourceType: 'Observation',
  status: 'final',
  code: { text: 'pulse' },
  subject,
});
/** Two patients by urn:uuid (the first with an id, the second only its fullUrl), an Organization, a nested Bundle. */
const bundle: FhirResource = {
  resourceType: 'Bundle',
  type: 'collection',
  entry: [
    { fullUrl: U1, resource: { resourceType: 'Patient', id: 'p1', identifier: [{ system: MRN, value: 'M1' }] } },
    { fullUrl: U2, resource: { resourceType: 'Patient', identifier: [{ system: MRN, value: 'M2' }] } },
    {
      fullUrl: 'urn:uuid:33333333-3333-4333-8333-333333333333',
      resource: { resourceType: 'Organization', name: 'Clinic' },
    },
    { resource: obs({ reference: U1 }) },
    { resource: { resourceType: 'Condition', subject: { reference: U2 } } },
    { resource: obs({ reference: 'Patient/p1' }) },
    { resource: obs({ reference: 'urn:uuid:99999999-9999-4999-8999-999999999999' }) },
    {
      resource: {
        resourceType: 'Bundle',
        type: 'collection',
        entry: [{ resource: obs({ reference: 'Patient/p3' }) }, { resource: obs({ reference: U1 }) }],
      },
    },
  ],
};

const kinds = (rule: PatientMatchDef): [string, string, string][] =>
  patientParts(bundle, rule).map((p) => [
    p.path,
    p.type,
    p.resolution.kind === 'patient' ? p.resolution.ref : p.resolution.kind,
  ]);

describe('patientParts', () => {
  it('a resource on its own is one part', () => {
    const o = { resourceType: 'Observation', subject: { reference: 'Patient/p1' } };
    expect(patientParts(o, BY_REF)).toEqual([
      { type: 'Observation', path: 'Observation', resolution: { kind: 'patient', ref: 'Patient/p1' }, resource: o },
    ]);
  });

  it('match reference: each entry, urn:uuid references resolved to the Patient entry (its id, or the one its fullUrl implies)', () => {
    expect(kinds(BY_REF)).toEqual([
      ['Bundle.entry[0].resource', 'Patient', 'Patient/p1'],
      ['Bundle.entry[1].resource', 'Patient', 'Patient/22222222-2222-4222-8222-222222222222'],
      ['Bundle.entry[2].resource', 'Organization', 'none'],
      ['Bundle.entry[3].resource', 'Observation', 'Patient/p1'],
      ['Bundle.entry[4].resource', 'Condition', 'Patient/22222222-2222-4222-8222-222222222222'],
      ['Bundle.entry[5].resource', 'Observation', 'Patient/p1'],
      ['Bundle.entry[6].resource', 'Observation', 'unresolved'],
      // A nested Bundle's references resolve among its own entries only.
      ['Bundle.entry[7].resource.entry[0].resource', 'Observation', 'Patient/p3'],
      ['Bundle.entry[7].resource.entry[1].resource', 'Observation', 'unresolved'],
    ]);
  });

  it("match identifier: a reference to a Patient entry (fullUrl or Patient/<id>) resolves to that Patient's identifier", () => {
    expect(kinds(BY_MRN).map(([, , k]) => k)).toEqual([
      `${MRN}|M1`,
      `${MRN}|M2`,
      'none',
      `${MRN}|M1`,
      `${MRN}|M2`,
      `${MRN}|M1`,
      'unresolved',
      'unresolved',
      'unresolved',
    ]);
  });
});

describe('planRegistration', () => {
  const message = { messageId: 'm1', sender: 'registration', type: 'Bundle' };
  const pseudonym = (ref: string): string => `ps(${ref})`;
  const plan = (m: typeof message, resource: FhirResource, rule: PatientMatchDef) =>
    planRegistration(m, resolveMessagePatients(resource, rule, pseudonym), rule);

  it('one record per patient with the types of its entries; unresolved entries under _unresolved; no record for the Bundle', () => {
    expect(plan(message, bundle, BY_REF).records).toEqual([
      { key: 'ps(Patient/p1)', types: ['Patient', 'Observation'] },
      { key: 'ps(Patient/22222222-2222-4222-8222-222222222222)', types: ['Patient', 'Condition'] },
      { key: UNRESOLVED_KEY, types: ['Observation'] },
      { key: 'ps(Patient/p3)', types: ['Observation'] },
    ]);
    expect(plan(message, { resourceType: 'Bundle', type: 'collection' }, BY_REF).records).toEqual([]);
    expect(plan({ ...message, type: 'Organization' }, { resourceType: 'Organization' }, BY_REF).records).toEqual([]);
  });

  it('unresolved: reject refuses the message naming the first unresolved entry', () => {
    let caught: unknown;
    try {
      plan(message, bundle, { ...BY_REF, unresolved: 'reject' });
    } catch (e) {
      caught = e;
    }
    expect(caught).toMatchObject({
      code: 'E_PATIENT_UNRESOLVED',
      path: 'Bundle.entry[6].resource',
      message: "Bundle.entry[6].resource: no patient resolves under the catalog's matching rule (match reference)",
    });
    const resolvable: FhirResource = { ...bundle, entry: (bundle['entry'] as unknown[]).slice(0, 6) };
    expect(plan(message, resolvable, { ...BY_REF, unresolved: 'reject' }).records.map((r) => r.key)).toEqual([
      'ps(Patient/p1)',
      'ps(Patient/22222222-2222-4222-8222-222222222222)',
    ]);
  });
});
