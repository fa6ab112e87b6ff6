// A message's patients resolved once (pure): one pseudonym per distinct patient however many parts name it; the
// answers the restriction check, the accounting of disclosures, the registry plan and the audit trail read from it.
import { describe, expect, it } from 'vitest';
import type { PatientMatchDef } from '../../src/catalog/types.js';
import type { FhirResource } from '../../src/fhir/resource.js';
import { refuseUnresolved, resolveMessagePatients } from '../../src/registry/message-patients.js';
import { planRegistration } from '../../src/registry/recorder.js';
import { UNRESOLVED_KEY } from '../../src/registry/store.js';

const BY_REF: PatientMatchDef = { match: 'reference', unresolved: 'accept' };
const U1 = 'urn:uuid:11111111-1111-4111-8111-111111111111';

/** Counts its calls, so a test can say how many HMACs a message cost. */
function counting(): { readonly calls: string[]; readonly pseudonymOf: (ref: string) => string } {
  const calls: string[] = [];
  return { calls, pseudonymOf: (ref) => (calls.push(ref), `ps(${ref})`) };
}

const obs = (reference: string): FhirResource => ({
  resourceType: 'Observation',
  status: 'final',
  code: { text: 'pulse' },
  subject: { reference },
});

describe('resolveMessagePatients: a resource on its own', () => {
  it('its patient: reference, one pseudonym, the disclosure subject and the audit pseudonym', () => {
    const c = counting();
    const o = obs('Patient/p1');
    const m = resolveMessagePatients(o, BY_REF, c.pseudonymOf);
    expect(c.calls).toEqual(['Patient/p1']);
    expect(m.parts).toEqual([
      {
        type: 'Observation',
        path: 'Observation',
        resource: o,
        patient: { kind: 'patient', ref: 'Patient/p1', pseudonym: 'ps(Patient/p1)' },
      },
    ]);
    expect(m.pseudonymOf(o)).toBe('ps(Patient/p1)');
    expect(m.pseudonymOf(obs('Patient/p1'))).toBeUndefined(); // another object: not a part of this message
    expect(m.disclosed).toEqual(['ps(Patient/p1)']);
    expect(m.pseudonym).toBe('ps(Patient/p1)');
    expect(m.pseudonyms).toEqual([]);
  });

  it('unresolved and outside the compartment: no pseudonym computed, disclosed as unresolved', () => {
    const c = counting();
    const unresolved = resolveMessagePatients(
      { resourceType: 'Observation', status: 'final', code: { text: 'x' } },
      BY_REF,
      c.pseudonymOf,
    );
    expect(unresolved.parts.map((p) => p.patient)).toEqual([{ kind: 'unresolved' }]);
    expect(unresolved.disclosed).toEqual([undefined]);
    expect(unresolved.pseudonym).toBeUndefined();
    const org = resolveMessagePatients({ resourceType: 'Organization', name: 'Clinic' }, BY_REF, c.pseudonymOf);
    expect(org.parts.map((p) => p.patient)).toEqual([{ kind: 'none' }]);
    expect(c.calls).toEqual([]);
  });

  it('without a pseudonym function: resolved, but carries no pseudonym (and the registry plan refuses it as a caller mistake)', () => {
    const m = resolveMessagePatients(obs('Patient/p1'), BY_REF);
    expect(m.parts[0]?.patient).toEqual({ kind: 'patient', ref: 'Patient/p1', pseudonym: undefined });
    expect(m.pseudonym).toBeUndefined();
    expect(m.disclosed).toEqual([undefined]);
    expect(() => planRegistration({ messageId: 'm', sender: 's', type: 'Observation' }, m, BY_REF)).toThrow(TypeError);
  });
});

describe('resolveMessagePatients: a Bundle that travels whole', () => {
  const entries = [
    { fullUrl: U1, resource: { resourceType: 'Patient', id: 'p1' } },
    { resource: obs(U1) },
    { resource: obs('Patient/p1') },
    { resource: obs('Patient/p2') },
    { resource: obs('urn:uuid:99999999-9999-4999-8999-999999999999') },
    { resource: { resourceType: 'Organization', name: 'Clinic' } },
  ];
  const bundle: FhirResource = { resourceType: 'Bundle', type: 'collection', entry: entries };

  it('one pseudonym per distinct patient however many entries name it', () => {
    const c = counting();
    resolveMessagePatients(bundle, BY_REF, c.pseudonymOf);
    expect(c.calls).toEqual(['Patient/p1', 'Patient/p2']);
  });

  it('each entry answers its own patient; the Bundle itself and an entry outside the compartment none', () => {
    const m = resolveMessagePatients(bundle, BY_REF, counting().pseudonymOf);
    expect(entries.map((e) => m.pseudonymOf(e.resource as FhirResource))).toEqual([
      'ps(Patient/p1)',
      'ps(Patient/p1)',
      'ps(Patient/p1)',
      'ps(Patient/p2)',
      undefined,
      undefined,
    ]);
    expect(m.pseudonymOf(bundle)).toBeUndefined();
  });

  it('disclosed: each patient once, undefined for the unresolved entry; the audit trail gets the distinct pseudonyms', () => {
    const m = resolveMessagePatients(bundle, BY_REF, counting().pseudonymOf);
    expect(m.disclosed).toEqual(['ps(Patient/p1)', 'ps(Patient/p2)', undefined]);
    expect(m.pseudonym).toBeUndefined();
    expect(m.pseudonyms).toEqual(['ps(Patient/p1)', 'ps(Patient/p2)']);
    expect(planRegistration({ messageId: 'm', sender: 's', type: 'Bundle' }, m, BY_REF).records).toEqual([
      { key: 'ps(Patient/p1)', types: ['Patient', 'Observation'] },
      { key: 'ps(Patient/p2)', types: ['Observation'] },
      { key: UNRESOLVED_KEY, types: ['Observation'] },
    ]);
  });

  it('a Bundle with no entry about a patient discloses about no one and names no one', () => {
    const m = resolveMessagePatients(
      { resourceType: 'Bundle', type: 'collection', entry: [entries[5]] },
      BY_REF,
      counting().pseudonymOf,
    );
    expect(m.disclosed).toEqual([]);
    expect(m.pseudonyms).toEqual([]);
  });
});

describe("refuseUnresolved: the catalog's unresolved: reject, one rule for the pipeline and the registry plan", () => {
  const REJECT: PatientMatchDef = { match: 'reference', unresolved: 'reject' };
  const unresolvedObs: FhirResource = { resourceType: 'Observation', status: 'final', code: { text: 'x' } };

  it('refuses a part whose patient does not resolve only when the catalog says reject; a part outside the compartment never', () => {
    const m = resolveMessagePatients(unresolvedObs, REJECT, counting().pseudonymOf);
    expect(() => refuseUnresolved(m, BY_REF)).not.toThrow();
    const e = (() => {
      try {
        refuseUnresolved(m, REJECT);
      } catch (err) {
        return err as { code: string; path?: string; message: string };
      }
      throw new Error('expected E_PATIENT_UNRESOLVED');
    })();
    expect([e.code, e.path, e.message]).toEqual([
      'E_PATIENT_UNRESOLVED',
      undefined,
      "no patient resolves under the catalog's matching rule (match reference)",
    ]);
    // the registry plan states the same rule with the same error
    expect(() => planRegistration({ messageId: 'm', sender: 's', type: 'Observation' }, m, REJECT)).toThrow(e.message);
    expect(() =>
      refuseUnresolved(resolveMessagePatients({ resourceType: 'Organization', name: 'Clinic' }, REJECT), REJECT),
    ).not.toThrow();
    expect(() =>
      refuseUnresolved(resolveMessagePatients(obs('Patient/p1'), REJECT, counting().pseudonymOf), REJECT),
    ).not.toThrow();
  });
});
