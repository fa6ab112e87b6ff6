// The answer must be about the patient asked (45 CFR 164.524 gives the individual *their* PHI; a resource about
// anyone else in the copy would be a disclosure of that person's PHI). Pure. Each resource of a service's answer
// is resolved under the catalog's canonical matching rule (src/registry/patient-key.ts resolvePatient, FHIR R4
// Patient compartment, http://hl7.org/fhir/R4/compartmentdefinition-patient.html):
//   - about a patient: it must be the patient asked, else E_ACCESS_OTHER_PATIENT;
//   - a Patient-compartment type whose patient does not resolve under the rule: E_PATIENT_UNRESOLVED — the broker
//     cannot show it is this patient's, and giving it to the individual could disclose someone else's PHI
//     (whatever the catalog's `unresolved` says for deliveries between services);
//   - a type outside the compartment (Organization, Practitioner, Location, Medication …): about no patient, kept —
//     it is the context of the patient's records in the designated record set (who wrote a note, which drug); a
//     Bundle among them (a document, say) is checked entry by entry, since its entries can be about patients.
// Errors name the entry by index and type only, never a value (not the other patient's reference).
import type { PatientMatchDef } from '../../catalog/types.js';
import { BrokerError } from '../../wire/errors.js';
import { hasResourceType, isJsonObject, type FhirResource } from '../../fhir/resource.js';
import { resolvePatient } from '../../registry/patient-key.js';

/**
 * Throws E_ACCESS_OTHER_PATIENT or E_PATIENT_UNRESOLVED for the first resource not shown to be about the patient.
 * `patientRef`: the canonical reference, or every form that names the patient (the canonical one and the answering
 * service's keyed pseudonym of it, which the broker's copies to that service carry: docs/patient-rights.md).
 */
export function checkAboutPatient(
  resources: readonly (FhirResource | undefined)[],
  patientRef: string | readonly string[],
  rule: PatientMatchDef,
  path = 'Bundle',
): void {
  const forms: readonly string[] = typeof patientRef === 'string' ? [patientRef] : patientRef;
  resources.forEach((resource, i) => {
    if (resource === undefined) return;
    const at = `${path}.entry[${i}].resource`;
    const type = resource.resourceType;
    const r = resolvePatient(resource, rule);
    if (r.kind === 'patient' && !forms.includes(r.ref)) {
      throw new BrokerError(
        'E_ACCESS_OTHER_PATIENT',
        `${at}: this ${type} is about another patient than the one asked`,
        { path: at },
      );
    }
    if (r.kind === 'unresolved') {
      throw new BrokerError(
        'E_PATIENT_UNRESOLVED',
        `${at}: no patient resolves for this ${type} under the catalog's matching rule (match ${rule.match}), so it cannot be shown to be about the patient asked`,
        { path: at },
      );
    }
    if (r.kind === 'none' && type === 'Bundle') checkAboutPatient(entriesOf(resource), forms, rule, at);
  });
}

/** A nested Bundle's entry resources, by entry index (undefined where an entry has none). */
function entriesOf(bundle: FhirResource): (FhirResource | undefined)[] {
  const entry = bundle['entry'];
  if (!Array.isArray(entry)) return [];
  return entry.map((e: unknown) => (isJsonObject(e) && hasResourceType(e['resource']) ? e['resource'] : undefined));
}
