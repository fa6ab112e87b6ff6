// The answer must be about the patient asked (pure): every resource resolves, under the catalog's canonical
// rule, to that patient or to none (Organization, Practitioner … kept); one about another patient, or a
// Patient-compartment resource that resolves to nobody, refuses the answer naming the entry, never a value.
import { describe, expect, it } from 'vitest';
import { checkAboutPatient } from '../../../src/access/desk/about-patient.js';
import { DEFAULT_PATIENT_MATCH, type PatientMatchDef } from '../../../src/catalog/types.js';
import type { FhirResource } from '../../../src/fhir/resource.js';

const ME = 'Patient/Zq7731Papa';
const OTHER = 'Patient/Zq7731Quebec';
const MRN = 'http://hospital.example.org/mrn';
const BY_MRN: PatientMatchDef = { match: 'identifier', system: MRN, unresolved: 'accept' };

const obs = (subject: unknown, id = 'o1'): FhirResource => ({
  resourceType: 'Observation',
  id,
  status: 'final',
  code: { text: 'pulse' },
  subject,
});

function refusal(
  resources: FhirResource[],
  ref = ME,
  rule: PatientMatchDef = DEFAULT_PATIENT_MATCH,
): { code?: string; path?: string; message?: string } | undefined {
  try {
    checkAboutPatient(resources, ref, rule);
    return undefined;
  } catch (e) {
    return e as { code: string; path: string; message: string };
  }
}

describe('checkAboutPatient', () => {
  it('accepts resources about the patient asked and resources about no patient', () => {
    const organization: FhirResource = { resourceType: 'Organization', id: 'org1', name: 'Clinic' };
    const practitioner: FhirResource = { resourceType: 'Practitioner', id: 'pr1' };
    expect(
      refusal([
        { resourceType: 'Patient', id: 'Zq7731Papa' },
        obs({ reference: ME }),
        obs({ reference: `${ME}/_history/2` }, 'o2'),
        organization,
        practitioner,
      ]),
    ).toBeUndefined();
    expect(refusal([])).toBeUndefined();
  });

  it('refuses a resource about another patient with E_ACCESS_OTHER_PATIENT, naming the entry and the type only', () => {
    const e = refusal([
      obs({ reference: ME }),
      { resourceType: 'Organization', id: 'org1' },
      obs({ reference: OTHER }, 'o3'),
    ]);
    expect(e).toMatchObject({
      code: 'E_ACCESS_OTHER_PATIENT',
      path: 'Bundle.entry[2].resource',
      message: 'Bundle.entry[2].resource: this Observation is about another patient than the one asked',
    });
    expect(refusal([{ resourceType: 'Patient', id: 'Zq7731Quebec' }])).toMatchObject({
      code: 'E_ACCESS_OTHER_PATIENT',
      path: 'Bundle.entry[0].resource',
    });
    expect(JSON.stringify(e)).not.toContain('Zq7731');
  });

  it('refuses a Patient-compartment resource that resolves to no patient with E_PATIENT_UNRESOLVED', () => {
    expect(refusal([obs({ reference: 'Group/g1' })])).toMatchObject({
      code: 'E_PATIENT_UNRESOLVED',
      path: 'Bundle.entry[0].resource',
    });
    expect(refusal([obs(undefined)])).toMatchObject({ code: 'E_PATIENT_UNRESOLVED' });
  });

  it('checks the entries of a nested Bundle (a document among the answer), by their path', () => {
    const doc: FhirResource = {
      resourceType: 'Bundle',
      id: 'd1',
      type: 'document',
      entry: [
        { resource: { resourceType: 'Organization', id: 'x' } },
        { fullUrl: 'urn:uuid:1' },
        { resource: obs({ reference: OTHER }) },
      ],
    };
    expect(refusal([obs({ reference: ME }), doc])).toMatchObject({
      code: 'E_ACCESS_OTHER_PATIENT',
      path: 'Bundle.entry[1].resource.entry[2].resource',
    });
    const mine: FhirResource = { ...doc, entry: [{ resource: obs({ reference: ME }) }] };
    expect(refusal([mine])).toBeUndefined();
  });

  it('follows the identifier rule when the catalog matches by identifier', () => {
    const me = `${MRN}|Zq7731Papa`;
    const byMrn = (value: string): FhirResource => obs({ identifier: { system: MRN, value } });
    expect(
      refusal(
        [
          byMrn('Zq7731Papa'),
          { resourceType: 'Patient', id: 'local-1', identifier: [{ system: MRN, value: 'Zq7731Papa' }] },
        ],
        me,
        BY_MRN,
      ),
    ).toBeUndefined();
    expect(refusal([byMrn('Zq7731Papa'), byMrn('Zq7731Quebec')], me, BY_MRN)).toMatchObject({
      code: 'E_ACCESS_OTHER_PATIENT',
      path: 'Bundle.entry[1].resource',
    });
    // A literal reference alone does not resolve under the identifier rule.
    expect(refusal([obs({ reference: ME })], me, BY_MRN)).toMatchObject({
      code: 'E_PATIENT_UNRESOLVED',
      path: 'Bundle.entry[0].resource',
    });
  });
});
