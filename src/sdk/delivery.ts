// A delivery as a subscriber receives it: verified against the broker's signature over the exact bytes,
// addressed to this service, opened with the key it shares with the broker, with its provenance
// (DESIGN.md wire-format property 4). Pure: no NATS here; src/sdk/client.ts acks, naks or terminates.
import type { FhirResource } from 'fhir/r4.js';
import { BROKER_ID } from '../wire/ids.js';
import type { Keyring } from '../crypto/keyring.js';
import { isBatchSig, parseBatchProof, verifyBatchProof, VerifiedRoots } from '../envelope/batch-sig.js';
import { openEnvelope, parseEnvelope, verifyEnvelope, type Envelope } from '../envelope/open.js';
import { BrokerError } from '../wire/errors.js';
import { stringifyJson } from '../wire/json.js';

export interface Provenance {
  /** The service that published the original message. */
  readonly publisher: string;
  readonly messageId: string;
  readonly deliveryId: string;
  /** SHA-256 (base64url) of the original envelope bytes. */
  readonly hash: string;
  readonly publishedAt: Date;
  readonly deliveredAt: Date;
  /** Canonical URL of the profile that shaped this copy (also in meta.profile). */
  readonly profile: string;
  /** HL7 v3 PurposeOfUse code of this subscription. */
  readonly purpose: string;
}

/** A FHIR R4 resource type name, e.g. `'Patient'` (from the FHIR R4 type definitions, @types/fhir). */
export type ResourceType = FhirResource['resourceType'];
/** The FHIR R4 type of a resource type name; `'*'` is any resource. */
export type ResourceOf<T extends ResourceType | '*'> = T extends ResourceType
  ? Extract<FhirResource, { resourceType: T }>
  : FhirResource;

export interface Delivered<R = FhirResource> {
  /**
   * The resource as `JSON.parse(resourceJson)` gives it: numbers are JS numbers (doubles), so `6.30` reads as `6.3`
   * and an integer beyond 2^53 is rounded. Use `resourceJson` where a decimal's precision matters.
   */
  readonly resource: R;
  /**
   * The resource as FHIR JSON text with every number exactly as its publisher wrote it (`6.30`, `1.0e2`, `-0`):
   * FHIR R4 keeps a decimal's precision (datatypes.html#decimal). Parse it with a lexeme-keeping parser
   * (e.g. lossless-json) or store it as it is.
   */
  readonly resourceJson: string;
  readonly provenance: Provenance;
}

/** Verified batch roots shared by the callers that pass none (the gateway's partner delivery reader). */
const SHARED_ROOTS = new VerifiedRoots();

/**
 * Parses and verifies a delivery: issued by the broker (E_SIGNATURE), under a broker key this client holds
 * (E_KEY_UNKNOWN: the broker may have rotated; retry later), with a valid signature (E_SIGNATURE): v1, one signature
 * over the bytes, or v2, an inclusion path to a batch's signed root (docs/wire-format.md), checked once per root.
 */
export function verifyDelivery(
  data: Uint8Array,
  sig: string | undefined,
  keyring: Keyring,
  brokerSigningKeys: ReadonlySet<string>,
  roots: VerifiedRoots = SHARED_ROOTS,
): Envelope {
  const env = parseEnvelope(data);
  if (env.iss !== BROKER_ID)
    throw new BrokerError('E_SIGNATURE', 'delivery is not signed by the broker', { path: 'iss' });
  if (!brokerSigningKeys.has(env.kid))
    throw new BrokerError('E_KEY_UNKNOWN', 'delivery is signed with a broker key this client does not hold', {
      path: 'kid',
    });
  if (!isBatchSig(sig)) {
    verifyEnvelope(data, sig, keyring.signingPublicKey(env.kid));
    return env;
  }
  const proof = parseBatchProof(sig);
  if (proof.kid !== env.kid)
    throw new BrokerError('E_SIGNATURE', 'batch signature names another key than the delivery', { path: 'kid' });
  verifyBatchProof('delivery', data, proof, keyring.signingPublicKey(env.kid), roots);
  return env;
}

/** Opens a verified delivery for `service`; one not addressed to it is E_ENVELOPE_INVALID (permanent). */
export function openDelivery<R>(env: Envelope, service: string, keyring: Keyring): Delivered<R> {
  const wrap = env.keys.find((k) => k.to === service);
  if (wrap === undefined)
    throw new BrokerError('E_ENVELOPE_INVALID', 'delivery is not addressed to this service', { path: 'keys' });
  const resourceJson = stringifyJson(openEnvelope(env, service, keyring.kekForId(wrap.kek)));
  const resource = JSON.parse(resourceJson) as R;
  const prov = env.prov;
  if (prov?.profile === undefined || prov.purpose === undefined) {
    throw new BrokerError('E_ENVELOPE_INVALID', 'delivery has no provenance (publisher, profile, purpose)', {
      path: 'prov',
    });
  }
  return {
    resource,
    resourceJson,
    provenance: {
      publisher: prov.src,
      messageId: prov.mid,
      deliveryId: env.id,
      hash: prov.hash,
      publishedAt: new Date(prov.at),
      deliveredAt: new Date(env.iat),
      profile: prov.profile,
      purpose: prov.purpose,
    },
  };
}

/** Exponential backoff for redeliveries: 1 s, 2 s, 4 s … capped at 5 minutes. */
export function redeliveryDelay(redeliveryCount: number): number {
  return Math.min(1_000 * 2 ** Math.max(0, Math.min(redeliveryCount, 20)), 5 * 60_000);
}
