// The coded values phi-broker's AuditEvents use, each from the code system IHE Basic Audit Log Patterns
// (BALP, https://profiles.ihe.net/ITI/BALP/) uses for it, and the identifier systems of phi-broker's own
// names. FHIR R4 AuditEvent: http://hl7.org/fhir/R4/auditevent.html.
import type { Coding } from 'fhir/r4.js';

export const DICOM = 'http://dicom.nema.org/resources/ontology/DCM';
const AUDIT_EVENT_TYPE = 'http://terminology.hl7.org/CodeSystem/audit-event-type';
const RESTFUL = 'http://hl7.org/fhir/restful-interaction';
const PARTICIPATION_TYPE = 'http://terminology.hl7.org/CodeSystem/v3-ParticipationType';
const LIFECYCLE = 'http://terminology.hl7.org/CodeSystem/iso-21089-lifecycle';
export const ENTITY_TYPE = 'http://terminology.hl7.org/CodeSystem/audit-entity-type';
export const OBJECT_ROLE = 'http://terminology.hl7.org/CodeSystem/object-role';
export const SOURCE_TYPE = 'http://terminology.hl7.org/CodeSystem/security-source-type';
export const PURPOSE_OF_USE = 'http://terminology.hl7.org/CodeSystem/v3-ActReason';
/** BALP's entity type for a transaction (request) id. */
export const BALP_ENTITY_TYPE = 'https://profiles.ihe.net/ITI/BALP/CodeSystem/BasicAuditEntityType';

/** Event types (AuditEvent.type). */
export const TYPE = {
  /** audit-event-type#rest: a RESTful operation (BALP Create uses it with restful-interaction#create). */
  rest: { system: AUDIT_EVENT_TYPE, code: 'rest', display: 'Restful Operation' },
  /** DCM 110106 Export: data leaves the system (BALP Privacy Disclosure at the source). */
  export: { system: DICOM, code: '110106', display: 'Export' },
  /** DCM 110100 Application Activity (start / stop). */
  application: { system: DICOM, code: '110100', display: 'Application Activity' },
  /** DCM 110113 Security Alert (configuration changes, alerts). */
  securityAlert: { system: DICOM, code: '110113', display: 'Security Alert' },
  /** DCM 110114 User Authentication: a partner authenticating to the gateway's token endpoint. */
  userAuthentication: { system: DICOM, code: '110114', display: 'User Authentication' },
  /** DCM 110110 Patient Record: a patient's record created, read, updated (the right-of-access workflow). */
  patientRecord: { system: DICOM, code: '110110', display: 'Patient Record' },
  /** DCM 110112 Query: an operator's search of the registry, the disclosures or the audit trail. */
  query: { system: DICOM, code: '110112', display: 'Query' },
} as const satisfies Record<string, Coding>;

/** Event subtypes (AuditEvent.subtype). */
export const SUBTYPE = {
  create: { system: RESTFUL, code: 'create', display: 'create' },
  transaction: { system: RESTFUL, code: 'transaction', display: 'transaction' },
  batch: { system: RESTFUL, code: 'batch', display: 'batch' },
  operation: { system: RESTFUL, code: 'operation', display: 'operation' },
  update: { system: RESTFUL, code: 'update', display: 'update' },
  read: { system: RESTFUL, code: 'read', display: 'read' },
  delete: { system: RESTFUL, code: 'delete', display: 'delete' },
  disclose: { system: LIFECYCLE, code: 'disclose', display: 'Disclose Record Lifecycle Event' },
  applicationStart: { system: DICOM, code: '110120', display: 'Application Start' },
  applicationStop: { system: DICOM, code: '110121', display: 'Application Stop' },
  securityConfiguration: { system: DICOM, code: '110129', display: 'Security Configuration' },
  login: { system: DICOM, code: '110122', display: 'Login' },
  /** DICOM CID 403 (Security Alert Type): a node (a NATS client) failed to authenticate (TLS, certificate mapping). */
  nodeAuthentication: { system: DICOM, code: '110126', display: 'Node Authentication' },
  /** DICOM CID 403: an authenticated client tried what its permissions deny (publish or subscribe). */
  restrictedFunction: { system: DICOM, code: '110132', display: 'Use of Restricted Function' },
} as const satisfies Record<string, Coding>;

/** Agent roles (AuditEvent.agent.type): DICOM's Source / Destination Role ID as BALP uses them. */
export const AGENT = {
  source: { system: DICOM, code: '110153', display: 'Source Role ID' },
  destination: { system: DICOM, code: '110152', display: 'Destination Role ID' },
  application: { system: DICOM, code: '110150', display: 'Application' },
  /** BALP's user who creates or changes a resource (ValueSet DataSources): v3-ParticipationType AUT. */
  author: { system: PARTICIPATION_TYPE, code: 'AUT', display: 'author (originator)' },
  /** BALP's user who receives what was read, queried or exported: v3-ParticipationType IRCP. */
  informationRecipient: { system: PARTICIPATION_TYPE, code: 'IRCP', display: 'information recipient' },
} as const satisfies Record<string, Coding>;

/** The IHE BALP profiles (https://profiles.ihe.net/ITI/BALP/) an event claims in meta.profile (event.ts says which). */
const BALP_SD = 'https://profiles.ihe.net/ITI/BALP/StructureDefinition/';
export const BALP_PROFILE = {
  create: `${BALP_SD}IHE.BasicAudit.Create`,
  patientCreate: `${BALP_SD}IHE.BasicAudit.PatientCreate`,
  update: `${BALP_SD}IHE.BasicAudit.Update`,
  patientUpdate: `${BALP_SD}IHE.BasicAudit.PatientUpdate`,
  read: `${BALP_SD}IHE.BasicAudit.Read`,
  disclosureSource: `${BALP_SD}IHE.BasicAudit.PrivacyDisclosure.Source`,
} as const;

/** AuditEvent.outcome (http://hl7.org/fhir/R4/valueset-audit-event-outcome.html). */
export const OUTCOME = { success: '0', minor: '4', serious: '8' } as const;
export type Outcome = (typeof OUTCOME)[keyof typeof OUTCOME];

/** Identifier systems for phi-broker's own names (never a value from a resource). */
export const SYSTEM = {
  service: 'urn:phi-broker:service',
  /** The person who ran an operator command (`--operator`, PHI_BROKER_OPERATOR, else the operating-system user). */
  operator: 'urn:phi-broker:operator',
  /** The operator command an event records (AuditEvent.subtype beside the type's own code). */
  operatorAction: 'urn:phi-broker:operator-action',
  instance: 'urn:phi-broker:instance',
  /** The broker's keyed patient pseudonym (src/registry/pseudonym.ts), never the patient id itself. */
  patientPseudonym: 'urn:phi-broker:patient-pseudonym',
  /** The same keyed pseudonym of a resource's `<type>/<id>`: logical ids may embed identifiers. */
  resourcePseudonym: 'urn:phi-broker:resource-pseudonym',
  /** A patient restriction's Consent id (KV phi_consent, src/consent/). */
  consent: 'urn:phi-broker:consent',
  /** A right-of-access request id (KV phi_access). */
  accessRequest: 'urn:phi-broker:access-request',
  /** The step of a right-of-access request (AuditEvent.subtype): created, answered, unanswered, failed, extended, refused. */
  accessStep: 'urn:phi-broker:access-step',
  messageId: 'urn:phi-broker:message-id',
  /** A partner's Subscription id at the partner gateway (KV phi_gateway_subscriptions). */
  subscription: 'urn:phi-broker:subscription',
  quarantineRecord: 'urn:phi-broker:quarantine-record',
  catalog: 'urn:phi-broker:catalog-sha256',
  alertRule: 'urn:phi-broker:alert-rule',
  /** What nats-server refused (AuditEvent.subtype beside the DICOM code): src/nats/server-log.ts SECURITY_LOG_KINDS. */
  securityIncident: 'urn:phi-broker:security-incident',
  /** phi-broker's own components as agents (`gateway`), apart from catalog service ids. */
  component: 'urn:phi-broker:component',
  /** A partner's OAuth client id (the catalog's partner.clientId). */
  oauthClient: 'urn:phi-broker:oauth-client',
  /** An access token the partner gateway issued, by its jti. */
  accessToken: 'urn:phi-broker:access-token',
} as const;
