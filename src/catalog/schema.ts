// The shapes of the catalog's YAML files (zod v4): subjects/*.yaml (services and topics), fhir-profiles/<id>.yaml
// (one ProfileDef each) and fhir-profiles/classification.yaml. Shape only: cross-file and FHIR checks live in
// compile.ts, profile-check.ts and deidentification.ts. docs/catalog.md shows each format.
import { z } from 'zod';
import { PURPOSES_OF_USE } from './types.js';
import { SERVICE_ID_PATTERN } from '../wire/ids.js';

const serviceId = z
  .string()
  .regex(
    SERVICE_ID_PATTERN,
    'expected a service id: a lowercase letter, then lowercase letters, digits or dashes (at most 63)',
  );

/** FHIR `id` (R4 §2.24.0.1): the profile id is also the StructureDefinition id it exports as. */
export const PROFILE_ID_PATTERN = /^[A-Za-z0-9\-.]{1,64}$/;
const profileId = z
  .string()
  .regex(PROFILE_ID_PATTERN, 'expected a profile id: letters, digits, dashes or dots (FHIR id, at most 64)');

const relativeDir = z
  .string()
  .min(1)
  .refine(
    (s) => !s.startsWith('/') && !s.split(/[\\/]/).includes('..'),
    'expected a relative folder inside the data dir (no leading /, no ..)',
  );

/** An OAuth client_id: also a NATS KV key token (the gateway's jti bucket keys on it), so no dots or spaces. */
export const CLIENT_ID_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;

/** An RFC 4514 distinguished name without escapes or multi-valued RDNs: `CN=a,OU=b,O=c`. */
export const SUBJECT_DN_PATTERN = /^[A-Za-z][A-Za-z0-9]*=[^,+=\\"<>#;]+(,[A-Za-z][A-Za-z0-9]*=[^,+=\\"<>#;]+)*$/;

/**
 * A public JWK of a partner (RFC 7517): the signature algorithms SMART Backend Services names (RS384, ES384) and
 * EdDSA. Only the public members are accepted; `d`, `p`, `q`, … (private parts) are unknown keys and refused.
 */
export const partnerJwkSchema = z.discriminatedUnion('kty', [
  z.strictObject({
    kty: z.literal('EC'),
    crv: z.literal('P-384', 'expected crv P-384 (ES384)'),
    x: z.string().min(1),
    y: z.string().min(1),
    kid: z.string().min(1, 'expected a kid'),
    alg: z.literal('ES384').optional(),
    use: z.literal('sig').optional(),
  }),
  z.strictObject({
    kty: z.literal('RSA'),
    n: z.string().min(342, 'expected an RSA modulus of at least 2048 bits'),
    e: z.string().min(1),
    kid: z.string().min(1, 'expected a kid'),
    alg: z.literal('RS384').optional(),
    use: z.literal('sig').optional(),
  }),
  z.strictObject({
    kty: z.literal('OKP'),
    crv: z.literal('Ed25519', 'expected crv Ed25519 (EdDSA)'),
    x: z.string().min(1),
    kid: z.string().min(1, 'expected a kid'),
    alg: z.literal('EdDSA').optional(),
    use: z.literal('sig').optional(),
  }),
]);

/** The `partner:` block of an external service (docs/partner-gateway.md): how it authenticates and what it may ask. */
export const partnerSchema = z.strictObject({
  clientId: z.string().regex(CLIENT_ID_PATTERN, 'expected a client id: letters, digits, _ or - (at most 64)'),
  /** Exactly one of `jwks` (the keys inline) and `jwksUrl` (where the partner serves them); partner.ts checks. */
  jwks: z.strictObject({ keys: z.array(partnerJwkSchema).min(1, 'expected at least one public key') }).optional(),
  /** SMART Backend Services `jwks_url`: https only, no credentials or fragment in it. */
  jwksUrl: z
    .url({ protocol: /^https$/, error: 'expected an https URL' })
    .refine((u) => {
      const url = new URL(u);
      return url.username === '' && url.password === '' && url.hash === '';
    }, 'expected an https URL without user, password or fragment')
    .optional(),
  /** RFC 8705 §2.1 PKI mutual-TLS client authentication: the client certificate's subject DN (RFC 4514). */
  mtls: z
    .strictObject({
      subjectDn: z
        .string()
        .regex(
          SUBJECT_DN_PATTERN,
          'expected an RFC 4514 subject DN of attribute=value pairs, e.g. CN=partner-payer,OU=partner,O=phi-broker (no escaped characters)',
        ),
    })
    .optional(),
  /** SMART v2 system scopes (`system/Coverage.rs`); checked against the topics in compile.ts. */
  scopes: z.array(z.string()).min(1, 'expected at least one scope'),
  rateLimit: z
    .strictObject({
      max: z.number().int().min(1).max(100_000),
      windowSeconds: z.number().int().min(1).max(3600),
    })
    .default({ max: 60, windowSeconds: 60 }),
  restHooks: z.array(z.url({ protocol: /^https$/, error: 'expected an https URL' })).default([]),
});

export const serviceSchema = z.strictObject({
  id: serviceId,
  owner: z.string().min(1, 'expected the owning team'),
  description: z.string().min(1, 'expected a description'),
  classification: z.enum(['phi', 'deidentified', 'internal', 'public']),
  external: z.boolean().default(false),
  /** Account every delivery to this service as a disclosure (45 CFR 164.528); default: the value of `external`. */
  accountDisclosures: z.boolean().optional(),
  keyDir: relativeDir.optional(),
  partner: partnerSchema.optional(),
});

export const subscriberSchema = z.strictObject({
  service: serviceId,
  profile: profileId,
  purpose: z.enum(PURPOSES_OF_USE),
});

export const topicSchema = z.strictObject({
  publishers: z.array(serviceId).min(1, 'expected at least one publisher'),
  subscribers: z.array(subscriberSchema).min(1, 'expected at least one subscriber'),
});

/** A subjects file: checked at the top level first, then item by item so one bad item hides no other problem. */
export const subjectsFileSchema = z
  .strictObject({
    services: z.array(z.unknown()).optional(),
    topics: z.record(z.string(), z.unknown()).optional(),
    patients: z.unknown().optional(),
    access: z.unknown().optional(),
    keyDirectory: z.unknown().optional(),
  })
  .refine(
    (f) =>
      f.services !== undefined ||
      f.topics !== undefined ||
      f.patients !== undefined ||
      f.access !== undefined ||
      f.keyDirectory !== undefined,
    'expected services, topics, patients, access and/or keyDirectory',
  );

/**
 * The key directory's trust anchor (docs/keys.md; `keyDirectory:` in a subjects file): the public half of the
 * operator root key, an Ed25519 JWK (RFC 8037), that every directory entry's JWS must verify under.
 */
export const keyDirectorySchema = z.strictObject({
  operatorRootKey: z.strictObject({
    kty: z.literal('OKP'),
    crv: z.literal('Ed25519'),
    x: z.string().regex(/^[A-Za-z0-9_-]{43}$/, 'expected a 32-byte Ed25519 public key in base64url'),
    kid: z.string().min(1).optional(),
  }),
});

/**
 * Right of access from the SDK (45 CFR 164.524; `access:` in a subjects file, e.g. subjects/access.yaml): the
 * services that may create access requests on a patient's behalf (a patient portal). Default: none.
 */
export const accessSchema = z.strictObject({
  requesters: z.array(serviceId),
});

export const TRANSFORM_NAMES = ['year', 'zip3', 'pseudonym', 'drop'] as const;

/** One identifier matcher: a v2-0203 type code and/or a system URI; both named → both must hold. */
const identifierMatcherSchema = z
  .strictObject({
    type: z.string().min(1, 'expected a v2-0203 code').optional(),
    system: z.string().min(1, 'expected a system URI').optional(),
  })
  .refine((m) => m.type !== undefined || m.system !== undefined, 'expected type and/or system');

export const profileSchema = z.strictObject({
  id: profileId,
  resourceType: z.string().min(1),
  url: z.url({ protocol: /^https?$/, error: 'expected an http(s) URL' }).optional(),
  description: z.string().min(1, 'expected a description'),
  deidentified: z.boolean().default(false),
  markMasked: z.boolean().default(false),
  allow: z.array(z.string()).min(1, 'expected at least one allowed path (default deny)'),
  transforms: z.record(z.string(), z.enum(TRANSFORM_NAMES)).default({}),
  contained: z.record(z.string(), z.array(z.string()).min(1, 'expected at least one allowed path')).default({}),
  where: z
    .record(
      z.string(),
      z
        .record(
          z.string(),
          z.array(z.string().min(1, 'expected a non-empty value')).min(1, 'expected at least one value to keep'),
        )
        .refine((d) => Object.keys(d).length > 0, 'expected at least one discriminator: { <child element>: [values] }'),
    )
    .default({}),
  /** Which Identifier elements pass, at any depth (identifier-rule.ts). Absent: no rule beyond allow/where. */
  identifiers: z
    .strictObject({
      keep: z.array(identifierMatcherSchema).min(1, 'expected at least one keep matcher (default deny)'),
      drop: z.array(identifierMatcherSchema).default([]),
    })
    .optional(),
});

export const classificationSchema = z.strictObject({
  directIdentifiers: z.array(z.string()),
  quasiIdentifiers: z.array(z.string()),
  plaintext: z.array(z.string()),
});

export type PartnerInput = z.output<typeof partnerSchema>;
export type ServiceInput = z.output<typeof serviceSchema>;
export type TopicInput = z.output<typeof topicSchema>;
export type ProfileInput = z.output<typeof profileSchema>;
export type ClassificationInput = z.output<typeof classificationSchema>;
