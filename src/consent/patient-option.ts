// The patient a restriction or an accounting is about, as given by an operator: the canonical relative reference
// `Patient/<id>` (FHIR R4 references.html#literal) that extractPatientRef produces for every resource, so the
// broker's keyed pseudonym of it matches the one computed in the pipeline. The value is PHI: an error names
// the option, never the value.
import { BrokerError } from '../errors.js';

const PATIENT_REF = /^Patient\/[A-Za-z0-9\-.]{1,64}$/;

export function isPatientRef(value: string): boolean {
  return PATIENT_REF.test(value);
}

/** `Patient/<id>`, or E_CONSENT_INVALID naming `option`. */
export function patientRefOption(value: string, option = '--patient'): string {
  if (!PATIENT_REF.test(value)) throw new BrokerError('E_CONSENT_INVALID', `${option}: expected a patient reference Patient/<id>`, { path: option });
  return value;
}
