// A small synthetic catalog as in-memory files (the pure core's input), for tests that break one thing at a time.
import type { CatalogSourceFile } from '../../src/catalog/compile.js';

export const SERVICES = `services:
  - id: front-desk
    owner: access
    description: Intake.
    classification: phi
  - id: clinic
    owner: clinical
    description: Care.
    classification: phi
  - id: research
    owner: science
    description: De-identified analysis.
    classification: deidentified
`;

export const TOPICS = `topics:
  Patient:
    publishers: [front-desk]
    subscribers:
      - service: clinic
        profile: patient-all
        purpose: TREAT
  Observation:
    publishers: [clinic]
    subscribers:
      - service: research
        profile: obs-deid
        purpose: HRESCH
`;

export const PATIENT_ALL = `id: patient-all
resourceType: Patient
description: Everything.
allow: [Patient]
`;

export const OBS_DEID = `id: obs-deid
resourceType: Observation
description: De-identified.
deidentified: true
allow:
  - Observation.id
  - Observation.code
  - Observation.subject
  - Observation.effectiveDateTime
transforms:
  Observation.id: pseudonym
  Observation.subject: pseudonym
  Observation.effectiveDateTime: year
`;

export const CLASSIFICATION = `directIdentifiers:
  - "*.id"
  - "*.subject"
  - "*.identifier"
  - Patient.name
  - Patient.address.line
  - Patient.extension(http://hl7.org/fhir/StructureDefinition/patient-mothersMaidenName)
quasiIdentifiers:
  - Patient.birthDate
  - Patient.address.postalCode
  - Observation.effective[x]
plaintext: [resourceType, meta.profile, meta.security]
`;

/** The base catalog with some files replaced (by name) or added; `null` removes a file. */
export function catalogFiles(overrides: Record<string, string | null> = {}): CatalogSourceFile[] {
  const base: Record<string, string> = {
    'subjects/services.yaml': SERVICES,
    'subjects/topics.yaml': TOPICS,
    'fhir-profiles/patient-all.yaml': PATIENT_ALL,
    'fhir-profiles/obs-deid.yaml': OBS_DEID,
    'fhir-profiles/classification.yaml': CLASSIFICATION,
  };
  const merged: Record<string, string | null> = { ...base, ...overrides };
  return Object.entries(merged)
    .filter((e): e is [string, string] => e[1] !== null)
    .map(([file, text]) => ({
      file,
      text,
      kind: file.startsWith('subjects/')
        ? 'subjects'
        : file === 'fhir-profiles/classification.yaml'
          ? 'classification'
          : 'profile',
    }));
}

/** A profile file text with the given body lines after the id/resourceType/description header. */
export function profile(id: string, resourceType: string, body: string): string {
  return `id: ${id}\nresourceType: ${resourceType}\ndescription: Test profile.\n${body}`;
}
