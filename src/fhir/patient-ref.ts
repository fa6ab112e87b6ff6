// The patient a resource is about, as a `Patient/<id>` reference: the key of the patient-to-service
// registry and of patient-rights look-ups. Follows the FHIR R4 Patient compartment definition
// (http://hl7.org/fhir/R4/compartmentdefinition-patient.html), whose search parameters are turned into
// element paths by scripts/gen-patient-compartment.mjs (src/fhir/patient-compartment.json).
import { readFileSync } from 'node:fs';
import type { FhirResource } from './resource.js';
import { isJsonObject } from './resource.js';

interface CompartmentTable {
  readonly source: string;
  /** Resource type → element paths (dotted, relative to the resource), most specific first. */
  readonly resources: Readonly<Record<string, readonly string[]>>;
}

let compiled: ReadonlyMap<string, readonly (readonly string[])[]> | undefined;

/** Resource type → element paths split into names; loaded once per process. */
function compartmentPaths(): ReadonlyMap<string, readonly (readonly string[])[]> {
  if (compiled === undefined) {
    const table = JSON.parse(
      readFileSync(new URL('./patient-compartment.json', import.meta.url), 'utf8'),
    ) as CompartmentTable;
    compiled = new Map(Object.entries(table.resources).map(([type, paths]) => [type, paths.map((p) => p.split('.'))]));
  }
  return compiled;
}

/** Resource types that can belong to a patient's compartment (Patient included). */
export function patientCompartmentTypes(): readonly string[] {
  return [...compartmentPaths().keys()];
}

// A relative literal reference to a Patient on this server, optionally version-specific (FHIR R4
// references.html#literal). Absolute URLs name a patient on another server and are not this patient.
const PATIENT_REF = /^Patient\/([A-Za-z0-9\-.]{1,64})(?:\/_history\/[A-Za-z0-9\-.]{1,64})?$/;
const ID = /^[A-Za-z0-9\-.]{1,64}$/;

/**
 * `Patient/<id>` for a Patient with an id; otherwise the first `Patient/<id>` reference found in the
 * resource's compartment elements, in the table's order (for Coverage: beneficiary before policyHolder,
 * subscriber, payor). Undefined when the resource type is not in the compartment, or no such element
 * holds a relative Patient reference (a contained `#p1`, an absolute URL, a `urn:uuid:` that no bundle
 * split resolved, an identifier-only reference). A version-specific reference yields the plain one.
 */
export function extractPatientRef(resource: FhirResource): string | undefined {
  if (resource.resourceType === 'Patient') {
    const id = resource.id;
    return typeof id === 'string' && ID.test(id) ? `Patient/${id}` : undefined;
  }
  return findInCompartment(resource, (ref) => {
    const r = ref['reference'];
    const id = typeof r === 'string' ? PATIENT_REF.exec(r)?.[1] : undefined;
    return id === undefined ? undefined : `Patient/${id}`;
  });
}

/**
 * `<system>|<value>` (the FHIR token form) of the patient identifier of `system`: from Patient.identifier for a
 * Patient, otherwise from the `identifier` of the first compartment reference that carries one of that system
 * (a logical reference, http://hl7.org/fhir/R4/references.html#logical), in the table's order. A reference whose
 * `type` names another resource type is not a patient. Undefined when none does.
 */
export function extractPatientIdentifier(resource: FhirResource, system: string): string | undefined {
  if (resource.resourceType === 'Patient') {
    const ids = (resource as { identifier?: unknown }).identifier;
    return Array.isArray(ids) ? ids.map((i) => tokenOf(i, system)).find((t) => t !== undefined) : undefined;
  }
  return findInCompartment(resource, (ref) => {
    const type = ref['type'];
    if (type !== undefined && type !== 'Patient') return undefined;
    return tokenOf(ref['identifier'], system);
  });
}

function tokenOf(identifier: unknown, system: string): string | undefined {
  if (!isJsonObject(identifier) || identifier['system'] !== system) return undefined;
  const value = identifier['value'];
  return typeof value === 'string' && value !== '' ? `${system}|${value}` : undefined;
}

/**
 * The first value `pick` finds in a Reference at one of the type's compartment paths, in the table's order
 * (also used to resolve a Bundle entry's patient among the Bundle's own entries: src/registry/bundle-patients.ts).
 */
export function findInCompartment(
  resource: FhirResource,
  pick: (ref: Readonly<Record<string, unknown>>) => string | undefined,
): string | undefined {
  const paths = compartmentPaths().get(resource.resourceType);
  if (paths === undefined) return undefined;
  for (const path of paths) {
    const found = findReference(resource, path, 0, pick);
    if (found !== undefined) return found;
  }
  return undefined;
}

function findReference(
  node: unknown,
  path: readonly string[],
  at: number,
  pick: (ref: Readonly<Record<string, unknown>>) => string | undefined,
): string | undefined {
  if (Array.isArray(node)) {
    for (const item of node) {
      const found = findReference(item, path, at, pick);
      if (found !== undefined) return found;
    }
    return undefined;
  }
  if (!isJsonObject(node)) return undefined;
  const name = path[at];
  if (name === undefined) return pick(node);
  return findReference(node[name], path, at + 1, pick);
}
