// The public shapes of a compiled minimum-necessary projection (HIPAA 45 CFR 164.502(b), 164.514(d)):
// a Projector turns one FHIR R4 resource (JSON form) into the view one subscriber's profile allows.
// Semantics are in docs/profiles.md.

/** What the broker supplies per subscriber for one projection. */
export interface ProjectionContext {
  /** Keyed pseudonym (see pseudonymizer.ts): same input, same key → same token; FHIR-id safe. */
  pseudonymize(value: string): string;
}

/**
 * Projects one resource. Returns a NEW object sharing nothing with the input (the input is never mutated).
 * Throws BrokerError `E_MODIFIER_WITHHELD` when the resource itself carries a modifier (modifierExtension,
 * implicitRules) the profile withholds: no part of it may then be delivered to that subscriber.
 */
export type Projector = (resource: Record<string, unknown>, ctx: ProjectionContext) => Record<string, unknown>;
