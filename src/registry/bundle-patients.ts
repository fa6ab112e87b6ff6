// Which patients one published resource is about, part by part: a resource is one part; a FHIR R4 Bundle that
// travels whole (a collection, a document, a transaction sent with --whole, …) is one part per entry resource,
// depth first through nested Bundles — the Bundle itself is a container, about no patient of its own. Each entry
// resolves under the catalog's canonical rule (patient-key.ts) and, failing that, among the Bundle's own entries
// (http://hl7.org/fhir/R4/bundle.html#references): a compartment reference whose `reference` is the fullUrl of a
// Patient entry (`urn:uuid:…`, as Synthea writes them) or its `Patient/<id>` names that Patient entry, whose
// canonical form is `Patient/<id>` (the id, or the one its urn:uuid/urn:oid fullUrl implies, as src/fhir/bundle.ts
// assigns it when splitting) or, under `match: identifier`, its identifier of the declared system. A nested
// Bundle's references resolve among its own entries. Pure; the result is PHI (the registry pseudonymises it).
import type { PatientMatchDef } from '../catalog/types.js';
import { findInCompartment } from '../fhir/patient-ref.js';
import { hasResourceType, isJsonObject, type FhirResource } from '../fhir/resource.js';
import { resolvePatient, type PatientResolution } from './patient-key.js';

export interface PatientPart {
  /** The part's resource type (an entry's, for a Bundle). */
  readonly type: string;
  /** Where the part is: `Bundle.entry[2].resource`, or the resource type for a resource on its own. */
  readonly path: string;
  readonly resolution: PatientResolution;
  /** The part itself (the resource, or the entry's resource object inside the Bundle). */
  readonly resource: FhirResource;
}

/** One part per resource about (or possibly about) a patient; a Bundle's entries in order, nested ones depth first. */
export function patientParts(resource: FhirResource, rule: PatientMatchDef): PatientPart[] {
  if (resource.resourceType !== 'Bundle')
    return [
      {
        type: resource.resourceType,
        path: resource.resourceType,
        resolution: resolvePatient(resource, rule),
        resource,
      },
    ];
  const out: PatientPart[] = [];
  collect(resource, 'Bundle', rule, out);
  return out;
}

const URN = /^urn:(?:uuid|oid):([A-Za-z0-9\-.]{1,64})$/;
const ID = /^[A-Za-z0-9\-.]{1,64}$/;

function collect(bundle: FhirResource, path: string, rule: PatientMatchDef, out: PatientPart[]): void {
  const entries = Array.isArray(bundle['entry']) ? (bundle['entry'] as unknown[]) : [];
  const patients = patientEntries(entries, rule);
  entries.forEach((entry, i) => {
    const resource = isJsonObject(entry) ? entry['resource'] : undefined;
    if (!hasResourceType(resource)) return;
    const at = `${path}.entry[${i}].resource`;
    if (resource.resourceType === 'Bundle') {
      collect(resource, at, rule, out);
      return;
    }
    let resolution = resolvePatient(resource, rule);
    if (resolution.kind === 'unresolved') {
      const own =
        resource.resourceType === 'Patient'
          ? patients.get(fullUrlOf(entry))
          : findInCompartment(resource, (ref) => patients.get(ref['reference']));
      if (own !== undefined) resolution = { kind: 'patient', ref: own };
    }
    out.push({ type: resource.resourceType, path: at, resolution, resource });
  });
}

/** fullUrl and `Patient/<id>` of every Patient entry → its canonical patient under the rule. */
function patientEntries(entries: readonly unknown[], rule: PatientMatchDef): Map<unknown, string> {
  const map = new Map<unknown, string>();
  for (const entry of entries) {
    const resource = isJsonObject(entry) ? entry['resource'] : undefined;
    if (!hasResourceType(resource) || resource.resourceType !== 'Patient') continue;
    const fullUrl = fullUrlOf(entry);
    const id =
      typeof resource.id === 'string' && ID.test(resource.id)
        ? resource.id
        : typeof fullUrl === 'string'
          ? URN.exec(fullUrl)?.[1]
          : undefined;
    const found = resolvePatient(resource, rule);
    const ref =
      found.kind === 'patient'
        ? found.ref
        : rule.match === 'reference' && id !== undefined
          ? `Patient/${id}`
          : undefined;
    if (ref === undefined) continue;
    // The first entry claiming a fullUrl owns it (as src/fhir/bundle.ts decides).
    if (typeof fullUrl === 'string' && !map.has(fullUrl)) map.set(fullUrl, ref);
    if (id !== undefined && !map.has(`Patient/${id}`)) map.set(`Patient/${id}`, ref);
  }
  return map;
}

function fullUrlOf(entry: unknown): unknown {
  return isJsonObject(entry) ? entry['fullUrl'] : undefined;
}
