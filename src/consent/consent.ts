// A patient restriction (45 CFR 164.522(a)) as a FHIR R4 Consent (http://hl7.org/fhir/R4/consent.html): scope
// patient-privacy, policyRule hipaa-restrictions, and a base `permit` provision (what the catalog routes) with one
// nested `deny` provision per kind of denial — recipients (provision.actor, role IRCP), purposes of use
// (provision.purpose, v3-ActReason) and sensitivity labels (provision.securityLabel, v3-ActCode). Repeats inside
// one element are alternatives and nested provisions are exceptions to the base, so the Consent says exactly
// what the broker enforces: a delivery is stopped when ANY denial matches. Revoking sets status `inactive` and
// provision.period.end (the Consent stays, with its history, as evidence). Consent.patient names the patient under the catalog's
// canonical rule (src/registry/patient-key.ts): a literal `Patient/<id>` for `match: reference`, a logical
// reference by identifier (`{ type: Patient, identifier: { system, value } }`) for `match: identifier` — so the
// Consent resolves, as any resource in the Patient compartment does, to the patient the broker keys it under.
// Pure: building, reading and revoking; I/O is store.ts.
import type { Coding, Consent, ConsentProvision } from 'fhir/r4.js';
import type { PatientMatchDef } from '../catalog/types.js';
import { BrokerError } from '../wire/errors.js';
import type { FhirResource } from '../fhir/resource.js';
import { DEFAULT_VALIDATION_LIMITS, validateResource } from '../fhir/validate.js';
import {
  CONSENT_CATEGORY,
  CONSENT_POLICY,
  CONSENT_SCOPE,
  LABEL_SYSTEM,
  PURPOSE_SYSTEM,
  RECIPIENT_ROLE,
  SENSITIVITY_LABELS,
  SERVICE_SYSTEM,
  isPurposeOfUse,
  isSensitivityLabel,
} from './codes.js';
import { canonicalPatientRef, patientReference, resolvePatient } from '../registry/patient-key.js';

export interface RestrictionRequest {
  /** The Consent's logical id (a UUID). */
  readonly id: string;
  /** The patient as an operator gives it: canonicalised under the catalog's rule. */
  readonly patient: string;
  readonly denyRecipients: readonly string[];
  readonly denyPurposes: readonly string[];
  readonly denyLabels: readonly string[];
  /** The patient's stated reason, kept in the Consent's narrative (sealed with the rest). */
  readonly reason?: string;
  /** When the restriction was agreed (ms since epoch): Consent.dateTime. */
  readonly at: number;
}

/** What the broker enforces for one Consent: its id and what it denies (no patient data). */
export interface Restriction {
  readonly id: string;
  readonly active: boolean;
  readonly recipients: ReadonlySet<string>;
  readonly purposes: ReadonlySet<string>;
  readonly labels: ReadonlySet<string>;
  /** A stored restriction the broker could not read: it denies every delivery about that patient (fail closed). */
  readonly all: boolean;
}

const CONSENT_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export function isConsentId(id: string): boolean {
  return CONSENT_ID.test(id);
}

/** The FHIR element each part of a RestrictionRequest becomes, as E_CONSENT_INVALID names it. */
export const DENY_PATHS = {
  recipient: 'Consent.provision.provision.actor.reference',
  purpose: 'Consent.provision.provision.purpose',
  label: 'Consent.provision.provision.securityLabel',
  any: 'Consent.provision.provision',
} as const;

/**
 * Checks a request against what the broker can enforce (the catalog's services, its purposes of use, the known
 * sensitivity labels, its patient matching rule) and builds the Consent; E_CONSENT_INVALID names the Consent element
 * at fault (DENY_PATHS), E_PATIENT_UNRESOLVED a patient not in the rule's canonical form.
 */
export function buildConsent(req: RestrictionRequest, services: ReadonlySet<string>, rule: PatientMatchDef): Consent {
  if (!isConsentId(req.id)) throw new TypeError('consent id must be a lower-case UUID');
  const patient = canonicalPatientRef(req.patient, rule);
  for (const s of req.denyRecipients) {
    if (!services.has(s))
      throw new BrokerError(
        'E_CONSENT_INVALID',
        `${DENY_PATHS.recipient}: no service ${JSON.stringify(s)} in the catalog`,
        {
          path: DENY_PATHS.recipient,
        },
      );
  }
  for (const p of req.denyPurposes) {
    if (!isPurposeOfUse(p))
      throw new BrokerError(
        'E_CONSENT_INVALID',
        `${DENY_PATHS.purpose}: ${JSON.stringify(p)} is not a purpose of use the catalog routes with (HL7 v3 ActReason)`,
        { path: DENY_PATHS.purpose },
      );
  }
  for (const l of req.denyLabels) {
    if (!isSensitivityLabel(l))
      throw new BrokerError(
        'E_CONSENT_INVALID',
        `${DENY_PATHS.label}: ${JSON.stringify(l)} is not a known sensitivity label (HL7 v3 ActCode)`,
        { path: DENY_PATHS.label },
      );
  }
  const denials: ConsentProvision[] = [];
  const recipients = unique(req.denyRecipients);
  const purposes = unique(req.denyPurposes);
  const labels = unique(req.denyLabels);
  if (recipients.length > 0) {
    denials.push({
      type: 'deny',
      actor: recipients.map((s) => ({
        role: { coding: [{ ...RECIPIENT_ROLE }] },
        reference: { identifier: { system: SERVICE_SYSTEM, value: s }, display: s },
      })),
    });
  }
  if (purposes.length > 0)
    denials.push({ type: 'deny', purpose: purposes.map((code) => ({ system: PURPOSE_SYSTEM, code })) });
  if (labels.length > 0) {
    denials.push({
      type: 'deny',
      securityLabel: labels.map((code) => ({
        system: LABEL_SYSTEM,
        code,
        display: SENSITIVITY_LABELS[code as keyof typeof SENSITIVITY_LABELS],
      })),
    });
  }
  if (denials.length === 0)
    throw new BrokerError(
      'E_CONSENT_INVALID',
      `${DENY_PATHS.any}: a restriction denies at least one recipient, purpose of use or sensitivity label`,
      { path: DENY_PATHS.any },
    );
  const consent: Consent = {
    resourceType: 'Consent',
    id: req.id,
    status: 'active',
    scope: { coding: [{ ...CONSENT_SCOPE }] },
    category: [{ coding: [{ ...CONSENT_CATEGORY }] }],
    patient: patientReference(patient),
    dateTime: new Date(req.at).toISOString(),
    policyRule: { coding: [{ ...CONSENT_POLICY }] },
    provision: { type: 'permit', provision: denials },
  };
  if (req.reason !== undefined && req.reason.trim() !== '') {
    consent.text = {
      status: 'additional',
      div: `<div xmlns="http://www.w3.org/1999/xhtml"><p>${escapeXml(req.reason.trim())}</p></div>`,
    };
  }
  return checkConsent(consent, rule);
}

/** FHIR R4 validation (src/fhir/validate.ts) plus the shape this module writes, under `rule`; returns the Consent. */
export function checkConsent(json: unknown, rule: PatientMatchDef): Consent {
  const consent = validateResource(json, DEFAULT_VALIDATION_LIMITS) as unknown as Consent;
  if (consent.resourceType !== 'Consent')
    throw new BrokerError('E_CONSENT_INVALID', 'resourceType: expected Consent', { path: 'resourceType' });
  if (!isConsentId(consent.id ?? ''))
    throw new BrokerError('E_CONSENT_INVALID', 'Consent.id: expected a UUID', { path: 'Consent.id' });
  consentPatient(consent, rule);
  restrictionOf(consent);
  return consent;
}

/**
 * The canonical patient a Consent is about, read as the broker reads any resource's patient (resolvePatient over
 * the Patient compartment element Consent.patient). E_CONSENT_INVALID when it does not resolve under `rule` (e.g.
 * a Consent stored under another matching rule). PHI: the caller turns it into the keyed pseudonym at once.
 */
export function consentPatient(consent: Consent, rule: PatientMatchDef): string {
  const found = resolvePatient(consent as unknown as FhirResource, rule);
  if (found.kind !== 'patient') {
    const expected =
      rule.match === 'reference'
        ? 'a reference Patient/<id>'
        : `a logical reference by an identifier of ${rule.system}`;
    throw new BrokerError(
      'E_CONSENT_INVALID',
      `Consent.patient: expected ${expected} (the catalog's patient matching rule)`,
      { path: 'Consent.patient' },
    );
  }
  return found.ref;
}

/** The enforceable content of a Consent this module wrote; E_CONSENT_INVALID for any other shape. */
export function restrictionOf(consent: Consent): Restriction {
  const root = consent.provision;
  if (
    root?.type !== 'permit' ||
    root.actor !== undefined ||
    root.purpose !== undefined ||
    root.securityLabel !== undefined
  ) {
    throw new BrokerError(
      'E_CONSENT_INVALID',
      'Consent.provision: expected a base permit with nested deny provisions',
      { path: 'Consent.provision' },
    );
  }
  const recipients = new Set<string>();
  const purposes = new Set<string>();
  const labels = new Set<string>();
  for (const [i, p] of (root.provision ?? []).entries()) {
    const path = `Consent.provision.provision[${i}]`;
    const kinds = [p.actor, p.purpose, p.securityLabel].filter((k) => k !== undefined).length;
    // One kind per nested provision: two kinds in one provision would mean "both at once" (FHIR ANDs a
    // provision's elements), which the broker does not evaluate, so such a Consent is refused, not misread.
    if (p.type !== 'deny' || kinds !== 1 || p.provision !== undefined) {
      throw new BrokerError(
        'E_CONSENT_INVALID',
        `${path}: expected a deny provision with one of actor, purpose or securityLabel`,
        { path },
      );
    }
    for (const a of p.actor ?? []) {
      const id = a.reference.identifier;
      if (id?.system !== SERVICE_SYSTEM || id.value === undefined)
        throw new BrokerError('E_CONSENT_INVALID', `${path}.actor: expected a service identifier`, {
          path: `${path}.actor`,
        });
      recipients.add(id.value);
    }
    for (const c of p.purpose ?? []) purposes.add(codeOf(c, PURPOSE_SYSTEM, `${path}.purpose`));
    for (const c of p.securityLabel ?? []) labels.add(codeOf(c, LABEL_SYSTEM, `${path}.securityLabel`));
  }
  return { id: consent.id ?? '', active: consent.status === 'active', recipients, purposes, labels, all: false };
}

/**
 * The Consent with status `inactive` (R4 consent-state-codes: no longer in force) and the time it ended as
 * `provision.period.end` — the period its rules applied; Consent.dateTime stays when it was agreed (R4: "when this
 * Consent was issued"), so a revocation never overwrites it.
 */
export function revokedConsent(consent: Consent, at: number): Consent {
  const provision = consent.provision ?? { type: 'permit' as const };
  return {
    ...consent,
    status: 'inactive',
    provision: {
      ...provision,
      period: {
        ...(consent.dateTime === undefined ? {} : { start: consent.dateTime }),
        end: new Date(at).toISOString(),
      },
    },
  };
}

/** A stand-in for a stored restriction that could not be read or checked: it denies everything (fail closed). */
export function denyAllRestriction(id: string): Restriction {
  return { id, active: true, recipients: new Set(), purposes: new Set(), labels: new Set(), all: true };
}

function codeOf(c: Coding, system: string, path: string): string {
  if (c.system !== system || c.code === undefined)
    throw new BrokerError('E_CONSENT_INVALID', `${path}: expected a code from ${system}`, { path });
  return c.code;
}

function unique(values: readonly string[]): string[] {
  return [...new Set(values)];
}

function escapeXml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}
