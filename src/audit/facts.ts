// What the broker tells the audit trail: one fact per decision, as plain data with ids, codes and element
// paths only — never a resource value. The builder (event.ts) turns each fact into a FHIR R4 AuditEvent in
// the IHE Basic Audit Log Patterns shape; the trail (trail.ts) chains and stores it.
//
import type { SecurityLogKind, TlsRefusal } from '../nats/server-log.js';

// AuditFact is a discriminated union on `kind`. To audit a new decision (registry, consent, access requests,
// transport authentication …): add a member here, a case in event.ts (the compiler's exhaustiveness check
// points to it), and call `audit.record([...])` where the decision is made. A new field of an accepted,
// delivered or withheld fact also needs its place in event-json.ts (hole or template path; the compiler
// points there too).

/** A service acting in an event: its catalog id, and its network address when the broker knows it. */
export interface AuditActor {
  readonly service: string;
  /** Host name or IP address (FHIR AuditEvent.agent.network). */
  readonly address?: string;
}

/**
 * The resource a message carried, by its type and keyed pseudonyms only: a fact never holds a patient reference or a
 * logical id (either may be or embed an identifier), so nothing that reads, logs or keeps facts can leak one. The
 * pseudonyms are the broker's (src/registry/pseudonym.ts: HMAC-SHA256 under the registry key), computed once per
 * message by the pipeline (src/registry/message-patients.ts) — the patient's is the registry's key itself.
 */
export interface AuditSubject {
  readonly messageId: string;
  readonly resourceType: string;
  /** The keyed pseudonym of `<Type>/<id>`; absent for a resource without an id and for a Patient (its id is the patient's). */
  readonly resourcePseudonym?: string;
  /** The keyed pseudonym of the resource's canonical patient (`Patient/<id>`, or `<system>|<value>` under `match: identifier`). */
  readonly patientPseudonym?: string;
  /** A Bundle that travels whole: the pseudonyms of its entries' distinct patients (src/registry/bundle-patients.ts). */
  readonly patientPseudonyms?: readonly string[];
}

/** A message the broker verified, validated and accepted from its publisher (BALP Create). */
export interface AcceptedFact {
  readonly kind: 'accepted';
  readonly sender: AuditActor;
  readonly subject: AuditSubject;
  /** PHI_INGEST stream sequence. */
  readonly ingestSeq: number;
  /** Keys used: the publisher's signing key id (verified) and the KEK id the data key was unwrapped with. */
  readonly keys?: { readonly verified: string; readonly unwrapped: string };
}

/** A message the broker refused (BALP Create, failed), with the error code and element path. */
export interface RejectedFact {
  readonly kind: 'rejected';
  /** The sender the subject names; unauthenticated when the code is an authentication failure. */
  readonly sender?: AuditActor;
  readonly messageId?: string;
  readonly resourceType?: string;
  readonly code: string;
  readonly path?: string;
  readonly ingestSeq: number;
  /**
   * A throttled window's summary (E_SENDER_THROTTLED, docs/broker.md "Storage limits"): how many rejections it
   * stands for, by code; `ingestSeq` is the first one's.
   */
  readonly count?: number;
  readonly codes?: Readonly<Record<string, number>>;
}

/** A projected copy delivered to one subscriber (BALP Privacy Disclosure at the source). */
export interface DeliveredFact {
  readonly kind: 'delivered';
  readonly sender: AuditActor;
  readonly recipient: AuditActor;
  readonly subject: AuditSubject;
  readonly profileUrl: string;
  /** HL7 v3 PurposeOfUse code (http://terminology.hl7.org/CodeSystem/v3-ActReason). */
  readonly purpose: string;
  /** The element paths the profile lets through (its allow-list): what the recipient may have received. */
  readonly elements: readonly string[];
  /** The delivery's own message id (`<id>.<subscriber>`). */
  readonly deliveryId: string;
  /** Keys used: the KEK id the data key was released (wrapped) to the recipient under, and the broker's signing key id. */
  readonly keys?: { readonly released: string; readonly signed: string };
}

/** A subscriber denied its copy (permission, restriction, a modifier its profile withholds, size). */
export interface WithheldFact {
  readonly kind: 'withheld';
  readonly sender: AuditActor;
  readonly recipient: AuditActor;
  readonly subject: AuditSubject;
  /** An error code (E_…), or for a patient restriction `restricted:<recipient|purpose|label|unreadable>[:<code>]`. */
  readonly code: string;
  readonly path?: string;
  readonly purpose?: string;
  /** The id of the FHIR Consent (45 CFR 164.522 restriction) that denied the copy. */
  readonly consent?: string;
}

/** A rejected input sealed into PHI_QUARANTINE under the broker's quarantine key. */
export interface QuarantinedFact {
  readonly kind: 'quarantined';
  readonly recordId: string;
  readonly code: string;
  readonly sender?: AuditActor;
  readonly messageId?: string;
  readonly ingestSeq: number;
}

/** The broker process started or stopped (DICOM Application Activity). */
export interface BrokerLifecycleFact {
  readonly kind: 'broker-start' | 'broker-stop';
}

/** The catalog (access policy: who publishes and receives what, through which profile) was loaded. */
export interface CatalogLoadedFact {
  readonly kind: 'catalog-loaded';
  /** SHA-256 of the canonical catalog (src/catalog/hash.ts). */
  readonly hash: string;
  readonly services: number;
  readonly types: number;
}

/** An alert rule fired (DICOM Security Alert); see src/audit/alerts.ts. */
export interface AlertFact {
  readonly kind: 'alert';
  readonly rule: string;
  /** The identity the alert is about, when there is one. */
  readonly service?: string;
  /** What was counted against what threshold, as text without values. */
  readonly detail: string;
}

/** One step of a right-of-access request (45 CFR 164.524; src/access/desk/desk.ts). */
export interface AccessStepFact {
  readonly kind: 'access';
  readonly step: 'created' | 'answered' | 'unanswered' | 'failed' | 'extended';
  /** The request id (`ar-<uuid>`). */
  readonly requestId: string;
  /** The broker's keyed patient pseudonym (already derived: the desk never holds the pseudonym's input in a fact). */
  readonly patientPseudonym: string;
  /** The service asked (answered / unanswered / failed); for created, every service that will be asked. */
  readonly services: readonly string[];
  /** Why an attempt failed (an error or NATS code, with the element path of a refused answer), or the new due date of an extension. */
  readonly detail?: string;
  /** For answered: the number of resources and the SHA-256 of the answer. */
  readonly resources?: number;
  readonly sha256?: string;
  /** For created: the catalog access requester (a service, SDK) that asked; absent when an operator did (CLI). */
  readonly requester?: string;
}

/**
 * A service's right-of-access request (SDK, phi.request.access.<service>) the broker refused: not an access
 * requester, a signature or sender that does not verify, a patient reference not in the catalog's form, a status
 * asked about another's request (src/access/desk/service-requests.ts). Ids and codes only.
 */
export interface AccessRefusedFact {
  readonly kind: 'access-refused';
  /** The service the NATS subject names (authenticated by NATS; by the broker only when the code is not a signature failure). */
  readonly requester: string;
  /** What was asked, when the sealed command could be read that far. */
  readonly op?: 'create' | 'status';
  readonly code: string;
  readonly path?: string;
  /** The command's envelope id (the SDK's random id), when it parsed. */
  readonly messageId?: string;
}

/**
 * A SMART Backend Services token request at the partner gateway (src/gateway/token.ts), granted or refused: who asked
 * (the partner its verified assertion names; a refused request names a client only when its claimed client id is a
 * registered one), from where, which scopes, and for a refusal the code and the request field it is about.
 */
export interface PartnerTokenFact {
  readonly kind: 'partner-token';
  /** The gateway's network address as the partner reached it is not known; the partner's is. */
  readonly address: string;
  /** The partner's catalog service id, once its client assertion verified. */
  readonly service?: string;
  /** The registered client id the request named (verified or not). */
  readonly clientId?: string;
  readonly granted: boolean;
  /** Granted scopes, or for a refusal the scopes asked for when they were read (SMART v2 scope strings, no values). */
  readonly scopes?: readonly string[];
  /** The key id the assertion was verified with. */
  readonly kid?: string;
  /** The access token's own id (its jti), when granted. */
  readonly tokenId?: string;
  readonly code?: string;
  readonly path?: string;
  /**
   * A summary of refusals by the rate limit (src/gateway/refusal-summary.ts): how many requests of one window were
   * refused with `code` after its first (recorded on its own), and when the window's first and last refusal came.
   */
  readonly summary?: { readonly count: number; readonly firstSeen: string; readonly lastSeen: string };
}

/**
 * A partner's FHIR write on the gateway (src/gateway/inbound.ts) or create or delete of a Subscription
 * (src/gateway/subscriptions/routes.ts), answered or refused: the HTTP status, the broker message ids it published,
 * and for a refusal the code and element path — never a value the partner sent.
 */
export interface PartnerRequestFact {
  readonly kind: 'partner-request';
  readonly address: string;
  /** The partner's catalog service id, once its access token verified. */
  readonly service?: string;
  readonly clientId?: string;
  /** The access token's id (its jti). */
  readonly tokenId?: string;
  /**
   * FHIR RESTful interaction: create (POST /[type] or POST /Subscription), transaction or batch (POST /), the
   * $process-message operation, or delete (DELETE /Subscription/[id]).
   */
  readonly interaction: 'create' | 'transaction' | 'batch' | 'process-message' | 'delete';
  readonly status: number;
  /** The broker message ids published for it, in entry order. */
  readonly messageIds: readonly string[];
  /** A retry answered with the answer stored for its idempotency key (nothing published again). */
  readonly replayed?: boolean;
  /** The gateway Subscription the request acted on (create, delete). */
  readonly subscription?: string;
  /** For a Subscription create: the HTTP status the endpoint answered the handshake with (0: not reached). */
  readonly handshake?: number;
  readonly code?: string;
  readonly path?: string;
}

/**
 * Deliveries the partner gateway passed on to a partner (src/gateway/subscriptions/): pushed to its rest-hook and
 * answered 2xx (`notify`), read back with `$events` (`events`), or one resource read with `GET /[type]/[id]` (`read`). Each names the broker's delivery ids, which the
 * broker's own `delivered` AuditEvent and disclosure record of the same copy carry (with the patient).
 */
export interface PartnerNotificationFact {
  readonly kind: 'partner-notification';
  readonly operation: 'notify' | 'events' | 'read';
  /** The partner's catalog service id. */
  readonly service: string;
  readonly subscription: string;
  /** The event numbers, as the partner sees them. */
  readonly events: readonly number[];
  /** The broker deliveries (`<message id>.<subscriber>`) those events carried. */
  readonly deliveryIds: readonly string[];
  /** The profile that shaped the copies. */
  readonly profileUrl?: string;
}

/**
 * Clients nats-server refused, as its log recorded them (src/nats/server-log.ts), aggregated per kind and identity
 * (or, unauthenticated, per address) over an interval (src/audit/incidents.ts): a security incident under 45 CFR
 * 164.308(a)(6). Service ids, addresses, closed-set codes and catalog-grammar subjects only (docs/audit.md).
 */
export interface SecurityIncidentFact {
  readonly kind: 'security-incident';
  readonly incident: SecurityLogKind;
  /** The phi-broker identity the client's certificate mapped to; absent when the client was not authenticated. */
  readonly identity?: string;
  /** The client's IP address (the last one seen in the interval). */
  readonly address: string;
  /** How many log lines of this kind from this client the interval held. */
  readonly count: number;
  /** First and last line of the interval, as this process read them (ISO 8601). */
  readonly firstSeen: string;
  readonly lastSeen: string;
  /** Distinct subjects refused (catalog grammar, else NOT_A_PHI_BROKER_SUBJECT), at most a few. */
  readonly subjects?: readonly string[];
  /** Further distinct subjects the interval held beyond those listed. */
  readonly moreSubjects?: number;
  /** Distinct TLS refusals (a closed set). */
  readonly refusals?: readonly TlsRefusal[];
  /** The logged user was not a phi-broker identity. */
  readonly unknownUser?: true;
  /** Lines of clients beyond the open-window cap, counted together (`address` is the last one's). */
  readonly manyClients?: true;
}

/** The compliance actions operator commands record (src/cli/; docs/audit.md "Operator actions"). */
export const OPERATOR_ACTIONS = [
  'consent-add',
  'consent-revoke',
  'access-request',
  'access-extend',
  'access-export',
  'quarantine-decrypt',
  'registry-show',
  'disclosures',
  'audit-query',
  'audit-export',
] as const;
export type OperatorAction = (typeof OPERATOR_ACTIONS)[number];

/**
 * A compliance action an operator command took (src/runtime/operator-audit.ts), recorded by the command itself on a
 * chain of its own: who ran it, the patient it was about (as the broker's pseudonym), the object it touched, and the
 * parameters as ids, codes and times only.
 */
export interface OperatorActionFact {
  readonly kind: 'operator-action';
  readonly action: OperatorAction;
  /** The person who ran the command (`--operator`, PHI_BROKER_OPERATOR, else the operating-system user). */
  readonly operator: string;
  /** The NATS identity the command connected as (operator, auditor, admin); absent on a plaintext development server. */
  readonly identity?: string;
  /** The NATS server's host as the command reached it (the server agent's network address). */
  readonly server: string;
  readonly patientPseudonym?: string;
  /** What the action was about: a Consent, a right-of-access request, a quarantine record. */
  readonly object?: { readonly kind: 'consent' | 'access-request' | 'quarantine-record'; readonly id: string };
  /** Parameters and results, as `[name, value]` pairs without PHI (service ids, codes, times, counts). */
  readonly details?: readonly (readonly [string, string])[];
}

export type AuditFact =
  | OperatorActionFact
  | SecurityIncidentFact
  | PartnerTokenFact
  | PartnerRequestFact
  | PartnerNotificationFact
  | AccessStepFact
  | AccessRefusedFact
  | AcceptedFact
  | RejectedFact
  | DeliveredFact
  | WithheldFact
  | QuarantinedFact
  | BrokerLifecycleFact
  | CatalogLoadedFact
  | AlertFact;

export type AuditFactKind = AuditFact['kind'];

/** Every kind, for tests that must cover each (test/audit/balp.int.test.ts); the compiler keeps it complete. */
export const AUDIT_FACT_KINDS = [
  'operator-action',
  'security-incident',
  'partner-token',
  'partner-request',
  'partner-notification',
  'access',
  'access-refused',
  'accepted',
  'rejected',
  'delivered',
  'withheld',
  'quarantined',
  'broker-start',
  'broker-stop',
  'catalog-loaded',
  'alert',
] as const satisfies readonly AuditFactKind[];
type MissingKind = Exclude<AuditFactKind, (typeof AUDIT_FACT_KINDS)[number]>;
/** Fails to compile when a kind of AuditFact is missing from AUDIT_FACT_KINDS. */
export const AUDIT_FACT_KINDS_COMPLETE: [MissingKind] extends [never] ? true : MissingKind = true;
