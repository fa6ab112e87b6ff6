// The restriction decision for one delivery (45 CFR 164.522(a)): pure, over the broker's in-memory view of the
// patient's active restrictions. A delivery is stopped when a restriction of the resource's patient denies its
// recipient, its purpose of use (the catalog route's, exact code: v3-ActReason specialisations such as ETREAT are
// not implied by TREAT — emergency treatment is the case 164.522(a)(1)(iii) leaves open), or a sensitivity label
// the resource carries. Labels are read from meta.security of the resource and of its contained resources
// (FHIR R4 security-labels.html: labels are resource-level; R4 has no standard element-level label, so a
// labelled resource is withheld whole rather than guessed apart). A label without a system counts as v3-ActCode
// (withholding on doubt). A Bundle that travels whole is checked for each entry's patient. Resources with no
// patient (extractPatientRef) are never restricted.
import type { FhirResource } from '../fhir/resource.js';
import { isJsonObject } from '../fhir/resource.js';
import { LABEL_SYSTEM } from './codes.js';
import type { Restriction } from './consent.js';

export interface Denial {
  /** The Consent that stopped the delivery. */
  readonly consent: string;
  readonly reason: 'recipient' | 'purpose' | 'label' | 'unreadable';
  /** The denied purpose or label code (the recipient is the delivery's own service). */
  readonly code?: string;
}

/** What the pipeline asks of the restriction view (src/consent/view.ts). */
export interface RestrictionPolicy {
  /** False while no restriction is active anywhere: the pipeline then skips the patient look-up entirely. */
  hasAny(): boolean;
  /** The patient's active restrictions, keyed by the broker's patient pseudonym. */
  restrictionsOf(patient: string): Iterable<Restriction> | undefined;
}

export type RestrictionCheck = (service: string, purpose: string) => Denial | undefined;

/**
 * The check for one resource, or undefined when nothing can be denied (no restriction at all, no patient, or none
 * for its patients). A Bundle that travels whole is checked entry by entry (nested Bundles too): a restriction of
 * any entry's patient applies to the whole Bundle, with the labels of that entry and of the Bundle itself.
 * `patientOf` is called only when some restriction exists.
 */
export function restrictionCheck(
  policy: RestrictionPolicy,
  resource: FhirResource,
  patientOf: (r: FhirResource) => string | undefined,
): RestrictionCheck | undefined {
  if (!policy.hasAny()) return undefined;
  const parts: { readonly restrictions: readonly Restriction[]; readonly resource: FhirResource }[] = [];
  for (const r of resourcesIn(resource)) {
    const patient = patientOf(r);
    const restrictions = patient === undefined ? undefined : policy.restrictionsOf(patient);
    const list = restrictions === undefined ? [] : [...restrictions];
    if (list.length > 0) parts.push({ restrictions: list, resource: r });
  }
  if (parts.length === 0) return undefined;
  const rootLabels = securityLabels(resource);
  const labelsOf = new Map<FhirResource, ReadonlySet<string>>();
  const labels = (r: FhirResource): ReadonlySet<string> => {
    let l = labelsOf.get(r);
    if (l === undefined) {
      l = r === resource ? rootLabels : new Set([...rootLabels, ...securityLabels(r)]);
      labelsOf.set(r, l);
    }
    return l;
  };
  return (service, purpose) => {
    for (const part of parts) {
      for (const r of part.restrictions) {
        if (r.all) return { consent: r.id, reason: 'unreadable' };
        if (r.recipients.has(service)) return { consent: r.id, reason: 'recipient' };
        if (r.purposes.has(purpose)) return { consent: r.id, reason: 'purpose', code: purpose };
        if (r.labels.size > 0)
          for (const l of labels(part.resource))
            if (r.labels.has(l)) return { consent: r.id, reason: 'label', code: l };
      }
    }
    return undefined;
  };
}

/** The resource and, for a Bundle, every entry's resource (depth first). */
function resourcesIn(resource: FhirResource): FhirResource[] {
  const out: FhirResource[] = [resource];
  if (resource.resourceType !== 'Bundle' || !Array.isArray(resource['entry'])) return out;
  for (const e of resource['entry']) {
    const r = isJsonObject(e) ? e['resource'] : undefined;
    if (isJsonObject(r) && typeof r['resourceType'] === 'string') out.push(...resourcesIn(r as FhirResource));
  }
  return out;
}

/** v3-ActCode label codes in meta.security of the resource and of its contained resources. */
export function securityLabels(resource: FhirResource): ReadonlySet<string> {
  const out = new Set<string>();
  const collect = (r: unknown): void => {
    if (!isJsonObject(r) || !isJsonObject(r['meta'])) return;
    const security = r['meta']['security'];
    if (!Array.isArray(security)) return;
    for (const c of security) {
      if (!isJsonObject(c) || typeof c['code'] !== 'string') continue;
      if (c['system'] === undefined || c['system'] === LABEL_SYSTEM) out.add(c['code']);
    }
  };
  collect(resource);
  const contained = resource['contained'];
  if (Array.isArray(contained)) for (const c of contained) collect(c);
  return out;
}
