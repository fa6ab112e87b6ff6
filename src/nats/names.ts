// Every NATS subject, stream, consumer and KV bucket name phi-broker uses, in one place (DESIGN.md:
// "nothing else spells a subject string"). Subjects carry only service ids and FHIR resource type names —
// never a patient reference, an identifier or any other value (PHI must not appear in subjects).
import { SERVICE_ID_PATTERN } from '../catalog/types.js';
import { RAW_TYPE, RESOURCE_TYPE_NAME_PATTERN } from '../envelope/types.js';

export const STREAMS = {
  ingest: 'PHI_INGEST',
  deliver: 'PHI_DELIVER',
  quarantine: 'PHI_QUARANTINE',
  receipts: 'PHI_RECEIPTS',
  /** The FHIR AuditEvent trail (subjects phi.audit.>); only the broker touches it. */
  audit: 'PHI_AUDIT',
  /** Accounting of disclosures (45 CFR 164.528); only the broker touches it. */
  disclosures: 'PHI_DISCLOSURES',
} as const;

export const KV_BUCKETS = {
  /** Message ids the broker has accepted, for replay detection beyond JetStream's duplicate window. */
  seen: 'phi_seen',
  /** Patient ↔ service registry (keyed pseudonyms); only the broker touches it. */
  registry: 'phi_registry',
  /** Access requests and their state; only the broker touches it. */
  access: 'phi_access',
  /** Consent and restrictions; only the broker touches it. */
  consent: 'phi_consent',
} as const;

/**
 * Reply-subject prefix of one NATS identity (a service id, or the broker's). Each identity may subscribe only
 * under its own prefix, so no client can read replies meant for another (JetStream API answers, pulled messages).
 * nats.js takes it as the `inboxPrefix` connection option. Service ids start with a letter, so they never
 * collide with the default `_INBOX.<NUID>` (upper case) or with `_INBOX._admin`.
 */
export function inboxPrefix(identity: string): string {
  if (identity !== '_admin' && !SERVICE_ID_PATTERN.test(identity)) throw new TypeError(`not an identity: ${JSON.stringify(identity)}`);
  return `_INBOX.${identity}`;
}

export const BROKER_CONSUMER = 'broker';

/** Raw (raw-mode) envelopes carry this in place of a resource type. */
export { RAW_TYPE };
const RAW_TOKEN = '_raw';


export const HEADERS = {
  /** JetStream de-duplication (NATS ADR-31): set to the message id. */
  msgId: 'Nats-Msg-Id',
  /** Ed25519 detached signature (base64url) over the exact message bytes (docs/wire-format.md). */
  signature: 'Phi-Sig',
  /** Quarantine records: the stable error code (never a value). */
  code: 'Phi-Code',
  /** Quarantine records: the record's facts as JSON (src/broker/quarantine.ts; never a value). */
  record: 'Phi-Record',
  /** Quarantine records: `i/n`, this message's place among the parts of the sealed original. */
  part: 'Phi-Part',
} as const;

function assertService(service: string): void {
  if (!SERVICE_ID_PATTERN.test(service)) throw new TypeError(`not a service id: ${JSON.stringify(service)}`);
}

function typeToken(type: string): string {
  if (type === RAW_TYPE) return RAW_TOKEN;
  if (!RESOURCE_TYPE_NAME_PATTERN.test(type)) throw new TypeError(`not a resource type: ${JSON.stringify(type)}`);
  return type;
}

export const subjects = {
  ingestAll: 'phi.ingest.>',
  ingest: (service: string, type: string): string => {
    assertService(service);
    return `phi.ingest.${service}.${typeToken(type)}`;
  },
  deliverAll: 'phi.deliver.>',
  deliver: (service: string, type: string): string => {
    assertService(service);
    return `phi.deliver.${service}.${typeToken(type)}`;
  },
  deliverFilter: (service: string, type?: string): string => {
    assertService(service);
    return type === undefined ? `phi.deliver.${service}.>` : `phi.deliver.${service}.${typeToken(type)}`;
  },
  quarantineAll: 'phi.quarantine.>',
  quarantine: (service: string): string => `phi.quarantine.${SERVICE_ID_PATTERN.test(service) ? service : '_unknown'}`,
  receiptsAll: 'phi.receipt.>',
  auditAll: 'phi.audit.>',
  disclosuresAll: 'phi.disclosure.>',
  accessAll: 'phi.access.>',
  /** Access requests addressed to one service (NATS request/reply; the service answers with its FHIR data). */
  access: (service: string): string => {
    assertService(service);
    return `phi.access.${service}`;
  },
  receipt: (service: string): string => {
    assertService(service);
    return `phi.receipt.${service}`;
  },
} as const;

export interface IngestSubject {
  readonly service: string;
  readonly type: string;
}

/** Parses `phi.ingest.<service>.<Type>`; undefined when the subject is not of that shape. */
export function parseIngestSubject(subject: string): IngestSubject | undefined {
  const parts = subject.split('.');
  if (parts.length !== 4 || parts[0] !== 'phi' || parts[1] !== 'ingest') return undefined;
  const [, , service, token] = parts as [string, string, string, string];
  if (!SERVICE_ID_PATTERN.test(service)) return undefined;
  if (token === RAW_TOKEN) return { service, type: RAW_TYPE };
  return RESOURCE_TYPE_NAME_PATTERN.test(token) ? { service, type: token } : undefined;
}

/** Durable consumer of a subscriber's deliveries (all types, or one). */
export function deliveryConsumer(service: string, type?: string): string {
  assertService(service);
  return type === undefined ? `deliver-${service}` : `deliver-${service}-${typeToken(type)}`;
}
