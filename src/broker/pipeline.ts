// The broker's per-message decision, as pure functions over bytes and the compiled catalog (no I/O):
//   checkEnvelope: subject ↔ envelope sender ↔ signing key owner, signature over the exact bytes,
//                  publish permission, clock skew (HIPAA 164.312(c) integrity, 164.312(d) authentication);
//   routeMessage:  decrypt, validate FHIR R4, resolve the patients once (refusing an unresolved one when the
//                  catalog says so), and for each subscriber project to its minimum-necessary profile
//                  (164.502(b)) and seal + sign a delivery for it alone.
// Replay detection needs shared state and lives at the edge (broker.ts), between the two.
import { DEFAULT_PATIENT_MATCH, type PatientMatchDef } from '../catalog/types.js';
import { BROKER_ID, deliveryId } from '../wire/ids.js';
import { restrictionCheck, type Denial, type RestrictionPolicy } from '../consent/decide.js';
import type { Keyring } from '../crypto/keyring.js';
import type { SigningKeyPair } from '../crypto/keys.js';
import { BrokerError } from '../wire/errors.js';
import { parseResourceJson } from '../wire/json.js';
import { formatPath } from '../fhir/json-path.js';
import { openEnvelope, parseEnvelope, verifyEnvelope, type Envelope } from '../envelope/open.js';
import { envelopeHash } from '../envelope/provenance.js';
import { sealEnvelope, sealEnvelopeBytes, type SealInput } from '../envelope/seal.js';
import { isRawPayload } from '../envelope/types.js';
import { MESSAGE_ID_PATTERN } from '../wire/ids.js';
import { disclosedElements } from '../disclosures/elements.js';
import { isResourceType } from '../fhir/elements.js';
import type { FhirResource } from '../fhir/resource.js';
import type { ValidationLimits } from '../fhir/limits.js';
import { validateResource } from '../fhir/validate.js';
import { RAW_TYPE, parseIngestSubject, subjects } from '../wire/names.js';
import { refuseUnresolved, resolveMessagePatients, type MessagePatients } from '../registry/message-patients.js';
import type { RouteTable } from './routes.js';

export interface PipelineContext {
  readonly keyring: Keyring;
  readonly signer: SigningKeyPair;
  readonly routes: RouteTable;
  readonly limits: ValidationLimits;
  readonly maxMessageBytes: number;
  /** Largest delivery envelope that fits in one NATS message. */
  readonly maxDeliveryBytes: number;
  readonly clockSkewMs: number;
  /** How long the replay cache remembers an id (src/config/config.ts). */
  readonly replayWindowMs: number;
  /** Keyed pseudonym function for one subscriber (a different key per subscriber, so tokens do not link across them). */
  readonly pseudonymizerFor: (service: string) => (value: string) => string;
  readonly now: () => number;
  /** Seal deliveries unsigned, for a batch signature over many (src/broker/batch-signer.ts, docs/wire-format.md). */
  readonly batchSigned?: boolean;
  /** Patient restrictions (45 CFR 164.522; src/consent/), checked per subscriber before projection. */
  readonly restrictions?: RestrictionPolicy;
  /** Recipients whose deliveries are disclosures to account for (45 CFR 164.528; src/disclosures/). */
  readonly accountedRecipients?: ReadonlySet<string>;
  /**
   * Which patients a message is about: the catalog's canonical rule (src/registry/patient-key.ts) and the broker's
   * keyed pseudonym (src/registry/pseudonym.ts), applied once per message (src/registry/message-patients.ts) for
   * restrictions, disclosures, the registry and the audit trail. Default: `Patient/<id>` references, no pseudonyms
   * (nothing can be restricted; disclosures are recorded as unresolved).
   */
  readonly patients?: { readonly rule: PatientMatchDef; readonly pseudonymOf: (ref: string) => string };
}

export interface IngestMessage {
  readonly subject: string;
  readonly data: Uint8Array;
  readonly signature: string | undefined;
  /** When JetStream stored the message (ms since epoch): the reference for the skew check. */
  readonly storedAtMs: number;
}

export interface CheckedEnvelope {
  readonly env: Envelope;
  readonly sender: string;
  readonly type: string;
  /** SHA-256 (base64url) of the exact ingest bytes: the provenance hash every delivery carries. */
  readonly hash: string;
}

export interface Delivery {
  readonly service: string;
  readonly subject: string;
  /** JetStream de-duplication id: stable across broker redeliveries of the same ingest message. */
  readonly msgId: string;
  readonly bytes: Uint8Array;
  /** The v1 Phi-Sig header value; absent when `ctx.batchSigned` leaves the signing to the caller's batch. */
  readonly sig?: string;
  readonly profileUrl: string;
  readonly purpose: string;
  /** The KEK id the delivery's data key is wrapped under (`<broker enc kid>~<recipient enc kid>`): the key released to the recipient. */
  readonly kek: string;
  /** Set for an accounted recipient: whom the delivery is about (pseudonyms; undefined: unresolved; a Bundle's entries' patients) and what it disclosed. */
  readonly disclosure?: { readonly patients: readonly (string | undefined)[]; readonly elements: readonly string[] };
}

export function checkEnvelope(msg: IngestMessage, ctx: PipelineContext): CheckedEnvelope {
  const route = parseIngestSubject(msg.subject);
  if (route === undefined) throw new BrokerError('E_ENVELOPE_INVALID', 'subject is not phi.ingest.<service>.<Type>');
  if (msg.data.byteLength > ctx.maxMessageBytes) {
    throw new BrokerError(
      'E_TOO_LARGE',
      `message is ${msg.data.byteLength} bytes; the limit is ${ctx.maxMessageBytes}`,
    );
  }
  const env = parseEnvelope(msg.data);
  if (env.iss !== route.service) {
    throw new BrokerError('E_SENDER_MISMATCH', 'envelope iss differs from the sender named by the subject', {
      path: 'iss',
    });
  }
  if (env.typ !== route.type) {
    throw new BrokerError('E_ENVELOPE_INVALID', 'envelope typ differs from the resource type named by the subject', {
      path: 'typ',
    });
  }
  // parseEnvelope has already refused a kid of another service than iss (E_SIGNATURE), and iss is the subject's.
  verifyEnvelope(msg.data, msg.signature, ctx.keyring.signingPublicKey(env.kid, msg.storedAtMs));
  if (env.typ !== RAW_TYPE && !isResourceType(env.typ)) {
    throw new BrokerError('E_UNKNOWN_RESOURCE_TYPE', 'resourceType names no FHIR R4 resource', {
      path: 'resourceType',
    });
  }
  const typeRoute = env.typ === RAW_TYPE ? undefined : ctx.routes.get(env.typ);
  if (env.typ !== RAW_TYPE && (typeRoute === undefined || !typeRoute.publishers.has(route.service))) {
    throw new BrokerError('E_NOT_AUTHORIZED', `service ${route.service} may not publish ${env.typ}`, { path: 'typ' });
  }
  if (Math.abs(env.iat - msg.storedAtMs) > ctx.clockSkewMs) {
    throw new BrokerError(
      'E_CLOCK_SKEW',
      `iat is more than ${ctx.clockSkewMs} ms from the time the message was stored`,
      { path: 'iat' },
    );
  }
  // Each delivery's id is `<id>.<subscriber>` and must itself be a message id (at most 128 characters): an id
  // too long for that is refused here with a code, rather than failing later as an internal error.
  if (
    typeRoute !== undefined &&
    !typeRoute.subscribers.every((s) => MESSAGE_ID_PATTERN.test(`${env.id}.${s.service}`))
  ) {
    throw new BrokerError(
      'E_ENVELOPE_INVALID',
      'envelope field id: too long to form the delivery ids <id>.<subscriber> (128 characters at most)',
      { path: 'id' },
    );
  }
  // The replay cache remembers an id for replayWindowMs after its first processing (at or after iat − skew):
  // beyond that a copy could pass unnoticed, so a message that old is refused rather than trusted.
  if (ctx.now() - env.iat > ctx.replayWindowMs - ctx.clockSkewMs) {
    throw new BrokerError(
      'E_CLOCK_SKEW',
      `iat is older than the replay window (${ctx.replayWindowMs} ms): it can no longer be checked for replay; publish it again`,
      { path: 'iat' },
    );
  }
  const hash = envelopeHash(msg.data);
  return { env, sender: route.service, type: env.typ, hash };
}

/** Parses raw-mode input so that what is not JSON (or repeats a member name), or not FHIR, is rejected with its own code. */
function parseRaw(raw: Uint8Array): unknown {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(raw);
  } catch {
    throw new BrokerError('E_JSON_MALFORMED', 'input is not UTF-8 text');
  }
  return parseResourceJson(text, formatPath);
}

/** A Bundle.entry the SDK could not publish on its own (it sends those raw, to be quarantined). */
function isBundleEntry(json: unknown): boolean {
  if (typeof json !== 'object' || json === null || Array.isArray(json) || 'resourceType' in json) return false;
  return 'fullUrl' in json || 'request' in json || 'resource' in json || 'response' in json;
}

/** What one message becomes: deliveries, and subscribers denied a copy (with the reason code). */
export interface Routed {
  readonly deliveries: readonly Delivery[];
  readonly withheld: readonly { readonly service: string; readonly error: BrokerError }[];
  /** Subscribers a patient restriction denied a copy (45 CFR 164.522), with the deciding Consent. */
  readonly restricted: readonly { readonly service: string; readonly purpose: string; readonly denial: Denial }[];
  /** The patients it is about, resolved and pseudonymised once (PHI, in memory only): for the registry plan and, as pseudonyms only, the audit facts. */
  readonly patients: MessagePatients;
  /** The resource's logical id (for the audit trail, which records only its keyed pseudonym; never logged: it may be PHI). */
  readonly resourceId: string | undefined;
  /** The KEK id the broker unwrapped the publisher's data key with (key use, for the audit trail). */
  readonly unwrapKek: string;
}

/** A verified message opened and validated: the resource (PHI, in memory only) and the KEK that unwrapped it. */
export interface Opened {
  readonly resource: FhirResource;
  readonly unwrapKek: string;
}

/** Decrypts, validates FHIR R4, projects and seals: openMessage then projectMessage (the broker times them apart). */
export function routeMessage(checked: CheckedEnvelope, ctx: PipelineContext): Routed {
  return projectMessage(checked, openMessage(checked, ctx), ctx);
}

/** Decrypts the fields and validates the resource (FHIR R4, the catalog's limits). */
export function openMessage(checked: CheckedEnvelope, ctx: PipelineContext): Opened {
  const { env } = checked;
  const wrap = env.keys.find((k) => k.to === BROKER_ID);
  if (wrap === undefined)
    throw new BrokerError('E_KEY_UNKNOWN', 'no data key is wrapped for the broker', { path: 'keys' });
  const kek = ctx.keyring.kekForId(wrap.kek);
  const opened = openEnvelope(env, BROKER_ID, kek);
  let json: unknown = opened;
  if (isRawPayload(opened)) {
    json = parseRaw(opened.raw);
    if (isBundleEntry(json)) {
      throw new BrokerError(
        'E_BUNDLE_INVALID',
        'Bundle.entry: an entry that cannot stand alone (no resource, or an unresolved reference)',
        { path: 'Bundle.entry' },
      );
    }
    // A raw envelope that does hold a FHIR resource still goes through every check below, but a sender
    // that could not state its type is never routed: it is rejected after validation tells it why.
  }
  const resource = validateResource(json, ctx.limits);
  if (env.typ === RAW_TYPE) {
    throw new BrokerError('E_ENVELOPE_INVALID', 'raw input is never routed; publish it as a typed resource', {
      path: 'typ',
    });
  }
  if (resource.resourceType !== env.typ) {
    throw new BrokerError('E_ENVELOPE_INVALID', 'envelope typ differs from resourceType', { path: 'resourceType' });
  }
  return { resource, unwrapKek: kek.id };
}

/** Resolves the patients, applies restrictions, and projects, seals and signs one delivery per subscriber. */
export function projectMessage(checked: CheckedEnvelope, opened: Opened, ctx: PipelineContext): Routed {
  const { env, sender } = checked;
  const { resource } = opened;
  const route = ctx.routes.get(env.typ);
  if (route === undefined) throw new BrokerError('E_NOT_AUTHORIZED', `no route for ${env.typ}`, { path: 'typ' });
  const now = ctx.now();
  const deliveries: Delivery[] = [];
  const withheld: { service: string; error: BrokerError }[] = [];
  const restricted: { service: string; purpose: string; denial: Denial }[] = [];
  const rule = ctx.patients?.rule ?? DEFAULT_PATIENT_MATCH;
  const patients = resolveMessagePatients(resource, rule, ctx.patients?.pseudonymOf);
  // A catalog that rejects unresolved patients decides here, before any subscriber's copy is projected, sealed or signed.
  refuseUnresolved(patients, rule);
  const restrict =
    ctx.restrictions === undefined ? undefined : restrictionCheck(ctx.restrictions, resource, patients.pseudonymOf);
  const accounted = ctx.accountedRecipients;
  for (const sub of route.subscribers) {
    const denial = restrict?.(sub.service, sub.purpose);
    if (denial !== undefined) {
      restricted.push({ service: sub.service, purpose: sub.purpose, denial });
      continue;
    }
    let projected: Record<string, unknown>;
    try {
      projected = sub.project(resource as unknown as Record<string, unknown>, {
        pseudonymize: ctx.pseudonymizerFor(sub.service),
      });
    } catch (err) {
      // A profile that cannot carry the resource faithfully (e.g. it withholds a modifierExtension that
      // changes the meaning of what remains) denies this one subscriber; the others still get their copy.
      if (err instanceof BrokerError && err.code === 'E_MODIFIER_WITHHELD') {
        withheld.push({ service: sub.service, error: err });
        continue;
      }
      throw err;
    }
    const recipientKey = ctx.keyring.encryptionKeyOf(sub.service);
    const recipientKek = ctx.keyring.kekFor(recipientKey.kid);
    const id = deliveryId(env.id, sub.service);
    const input: SealInput = {
      id,
      iss: BROKER_ID,
      iat: now,
      typ: env.typ,
      resource: projected,
      signer: ctx.signer,
      recipients: [{ id: sub.service, kek: recipientKek }],
      prov: {
        src: sender,
        mid: env.id,
        hash: checked.hash,
        profile: sub.profileUrl,
        purpose: sub.purpose,
        at: env.iat,
      },
    };
    const sealed = ctx.batchSigned === true ? { bytes: sealEnvelopeBytes(input) } : sealEnvelope(input);
    if (sealed.bytes.byteLength > ctx.maxDeliveryBytes) {
      // Sealing grows a resource (per-field nonces and tags): a copy NATS cannot carry is withheld for this
      // subscriber (logged), never retried forever; smaller projections for the others still go out.
      withheld.push({
        service: sub.service,
        error: new BrokerError(
          'E_TOO_LARGE',
          `the sealed delivery is ${sealed.bytes.byteLength} bytes; NATS carries at most ${ctx.maxDeliveryBytes}`,
        ),
      });
      continue;
    }
    const delivery: Delivery = {
      service: sub.service,
      subject: subjects.deliver(sub.service, env.typ),
      msgId: id,
      bytes: sealed.bytes,
      ...('sig' in sealed ? { sig: sealed.sig } : {}),
      profileUrl: sub.profileUrl,
      purpose: sub.purpose,
      kek: recipientKek.id,
    };
    deliveries.push(
      accounted?.has(sub.service) === true
        ? { ...delivery, disclosure: { patients: patients.disclosed, elements: disclosedElements(projected) } }
        : delivery,
    );
  }
  return {
    deliveries,
    withheld,
    restricted,
    // Not the resource: its plaintext is garbage once the copies are sealed, not held through the round trips.
    patients,
    resourceId: typeof resource.id === 'string' ? resource.id : undefined,
    unwrapKek: opened.unwrapKek,
  };
}
