// extractPatientRef: the Patient compartment reference of a resource (FHIR R4 CompartmentDefinition/patient).
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { extractPatientRef, patientCompartmentTypes } from '../../src/fhir/patient-ref.js';
import type { FhirResource } from '../../src/fhir/resource.js';
import { HAVE_EXAMPLES, readExample, SKIP_NOTE } from './examples.js';

const ref = (json: unknown): string | undefined => extractPatientRef(json as FhirResource);

describe('extractPatientRef on synthetic resources', () => {
  it('Patient → Patient/<id>; no id → undefined', () => {
    expect(ref({ resourceType: 'Patient', id: 'syn-zq-1' })).toBe('Patient/syn-zq-1');
    expect(ref({ resourceType: 'Patient' })).toBeUndefined();
  });

  it('Observation.subject, Encounter.subject, Claim.patient', () => {
    expect(ref({ resourceType: 'Observation', subject: { reference: 'Patient/p-1' } })).toBe('Patient/p-1');
    expect(ref({ resourceType: 'Encounter', subject: { reference: 'Patient/p-2' } })).toBe('Patient/p-2');
    expect(
      ref({
        resourceType: 'Claim',
        patient: { reference: 'Patient/p-3' },
        provider: { reference: 'Organization/o-1' },
      }),
    ).toBe('Patient/p-3');
  });

  it('Coverage: the beneficiary, not the policy holder or subscriber listed before it', () => {
    const coverage = {
      resourceType: 'Coverage',
      policyHolder: { reference: 'Patient/parent-1' },
      subscriber: { reference: 'Patient/parent-1' },
      beneficiary: { reference: 'Patient/child-7' },
    };
    expect(ref(coverage)).toBe('Patient/child-7');
  });

  it('falls back to later compartment elements and walks arrays (Appointment.participant.actor)', () => {
    const appt = {
      resourceType: 'Appointment',
      participant: [{ actor: { reference: 'Practitioner/d-1' } }, { actor: { reference: 'Patient/p-9' } }],
    };
    expect(ref(appt)).toBe('Patient/p-9');
    expect(
      ref({
        resourceType: 'Observation',
        subject: { reference: 'Group/g-1' },
        performer: [{ reference: 'Patient/p-4' }],
      }),
    ).toBe('Patient/p-4');
  });

  it('a version-specific reference yields the plain one', () => {
    expect(ref({ resourceType: 'Condition', subject: { reference: 'Patient/p-5/_history/3' } })).toBe('Patient/p-5');
  });

  it.each([
    ['Organization (not in the compartment)', { resourceType: 'Organization', id: 'o-1' }],
    ['Practitioner (not in the compartment)', { resourceType: 'Practitioner', id: 'd-1' }],
    ['a subject that is a Group', { resourceType: 'Observation', subject: { reference: 'Group/g-1' } }],
    ['a contained patient (#p1)', { resourceType: 'Observation', subject: { reference: '#p1' } }],
    [
      'an absolute URL (another server)',
      { resourceType: 'Observation', subject: { reference: 'https://other.example/fhir/Patient/p-1' } },
    ],
    [
      'an unresolved urn:uuid',
      { resourceType: 'Observation', subject: { reference: 'urn:uuid:0b8e5c6e-3d4f-4a8e-9f3c-2a1b0c9d8e7f' } },
    ],
    [
      'an identifier-only reference',
      { resourceType: 'Observation', subject: { type: 'Patient', identifier: { value: '999-41-7283' } } },
    ],
    ['a malformed Patient reference', { resourceType: 'Observation', subject: { reference: 'Patient/has space' } }],
  ])('undefined for %s', (_, resource) => {
    expect(ref(resource)).toBeUndefined();
  });

  it('the compartment table covers the 66 R4 resource types of the definition plus Patient', () => {
    const types = patientCompartmentTypes();
    expect(types).toHaveLength(67);
    for (const t of ['Patient', 'Observation', 'Coverage', 'Claim', 'ExplanationOfBenefit', 'Encounter', 'AuditEvent'])
      expect(types).toContain(t);
    expect(types).not.toContain('Organization');
  });

  it('the committed table says where it came from', () => {
    const table = JSON.parse(
      readFileSync(new URL('../../src/fhir/patient-compartment.json', import.meta.url), 'utf8'),
    ) as { source: string; resources: Record<string, string[]> };
    expect(table.source).toMatch(/^http:\/\/hl7\.org\/fhir\/CompartmentDefinition\/patient 4\.0\.1 /);
    expect(table.resources['Coverage']).toEqual(['beneficiary', 'policyHolder', 'subscriber', 'payor']);
  });
});

describe.skipIf(!HAVE_EXAMPLES)(`extractPatientRef on the hl7 examples${SKIP_NOTE}`, () => {
  it.each([
    ['patient-example.json', 'Patient/example'],
    ['observation-example-f001-glucose.json', 'Patient/f001'],
    ['coverage-example.json', 'Patient/4'],
    ['encounter-example-f203-20130311.json', 'Patient/f201'],
    ['condition-example-f201-fever.json', 'Patient/f201'],
    ['consent-example-notThis.json', 'Patient/f001'],
    ['auditevent-example-disclosure.json', 'Patient/example'],
    ['observation-example-1minute-apgar-score.json', undefined], // subject is the contained #newborn
    ['organization-example-f001-burgers.json', undefined],
    ['practitioner-example.json', undefined],
  ])('%s → %s', (file, expected) => {
    expect(ref(readExample(`hl7/${file}`))).toBe(expected);
  });
});
