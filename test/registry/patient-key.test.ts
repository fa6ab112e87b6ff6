// The canonical patient of a resource under each catalog rule, and a person's --patient argument in canonical form.
import { describe, expect, it } from 'vitest';
import type { PatientMatchDef } from '../../src/catalog/types.js';
import { canonicalPatientRef, patientReference, resolvePatient } from '../../src/registry/patient-key.js';

const BY_REF: PatientMatchDef = { match: 'reference', unresolved: 'accept' };
const MRN = 'http://hospital.example.org/mrn';
const BY_MRN: PatientMatchDef = { match: 'identifier', system: MRN, unresolved: 'reject' };

describe('resolvePatient', () => {
  it('by reference: Patient.id, the compartment reference, unresolved, or not patient data', () => {
    expect(resolvePatient({ resourceType: 'Patient', id: 'p1' }, BY_REF)).toEqual({
      kind: 'patient',
      ref: 'Patient/p1',
    });
    expect(
      resolvePatient({ resourceType: 'Observation', subject: { reference: 'Patient/p2/_history/3' } }, BY_REF),
    ).toEqual({ kind: 'patient', ref: 'Patient/p2' });
    expect(resolvePatient({ resourceType: 'Observation', subject: { reference: 'Group/g1' } }, BY_REF)).toEqual({
      kind: 'unresolved',
    });
    expect(resolvePatient({ resourceType: 'Organization', id: 'o1' }, BY_REF)).toEqual({ kind: 'none' });
  });

  it('by identifier: the Patient identifier of the system, or the logical reference carrying one', () => {
    const patient = {
      resourceType: 'Patient',
      id: 'p1',
      identifier: [
        { system: 'urn:other', value: 'X' },
        { system: MRN, value: 'MRN-1' },
      ],
    };
    expect(resolvePatient(patient, BY_MRN)).toEqual({ kind: 'patient', ref: `${MRN}|MRN-1` });
    expect(
      resolvePatient(
        {
          resourceType: 'Condition',
          subject: { reference: 'Patient/p1', identifier: { system: MRN, value: 'MRN-1' } },
        },
        BY_MRN,
      ),
    ).toEqual({ kind: 'patient', ref: `${MRN}|MRN-1` });
    // A literal reference alone names no MRN; a reference typed as another resource is no patient.
    expect(resolvePatient({ resourceType: 'Condition', subject: { reference: 'Patient/p1' } }, BY_MRN)).toEqual({
      kind: 'unresolved',
    });
    expect(
      resolvePatient(
        { resourceType: 'Condition', subject: { type: 'Group', identifier: { system: MRN, value: 'MRN-1' } } },
        BY_MRN,
      ),
    ).toEqual({ kind: 'unresolved' });
  });
});

describe('canonicalPatientRef', () => {
  it('accepts the canonical forms', () => {
    expect(canonicalPatientRef(' Patient/p1 ', BY_REF)).toBe('Patient/p1');
    expect(canonicalPatientRef('MRN-1', BY_MRN)).toBe(`${MRN}|MRN-1`);
    expect(canonicalPatientRef(`${MRN}|MRN-1`, BY_MRN)).toBe(`${MRN}|MRN-1`);
  });

  it('refuses anything else with E_PATIENT_UNRESOLVED, never repeating the input', () => {
    // Patient/<id> under the identifier rule is refused, not taken for an identifier value.
    for (const [input, rule] of [
      ['Zephyrine', BY_REF],
      ['Patient/Zephyrine Q', BY_REF],
      ['urn:other|Zephyrine', BY_MRN],
      ['', BY_MRN],
      ['Patient/Zephyrine', BY_MRN],
    ] as const) {
      let caught: unknown;
      try {
        canonicalPatientRef(input, rule);
      } catch (e) {
        caught = e;
      }
      expect(caught).toMatchObject({ code: 'E_PATIENT_UNRESOLVED', path: 'patient' });
      expect(String((caught as Error).message)).not.toContain('Zephyrine');
    }
  });
});

describe('patientReference', () => {
  it('names the canonical patient as a literal or a logical reference that resolves back under its rule', () => {
    expect(patientReference('Patient/p1')).toEqual({ reference: 'Patient/p1' });
    expect(patientReference(`${MRN}|MRN-1`)).toEqual({ type: 'Patient', identifier: { system: MRN, value: 'MRN-1' } });
    expect(resolvePatient({ resourceType: 'Consent', patient: patientReference('Patient/p1') }, BY_REF)).toEqual({
      kind: 'patient',
      ref: 'Patient/p1',
    });
    expect(resolvePatient({ resourceType: 'Consent', patient: patientReference(`${MRN}|a|b`) }, BY_MRN)).toEqual({
      kind: 'patient',
      ref: `${MRN}|a|b`,
    });
    expect(() => patientReference('MRN-1')).toThrow(TypeError);
  });
});
