// The accounting of disclosures as FHIR R4: a Bundle (type `collection`) of AuditEvents, one per disclosure, in the
// shape IHE BALP and DICOM PS3.15 give an export of PHI (AuditEvent.type DCM 110106 "Export", subtype ISO 21089
// disclose, profile BALP PrivacyDisclosure.Source; agents in the
// source (110153) and destination (110152) roles; the patient as an entity with role 1 "Patient"; the data as an
// entity with role 4 "Domain Resource", its type and, in entity.detail, the element paths disclosed and the
// profile that shaped them). The purpose of use is AuditEvent.purposeOfEvent (v3-ActReason).
// http://hl7.org/fhir/R4/auditevent.html, https://profiles.ihe.net/ITI/BALP/
import { randomUUID } from 'node:crypto';
import type { AuditEvent, Bundle } from 'fhir/r4.js';
import { entryFullUrl } from '../fhir/full-url.js';
import { BROKER_ID } from '../wire/ids.js';
import { subjects } from '../wire/names.js';
import { PURPOSE_SYSTEM, SERVICE_SYSTEM } from '../consent/codes.js';
import { patientReference } from '../registry/patient-key.js';
import type { StoredDisclosure } from './read.js';

const DCM = 'http://dicom.nema.org/resources/ontology/DCM';
const OBJECT_ROLE = 'http://terminology.hl7.org/CodeSystem/object-role';
const ENTITY_TYPE = 'http://terminology.hl7.org/CodeSystem/audit-entity-type';
/** Identifier system of phi-broker message ids (envelope `id`). */
export const MESSAGE_SYSTEM = 'urn:phi-broker:message';
/** The BALP profile each event claims: a Privacy Disclosure recorded at the source (the broker). */
const BALP_DISCLOSURE_SOURCE =
  'https://profiles.ihe.net/ITI/BALP/StructureDefinition/IHE.BasicAudit.PrivacyDisclosure.Source';

/** `patientRef`: the canonical patient (src/registry/patient-key.ts), named as a literal or a logical reference. */
export function disclosureAuditEvent(d: StoredDisclosure, patientRef: string): AuditEvent {
  const r = d.record;
  const broker = { identifier: { system: SERVICE_SYSTEM, value: BROKER_ID }, display: 'phi-broker' };
  // Both parties' network access point: the NATS subject the copy was delivered on (network type 5, URI).
  const network = { address: `nats:${subjects.deliver(r.recipient, r.type)}`, type: '5' as const };
  return {
    resourceType: 'AuditEvent',
    id: `disclosure-${d.seq}`,
    meta: { profile: [BALP_DISCLOSURE_SOURCE] },
    type: { system: DCM, code: '110106', display: 'Export' },
    subtype: [
      {
        system: 'http://terminology.hl7.org/CodeSystem/iso-21089-lifecycle',
        code: 'disclose',
        display: 'Disclose Record Lifecycle Event',
      },
    ],
    action: 'R',
    recorded: new Date(r.at).toISOString(),
    outcome: '0',
    purposeOfEvent: [{ coding: [{ system: PURPOSE_SYSTEM, code: r.purpose }] }],
    agent: [
      {
        type: { coding: [{ system: DCM, code: '110153', display: 'Source Role ID' }] },
        who: broker,
        requestor: false,
        network,
      },
      {
        type: { coding: [{ system: DCM, code: '110152', display: 'Destination Role ID' }] },
        who: { identifier: { system: SERVICE_SYSTEM, value: r.recipient }, display: r.recipient },
        requestor: false,
        network,
      },
    ],
    source: {
      observer: broker,
      type: [
        {
          system: 'http://terminology.hl7.org/CodeSystem/security-source-type',
          code: '4',
          display: 'Application Server',
        },
      ],
    },
    entity: [
      {
        // BALP entity[patient].what only Reference(Patient): typed, also when it is a literal reference.
        what: { type: 'Patient', ...patientReference(patientRef) },
        type: { system: ENTITY_TYPE, code: '1', display: 'Person' },
        role: { system: OBJECT_ROLE, code: '1', display: 'Patient' },
      },
      {
        what: { identifier: { system: MESSAGE_SYSTEM, value: r.messageId } },
        type: { system: 'http://hl7.org/fhir/resource-types', code: r.type },
        role: { system: OBJECT_ROLE, code: '4', display: 'Domain Resource' },
        detail: [
          { type: 'elements', valueString: r.elements.join(' ') },
          { type: 'profile', valueString: r.profile },
          { type: 'source', valueString: r.source },
          { type: 'delivery', valueString: r.id },
        ],
      },
    ],
  };
}

export function disclosureBundle(disclosures: readonly StoredDisclosure[], patientRef: string, now: number): Bundle {
  return {
    resourceType: 'Bundle',
    id: randomUUID(),
    type: 'collection',
    timestamp: new Date(now).toISOString(),
    entry: disclosures.map((d) => {
      const resource = disclosureAuditEvent(d, patientRef);
      return { fullUrl: entryFullUrl('disclosures', resource, 0), resource };
    }),
  };
}
