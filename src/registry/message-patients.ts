// Which patients one message is about, resolved once per message under the catalog's canonical rule
// (patient-key.ts; a FHIR R4 Bundle that travels whole entry by entry, bundle-patients.ts), each distinct patient
// pseudonymised once (pseudonym.ts: HMAC-SHA256, RFC 2104). Every consumer of the answer reads this one result:
// the catalog's `unresolved: reject` (decided here, before any copy is sealed), the restriction check (45 CFR
// 164.522), the accounting of disclosures (164.528), the registry plan (recorder.ts) and the audit facts (which carry
// the pseudonyms, never a reference) — so they can never disagree about the patient, and the per-message path
// computes one resolution and one HMAC per patient instead of one per consumer. Pure; the references are PHI (in
// memory only).
import type { PatientMatchDef } from '../catalog/types.js';
import { BrokerError } from '../wire/errors.js';
import type { FhirResource } from '../fhir/resource.js';
import { patientParts } from './bundle-patients.js';

/** A part's patient: its canonical reference (PHI) and the broker's pseudonym of it (absent when none was asked for). */
export type PartPatient =
  | { readonly kind: 'patient'; readonly ref: string; readonly pseudonym: string | undefined }
  | { readonly kind: 'unresolved' }
  | { readonly kind: 'none' };

export interface MessagePart {
  /** The part's resource type (an entry's, for a Bundle). */
  readonly type: string;
  /** `Bundle.entry[2].resource`, or the resource type for a resource on its own. */
  readonly path: string;
  readonly resource: FhirResource;
  readonly patient: PartPatient;
}

export interface MessagePatients {
  /** One part per resource about (or possibly about) a patient, in the order of bundle-patients.ts. */
  readonly parts: readonly MessagePart[];
  /** The pseudonym of the patient of `r`, the resource itself or an entry of a whole Bundle; undefined when none resolves. */
  pseudonymOf(r: FhirResource): string | undefined;
  /**
   * Whom a delivery of the message is about, for the accounting of disclosures: a resource on its own, its patient
   * (undefined: unresolved or outside the compartment); a whole Bundle, each distinct entry patient once, undefined
   * standing for entries that did not resolve (empty: no entry about a patient).
   */
  readonly disclosed: readonly (string | undefined)[];
  /** The pseudonym of the patient of a resource on its own (never of a Bundle), for the audit trail. */
  readonly pseudonym: string | undefined;
  /** For a whole Bundle: the pseudonyms of its entries' distinct patients, for the audit trail (empty otherwise). */
  readonly pseudonyms: readonly string[];
}

/**
 * Resolves every part once and pseudonymises each distinct patient once with `pseudonymOf` (without it, parts carry
 * no pseudonym: nothing can be restricted or keyed — what a test of the pure pipeline may want).
 */
export function resolveMessagePatients(
  resource: FhirResource,
  rule: PatientMatchDef,
  pseudonymOf?: (ref: string) => string,
): MessagePatients {
  const bundle = resource.resourceType === 'Bundle';
  const tokens = new Map<string, string | undefined>();
  const parts: MessagePart[] = [];
  for (const p of patientParts(resource, rule)) {
    const r = p.resolution;
    let patient: PartPatient;
    if (r.kind === 'patient') {
      let token = tokens.get(r.ref);
      if (token === undefined && !tokens.has(r.ref)) tokens.set(r.ref, (token = pseudonymOf?.(r.ref)));
      patient = { kind: 'patient', ref: r.ref, pseudonym: token };
    } else {
      patient = r;
    }
    parts.push({ type: p.type, path: p.path, resource: p.resource, patient });
  }
  if (!bundle) {
    const only = parts[0]?.patient;
    const own = only?.kind === 'patient' ? only : undefined;
    return {
      parts,
      pseudonymOf: (r) => (r === resource ? own?.pseudonym : undefined),
      disclosed: [own?.pseudonym],
      pseudonym: own?.pseudonym,
      pseudonyms: [],
    };
  }
  const byResource = new Map<FhirResource, string | undefined>();
  const disclosed = new Set<string | undefined>();
  for (const part of parts) {
    if (part.patient.kind === 'none') continue;
    const token = part.patient.kind === 'patient' ? part.patient.pseudonym : undefined;
    byResource.set(part.resource, token);
    disclosed.add(token);
  }
  const pseudonyms: string[] = [];
  for (const token of tokens.values()) if (token !== undefined) pseudonyms.push(token);
  return { parts, pseudonymOf: (r) => byResource.get(r), disclosed: [...disclosed], pseudonym: undefined, pseudonyms };
}

/**
 * The catalog's `unresolved: reject` (subjects/patients.yaml): E_PATIENT_UNRESOLVED for the first part whose patient
 * does not resolve, naming the entry of a Bundle (the path). Called by routeMessage before any subscriber's copy is
 * projected or sealed, and by the registry plan, which states the same rule.
 */
export function refuseUnresolved(patients: MessagePatients, rule: PatientMatchDef): void {
  if (rule.unresolved !== 'reject') return;
  for (const part of patients.parts) {
    if (part.patient.kind !== 'unresolved') continue;
    const inBundle = part.path !== part.type; // a Bundle entry's path, `Bundle.entry[i].resource`
    throw new BrokerError(
      'E_PATIENT_UNRESOLVED',
      `${inBundle ? `${part.path}: ` : ''}no patient resolves under the catalog's matching rule (match ${rule.match})`,
      inBundle ? { path: part.path } : undefined,
    );
  }
}
