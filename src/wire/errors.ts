// The closed set of error codes phi-broker reports. Every rejection a caller sees carries one of these codes
// and a message that names element paths, never values (HIPAA minimum necessary, 45 CFR 164.502(b):
// an error is a disclosure channel too). A code is never reused for a new meaning; docs/errors.md lists
// every code and a test keeps the two in step.

export const ERROR_CODES = {
  E_JSON_MALFORMED: 'The input is not well-formed JSON.',
  E_NOT_FHIR: 'The input is JSON but not a FHIR resource (not an object, or no string resourceType).',
  E_UNKNOWN_RESOURCE_TYPE: 'resourceType names no FHIR R4 resource.',
  E_FHIR_INVALID:
    'The resource fails FHIR R4 model validation (required element missing, bad primitive, code outside a required value set).',
  E_UNKNOWN_ELEMENT:
    'An element that FHIR R4 does not define for that type; it would be lost, so the whole resource is rejected.',
  E_TOO_LARGE: 'The message, the resource or one of its values exceeds a configured size limit.',
  E_ENVELOPE_INVALID: 'The message is not a phi-broker envelope (see docs/wire-format.md).',
  E_SIGNATURE:
    'The signature is missing, malformed, or does not verify with the key the envelope names for its sender.',
  E_SENDER_MISMATCH: 'The sender named by the NATS subject differs from the sender in the envelope.',
  E_REPLAY: 'A message with this id was already received.',
  E_CLOCK_SKEW: 'The envelope timestamp is outside the allowed skew window of the time NATS stored it.',
  E_KEY_UNKNOWN: 'A key id that the keyring does not hold (never issued, or retired).',
  E_KEY_REVOKED: 'The message is signed with a key that was revoked before the message was stored.',
  E_KEY_DESTROYED:
    'The message is sealed to or signed with a key version whose private half was destroyed (`keys prune`): it can never be opened.',
  E_KEY_DIRECTORY_INVALID:
    'A key directory entry is malformed, not signed by the pinned operator root key, or older than the one in force.',
  E_DECRYPT: 'A field or a wrapped key could not be decrypted or authenticated.',
  E_NOT_AUTHORIZED: 'The sender may not publish this resource type, or the subscriber may not receive it (catalog).',
  E_BUNDLE_INVALID:
    'A Bundle entry cannot be published on its own (no resource, or a reference to an entry that is not there).',
  E_MODIFIER_WITHHELD:
    "The resource carries a modifier (modifierExtension, implicitRules) the subscriber's profile withholds; the rest would change meaning, so nothing is delivered to that subscriber.",
  E_CATALOG_INVALID: 'The catalog (subjects/, fhir-profiles/) is invalid.',
  E_CONFIG_INVALID: 'The configuration is invalid.',
  E_KEY_PROTECTION:
    'A private key file is not protected the way the start asks: a plain key file where a key provider is configured (or an encrypted one with none), a file sealed by another provider, or a provider without its secret (passphrase unset, key file missing or readable by others).',
  E_KEY_UNLOCK:
    "The key provider could not unwrap a protected key file's data key: a wrong passphrase or key file, or a wrapped key that was altered.",
  E_KEY_FILE_INVALID:
    'A protected key file is damaged or altered: its header is not the documented format, or its ciphertext does not authenticate under its data key.',
  E_TIMEOUT:
    'The broker did not answer a request (right of access) in time; the request may still have been carried out.',
  E_NOT_STORED:
    'JetStream acknowledged no attempt to store the message by the publish deadline (or refused it): it is not in PHI_INGEST unless the result says inDoubt; safe to publish again.',
  E_QUEUE_FULL:
    'The client already holds maxPendingPublishes messages waiting for JetStream; this one was not sent (backpressure); publish it again later.',
  E_USAGE:
    'A command was given an option value it cannot use (an unknown service, a malformed date or outcome); the message names the option.',
  E_INTERNAL: 'An unexpected failure inside the broker; details are in its logs, never in the reply.',
  E_CONSENT_INVALID:
    "A patient restriction (FHIR Consent) is invalid: an unknown recipient service, purpose of use or sensitivity label, no denial at all, or a stored Consent whose patient does not resolve under the catalog's rule.",
  E_CONSENT_UNKNOWN: 'No patient restriction (FHIR Consent) has that id.',
  E_PATIENT_UNRESOLVED:
    "No patient resolves under the catalog's canonical matching rule (subjects/patients.yaml), which rejects such resources or references.",
  E_ACCESS_UNKNOWN: 'No right-of-access request has this id.',
  E_ACCESS_EXTENDED:
    'A right-of-access request may be extended once (45 CFR 164.524(b)(2)(ii)); this one already was, or is closed.',
  E_ACCESS_EXTENSION_LATE:
    'A right-of-access request may be extended only within its first 30 days (45 CFR 164.524(b)(2)(ii)); its due date has passed.',
  E_ACCESS_NOT_ALLOWED:
    "The service may not create right-of-access requests (not among the catalog's access requesters), or asked about a request it did not create.",
  E_ACCESS_PARTS:
    'A right-of-access answer sent in parts does not reassemble: a part missing, marked as another part, or the whole not of the length and SHA-256 its manifest declared.',
  E_ACCESS_OTHER_PATIENT:
    "A right-of-access answer holds a resource about another patient than the one asked (the catalog's canonical matching rule); none of that answer is kept.",
  E_AUDIT_CHAIN:
    'The broker could not append to its audit chain (JetStream did not store the record, or another writer appended to the chain); nothing is acknowledged until it can.',
  E_DATA_DIR_LOCKED:
    'Another phi-broker process holds the data directory (its up.lock names a live process); a second embedded nats-server on one JetStream store would lose messages.',
  E_NATS_SERVER_FAILED:
    'The embedded nats-server could not be run: it exited and was not back within the restart bound, or a nats-server left on the same store would not stop.',
  E_AUDIT_UNRECORDED:
    'An operator command could not store the AuditEvent of its compliance action; a command that reads showed nothing, one that writes reports its change made but not audited.',
  E_AUDIT_INTEGRITY:
    'The audit trail is weaker or shorter than it must be: PHI_AUDIT or PHI_AUDIT_WITNESS has lost a setting (retention, deny delete/purge, storage, replicas), or a chain ends before its last witnessed head.',
  E_KV_CONTENDED:
    'A compare-and-set on a JetStream KV key lost to other writers in every one of its bounded attempts; nothing was written, and the operation may be tried again.',
  E_STORED_INVALID:
    'A value read back from a JetStream stream, KV bucket or object store is missing or not in the shape phi-broker writes (damaged, or written by another version); it is not used.',
  E_NATS_UNREACHABLE:
    'No NATS server answered at the URL the command uses (NATS_URL, or the running up of the data dir); the message names the URL and the reason.',
  E_SETUP_MISSING:
    'Something phi-broker needs is missing (the nats-server executable, development certificates, its own package files, a delivery consumer not yet provisioned); the message names the command that provides it.',
  E_PARTNER_AUTH:
    "A partner's SMART Backend Services client assertion is refused: not a JWT, an algorithm other than RS384/ES384/EdDSA, a kid not among that client's registered keys, a signature that does not verify, iss/sub not the client id, aud not the token URL, expired or more than five minutes ahead, a jti already used, a jku other than the registered JWKS URL, or (partner.mtls) no client certificate with the registered subject.",
  E_PARTNER_JWKS:
    "A partner's registered JWKS URL (partner.jwksUrl) could not be used to check its client assertion: unreachable, timed out, not 200 OK, or not a JWK Set.",
  E_PARTNER_SCOPE: 'A partner asked for a scope wider than its catalog registration (partner.scopes), or for none.',
  E_PARTNER_REQUEST:
    'A request to the partner gateway is malformed: a missing or repeated parameter, an unsupported grant type or client assertion type, a body that is not the expected media type.',
  E_SUBSCRIPTION_INVALID:
    'A Subscription a partner posted does not follow the R4 Subscriptions Backport profile the gateway serves (topic, channel, endpoint, payload).',
  E_SUBSCRIPTION_UNKNOWN: 'No subscription of this partner has that id.',
  E_SUBSCRIPTION_DELETED: 'The partner deleted that subscription (DELETE /Subscription/[id]); it sends nothing more.',
  E_RESOURCE_UNKNOWN: 'The partner gateway holds no copy of that resource for this partner (GET /[type]/[id]).',
  E_RESOURCE_EXPIRED:
    "The partner's copy of that resource was held by the gateway and has passed its retention (GET /[type]/[id]).",
  E_RATE_LIMITED:
    "A partner exceeded its catalog rate limit (partner.rateLimit); retry after the Retry-After header's seconds.",
  E_RATE_LIMIT_UNAVAILABLE:
    "The partner gateway could not count a request against the shared rate-limit counters (NATS KV phi_gateway_rate unreachable, failing or contended): the request is refused, never let through uncounted; retry after the Retry-After header's seconds.",
  E_PARTNER_TOKEN:
    "A partner's FHIR request carries no access token, or one the gateway did not issue, for another audience, or expired (RFC 6750 invalid_token).",
  E_PARTNER_IDEMPOTENCY:
    'A partner request reuses an idempotency key (Idempotency-Key, If-None-Exist, Bundle.id or MessageHeader.id) with another body, or while the first request with that key is still being answered.',
  E_QUARANTINE_QUOTA:
    'The message was rejected and its sender is over its quarantine quota (bytes or count per window, per broker process): only a small record (id, code, path, size) is kept, not the input.',
  E_QUARANTINE_FULL:
    'The message was rejected and PHI_QUARANTINE is full (quarantineMaxBytes, discard new): nothing of the input is kept; the rejection is in the audit trail.',
  E_SENDER_THROTTLED:
    "The message was rejected and its sender is over its rejection rate (rejections per window, per broker process): the input is not kept; the rejection is counted in one summary quarantine record and AuditEvent per sender per window, and the receipt's message names the code it was rejected with.",
} as const satisfies Record<`E_${string}`, string>;

export type BrokerErrorCode = keyof typeof ERROR_CODES;

export function isBrokerErrorCode(value: unknown): value is BrokerErrorCode {
  return typeof value === 'string' && Object.hasOwn(ERROR_CODES, value);
}

/**
 * A coded failure. `message` must name element paths and never values; `path` is the element path
 * (FHIR dotted form with indices, e.g. `Patient.name[0].family`) or file path the error is about.
 */
export class BrokerError extends Error {
  override readonly name = 'BrokerError';
  readonly code: BrokerErrorCode;
  readonly path: string | undefined;

  constructor(code: BrokerErrorCode, message: string, options?: { path?: string; cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.path = options?.path;
  }

  /** The shape sent over the wire: code, message and path only (never a cause or a stack). */
  toJSON(): { code: BrokerErrorCode; message: string; path?: string } {
    return this.path === undefined
      ? { code: this.code, message: this.message }
      : { code: this.code, message: this.message, path: this.path };
  }
}

export function isBrokerError(e: unknown): e is BrokerError {
  return e instanceof BrokerError;
}
