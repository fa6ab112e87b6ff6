// The code systems a patient restriction (FHIR R4 Consent, http://hl7.org/fhir/R4/consent.html) is written in,
// and the codes the broker can enforce. A restriction the broker could not enforce is refused when it is made
// (E_CONSENT_INVALID), never stored to be silently ignored.
import { PURPOSES_OF_USE, type PurposeOfUse } from '../catalog/types.js';

/** Consent.scope: a privacy consent (R4 consent-scope). */
export const CONSENT_SCOPE = {
  system: 'http://terminology.hl7.org/CodeSystem/consentscope',
  code: 'patient-privacy',
  display: 'Privacy Consent',
} as const;
/** Consent.category: LOINC 59284-0 "Patient Consent" (R4 consent-category example binding). */
export const CONSENT_CATEGORY = { system: 'http://loinc.org', code: '59284-0', display: 'Patient Consent' } as const;
/** Consent.policyRule: the HIPAA right to request restrictions (45 CFR 164.522(a); R4 consent-policy codes). */
export const CONSENT_POLICY = {
  system: 'http://terminology.hl7.org/CodeSystem/consentpolicycodes',
  code: 'hipaa-restrictions',
  display: 'HIPAA Restrictions',
} as const;
/** provision.actor.role: the recipient of the information (HL7 v3 ParticipationType IRCP). */
export const RECIPIENT_ROLE = {
  system: 'http://terminology.hl7.org/CodeSystem/v3-ParticipationType',
  code: 'IRCP',
  display: 'information recipient',
} as const;
/** provision.purpose: HL7 v3 ActReason (PurposeOfUse), the codes the catalog routes with. */
export const PURPOSE_SYSTEM = 'http://terminology.hl7.org/CodeSystem/v3-ActReason';
/** provision.securityLabel and meta.security sensitivity labels: HL7 v3 ActCode (ActInformationSensitivityPolicy). */
export const LABEL_SYSTEM = 'http://terminology.hl7.org/CodeSystem/v3-ActCode';
/** Identifier system of catalog service ids (a service is the actor a restriction names). */
export const SERVICE_SYSTEM = 'urn:phi-broker:service';

/**
 * Sensitivity labels a restriction may deny: the v3-ActCode ActInformationSensitivityPolicy codes for the kinds of
 * information patients most often ask to keep back (HL7 Terminology, ValueSet v3-ActInformationSensitivityPolicy;
 * BH and SUD are the later additions for behavioural health and substance-use disorder, 42 CFR Part 2).
 */
export const SENSITIVITY_LABELS = {
  BH: 'behavioral health information sensitivity',
  ETH: 'substance abuse information sensitivity',
  GDIS: 'genetic disease information sensitivity',
  HIV: 'HIV/AIDS information sensitivity',
  MST: 'military sexual trauma information sensitivity',
  PSY: 'psychiatry disorder information sensitivity',
  SCA: 'sickle cell anemia information sensitivity',
  SDV: 'sexual assault, abuse, or domestic violence information sensitivity',
  SEX: 'sexuality and reproductive health information sensitivity',
  STD: 'sexually transmitted disease information sensitivity',
  SUD: 'substance use disorder information sensitivity',
  TBOO: 'taboo',
} as const;
export type SensitivityLabel = keyof typeof SENSITIVITY_LABELS;

export function isSensitivityLabel(code: string): code is SensitivityLabel {
  return Object.hasOwn(SENSITIVITY_LABELS, code);
}

export function isPurposeOfUse(code: string): code is PurposeOfUse {
  return (PURPOSES_OF_USE as readonly string[]).includes(code);
}
