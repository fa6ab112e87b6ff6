// Which patient a resource is about, under the catalog's canonical matching rule (subjects/patients.yaml,
// docs/patient-rights.md): the `Patient/<id>` reference, or `<system>|<value>` of the declared identifier
// system. Pure. The result is PHI: callers turn it into the keyed pseudonym (pseudonym.ts) at once and
// never log, store or send it in clear. One rule for every entry point: the broker (registry, restrictions,
// disclosures, audit), the operator CLI (`--patient` of registry, access, audit, consent, disclosures) and the
// Consent resources a restriction is stored as (`patientReference` writes what `resolvePatient` reads back).
import type { Reference } from 'fhir/r4.js';
import type { PatientMatchDef } from '../catalog/types.js';
import { BrokerError } from '../wire/errors.js';
import { extractPatientIdentifier, extractPatientRef, patientCompartmentTypes } from '../fhir/patient-ref.js';
import type { FhirResource } from '../fhir/resource.js';

export type PatientResolution =
  /** The canonical patient reference (PHI). */
  | { readonly kind: 'patient'; readonly ref: string }
  /** A Patient-compartment type whose patient does not resolve under the rule. */
  | { readonly kind: 'unresolved' }
  /** A type outside the Patient compartment (Organization, Practitioner …): not about a patient. */
  | { readonly kind: 'none' };

let compartment: ReadonlySet<string> | undefined;

export function resolvePatient(resource: FhirResource, rule: PatientMatchDef): PatientResolution {
  compartment ??= new Set(patientCompartmentTypes());
  if (!compartment.has(resource.resourceType)) return { kind: 'none' };
  const ref =
    rule.match === 'reference' ? extractPatientRef(resource) : extractPatientIdentifier(resource, rule.system);
  return ref === undefined ? { kind: 'unresolved' } : { kind: 'patient', ref };
}

const PATIENT_REF = /^Patient\/[A-Za-z0-9\-.]{1,64}$/;

/**
 * A patient reference given by a person (CLI `--patient`, an access request) in the rule's canonical form:
 * `Patient/<id>`, or for identifier matching `<system>|<value>` or the bare value. Throws E_PATIENT_UNRESOLVED
 * (the message never repeats the input, which is PHI).
 */
export function canonicalPatientRef(input: string, rule: PatientMatchDef): string {
  const s = input.trim();
  if (rule.match === 'reference') {
    if (PATIENT_REF.test(s)) return s;
    throw new BrokerError(
      'E_PATIENT_UNRESOLVED',
      'patient: expected Patient/<id> (the catalog matches patients by reference)',
      { path: 'patient' },
    );
  }
  // A literal reference names no identifier, and the broker keeps no id-to-identifier table: refused, not taken
  // for an identifier value that happens to look like one (it would key a restriction nothing ever matches).
  if (PATIENT_REF.test(s)) {
    throw new BrokerError(
      'E_PATIENT_UNRESOLVED',
      `patient: expected <value> or ${rule.system}|<value>, not Patient/<id> (the catalog matches patients by that identifier system)`,
      { path: 'patient' },
    );
  }
  const bar = s.indexOf('|');
  if (bar < 0 && s !== '') return `${rule.system}|${s}`;
  if (bar > 0 && s.slice(0, bar) === rule.system && s.length > bar + 1) return s;
  throw new BrokerError(
    'E_PATIENT_UNRESOLVED',
    `patient: expected <value> or ${rule.system}|<value> (the catalog matches patients by that identifier system)`,
    { path: 'patient' },
  );
}

/**
 * The FHIR R4 Reference that names a canonical patient (references.html): the literal `{ reference: 'Patient/<id>' }`,
 * or for `<system>|<value>` the logical reference `{ type: 'Patient', identifier: { system, value } }` — exactly
 * what `resolvePatient` resolves back to the same canonical form under the rule that produced it.
 */
export function patientReference(ref: string): Reference {
  if (ref.startsWith('Patient/')) return { reference: ref };
  const bar = ref.indexOf('|');
  if (bar <= 0 || bar === ref.length - 1)
    throw new TypeError('patientReference: expected Patient/<id> or <system>|<value>');
  return { type: 'Patient', identifier: { system: ref.slice(0, bar), value: ref.slice(bar + 1) } };
}
