// Which patient a resource is about, under the catalog's canonical matching rule (subjects/patients.yaml,
// docs/patient-rights.md): the `Patient/<id>` reference, or `<system>|<value>` of the declared identifier
// system. Pure. The result is PHI: callers turn it into the keyed pseudonym (pseudonym.ts) at once and
// never log, store or send it in clear.
import type { PatientMatchDef } from '../catalog/types.js';
import { BrokerError } from '../errors.js';
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
  const ref = rule.match === 'reference' ? extractPatientRef(resource) : extractPatientIdentifier(resource, rule.system);
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
    throw new BrokerError('E_PATIENT_UNRESOLVED', "patient: expected Patient/<id> (the catalog matches patients by reference)", { path: 'patient' });
  }
  const bar = s.indexOf('|');
  if (bar < 0 && s !== '') return `${rule.system}|${s}`;
  if (bar > 0 && s.slice(0, bar) === rule.system && s.length > bar + 1) return s;
  throw new BrokerError('E_PATIENT_UNRESOLVED', `patient: expected <value> or ${rule.system}|<value> (the catalog matches patients by that identifier system)`, { path: 'patient' });
}
