// The compiled catalog: what subjects/ and fhir-profiles/ declare, validated and frozen at start
// (src/runtime/catalog-dir.ts). Everything downstream (broker, SDK, projection, NATS names) reads only this.

/** HL7 v3 PurposeOfUse codes (http://terminology.hl7.org/CodeSystem/v3-ActReason) the catalog may use. */
export const PURPOSES_OF_USE = [
  'TREAT',
  'ETREAT',
  'HPAYMT',
  'HOPERAT',
  'HRESCH',
  'PUBHLTH',
  'HMARKT',
  'PATRQT',
  'HSYSADMIN',
  'COC',
  'CAREMGT',
] as const;
export type PurposeOfUse = (typeof PURPOSES_OF_USE)[number];

export type DataClassification = 'phi' | 'deidentified' | 'internal' | 'public';

export interface ServiceDef {
  readonly id: string;
  readonly owner: string;
  readonly description: string;
  /** The most sensitive class of data the service handles. */
  readonly classification: DataClassification;
  /** True for recipients outside the covered entity (partners): their deliveries are disclosures (45 CFR 164.528). */
  readonly external: boolean;
  /**
   * Set only when declared: whether deliveries to this service go into the accounting of disclosures. When absent
   * the rule is `external` (accountsDisclosures below); a covered entity may also account internal recipients.
   */
  readonly accountDisclosures?: boolean;
  /** Where this service's dev keys live, relative to the data dir (default `keys/<id>`). */
  readonly keyDir: string;
  /** An external service's registration with the partner gateway (src/catalog/partner.ts). */
  readonly partner?: PartnerDef;
  /** The file the service was declared in (for error messages). */
  readonly file: string;
}

/** Whether every delivery to `service` is a disclosure recorded for the accounting (45 CFR 164.528). */
export function accountsDisclosures(service: ServiceDef): boolean {
  return service.accountDisclosures ?? service.external;
}

/** A public JWK of a partner (RFC 7517), as declared: EC P-384, RSA or OKP Ed25519, with a kid. */
export type PartnerJwk = Readonly<Record<string, string>> & { readonly kid: string; readonly kty: string };

/**
 * A partner's registration (SMART Backend Services, http://hl7.org/fhir/smart-app-launch/backend-services.html):
 * its OAuth client id, the public keys its client assertions are signed with, the SMART v2 scopes it may be
 * granted (never wider than what the topics let it publish and receive), its rate limit and rest-hook endpoints.
 */
export interface PartnerDef {
  readonly clientId: string;
  /** The public keys its client assertions are signed with, inline; or, with `jwksUrl`, absent. */
  readonly jwks?: { readonly keys: readonly PartnerJwk[] };
  /** Where the partner serves its JWK Set (SMART `jwks_url`, https); the gateway fetches it. */
  readonly jwksUrl?: string;
  /** RFC 8705 mutual TLS: the token endpoint and every request with its tokens need this client certificate. */
  readonly mtls?: { readonly subjectDn: string };
  /** SMART v2 system scopes, as declared (`system/Coverage.rs`). */
  readonly scopes: readonly string[];
  readonly rateLimit: { readonly max: number; readonly windowSeconds: number };
  readonly restHooks: readonly string[];
}

export interface SubscriptionDef {
  readonly service: string;
  readonly profile: string;
  readonly purpose: PurposeOfUse;
}

export interface TopicDef {
  readonly resourceType: string;
  readonly publishers: readonly string[];
  readonly subscribers: readonly SubscriptionDef[];
  readonly file: string;
}

export type TransformName = 'year' | 'zip3' | 'pseudonym' | 'drop';

/** A minimum-necessary projection profile (allow-list, default deny). See docs/profiles.md. */
export interface ProfileDef {
  readonly id: string;
  readonly resourceType: string;
  /** Canonical URL written into meta.profile of every delivery this profile shapes. */
  readonly url: string;
  readonly description: string;
  /** True for de-identified consumers: no direct identifier may pass untransformed (checked at load). */
  readonly deidentified: boolean;
  /** When true, each withheld top-level element that the resource had is marked with data-absent-reason `masked`. */
  readonly markMasked: boolean;
  /**
   * Allowed FHIR element paths without indices (grammar in docs/profiles.md): `Patient.name.family`,
   * `Observation.value[x]` (every type) or `Observation.valueQuantity` (one type), `Patient.extension` (every
   * extension there) or `Patient.extension(http://hl7.org/fhir/us/core/StructureDefinition/us-core-race)` (one URL).
   * Allowing a path allows its whole subtree; allowing a descendant keeps its ancestors with only the allowed parts.
   */
  readonly allow: readonly string[];
  /** Element path → transform applied to every value at that path. */
  readonly transforms: Readonly<Record<string, TransformName>>;
  /**
   * Contained resources: resource type → allow-list for contained resources of that type (paths start with
   * that type). A contained resource of a type not listed here is removed, even when `<Type>.contained` is allowed.
   */
  readonly contained: Readonly<Record<string, readonly string[]>>;
  /**
   * Value filters on repeating elements (FHIR R4 slicing, profiling.html#slicing, discriminator type `value`):
   * element path → discriminator (a direct child primitive of that element's type) → the values an item may have.
   * Only items whose every named discriminator holds one of its values are kept; an item without it is removed.
   * `{ 'Patient.telecom': { system: ['phone', 'email'] } }`. Paths start with the profile's type or a contained type.
   */
  readonly where: Readonly<Record<string, ItemFilterDef>>;
  /**
   * Which Identifier elements pass, wherever the profile delivers one (any depth, contained resources too): an
   * identifier is kept iff some `keep` matcher holds and no `drop` matcher does. Absent: allow/where alone decide.
   */
  readonly identifiers?: IdentifierRuleDef;
  readonly file: string;
}

/**
 * Matches an Identifier by its type (a code of HL7 v2 table 0203 among `Identifier.type.coding` with system
 * http://terminology.hl7.org/CodeSystem/v2-0203) and/or its `system` (exact). Both named → both must hold.
 */
export interface IdentifierMatcherDef {
  readonly type?: string;
  readonly system?: string;
}

export interface IdentifierRuleDef {
  readonly keep: readonly IdentifierMatcherDef[];
  readonly drop: readonly IdentifierMatcherDef[];
}

/** Discriminator child name → allowed values (exact string match), for one repeating element. */
export type ItemFilterDef = Readonly<Record<string, readonly string[]>>;

/** Element classification (fhir-profiles/classification.yaml): which paths are direct identifiers or carry sensitive labels. */
export interface ClassificationDef {
  /** Paths that are direct identifiers under HIPAA Safe Harbor (45 CFR 164.514(b)(2)). */
  readonly directIdentifiers: readonly string[];
  /** Paths that are quasi-identifiers (dates, geography) a de-identified profile must generalise. */
  readonly quasiIdentifiers: readonly string[];
  /** Element paths that are never encrypted (routing and policy metadata; must not carry PHI). */
  readonly plaintext: readonly string[];
}

/** What happens to a patient-compartment resource whose patient cannot be resolved (docs/patient-rights.md). */
export type UnresolvedPatientPolicy = 'accept' | 'reject';

/**
 * How the broker decides which patient a resource is about (subjects/patients.yaml): by the literal
 * `Patient/<id>` reference (services share one patient id space), or by an identifier of one system (an MRN)
 * carried by the Patient and by the references to it (FHIR R4 logical references, references.html#logical).
 */
export type PatientMatchDef =
  | { readonly match: 'reference'; readonly unresolved: UnresolvedPatientPolicy }
  | { readonly match: 'identifier'; readonly system: string; readonly unresolved: UnresolvedPatientPolicy };

/** Without a `patients:` declaration: match by reference, accept (and count) what does not resolve. */
export const DEFAULT_PATIENT_MATCH: PatientMatchDef = Object.freeze({ match: 'reference', unresolved: 'accept' });

/**
 * Who may create right-of-access requests (45 CFR 164.524) through the SDK (`access:` in a subjects file,
 * subjects/access.yaml): the broker refuses anyone else with E_ACCESS_NOT_ALLOWED, and the generated NATS
 * permissions let only these services publish on their phi.request.access.<service> subject.
 */
export interface AccessPolicyDef {
  readonly requesters: readonly string[];
}

/** Without an `access:` declaration: no service may create access requests (operators still can, `access request`). */
export const DEFAULT_ACCESS_POLICY: AccessPolicyDef = Object.freeze({ requesters: Object.freeze([]) });

/** The key directory's pinned operator root key: an Ed25519 public key (32 bytes, from the JWK's `x`). */
export interface KeyDirectoryDef {
  readonly operatorRootKey: { readonly kty: 'OKP'; readonly crv: 'Ed25519'; readonly x: string };
}

export interface Catalog {
  readonly services: ReadonlyMap<string, ServiceDef>;
  readonly topics: ReadonlyMap<string, TopicDef>;
  readonly profiles: ReadonlyMap<string, ProfileDef>;
  readonly classification: ClassificationDef;
  /** The canonical patient matching rule (registry keys, access requests). */
  readonly patients: PatientMatchDef;
  /** Who may create right-of-access requests from the SDK. */
  readonly access: AccessPolicyDef;
  /** The operator root key pinned for the key directory (docs/keys.md); absent: development, the data dir's. */
  readonly keyDirectory?: KeyDirectoryDef;
  /** SHA-256 (hex) over the canonical form of everything above: recorded in the audit trail at start. */
  readonly hash: string;
}
