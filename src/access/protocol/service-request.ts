// A service's own right-of-access requests (45 CFR 164.524), from the SDK: a catalog access requester (e.g. the
// patient portal, subjects/access.yaml) asks the broker processes over NATS request/reply on
// phi.request.access.<service> to create a request for a patient, or for the status of one it created. Pure: no
// NATS here (src/access/desk/service-requests.ts and src/sdk/access-requests.ts do the I/O).
//   command: service → broker, a phi-broker envelope (docs/wire-format.md) signed by the service over its exact
//            bytes with its Ed25519 key (RFC 8032; Phi-Sig header) and sealed field by field to the broker, holding
//            a FHIR R4 Parameters resource (http://hl7.org/fhir/R4/parameters.html):
//              create: parameter `patient` (valueString), the patient reference in a form the catalog's rule accepts
//              status: parameter `request` (valueString), the id of a request this service created
//            The patient reference is never in the subject or a header, only sealed in the body.
//   reply:   broker → service, JSON signed by the broker (Phi-Sig): `re` (the command's envelope id), then the
//            request's id, status, received time and due date — no patient data — or a refusal's code, message, path.
import type { Parameters } from 'fhir/r4.js';
import { BROKER_ID } from '../../wire/ids.js';
import { fromBase64url, toBase64url } from '../../crypto/base64url.js';
import type { Keyring } from '../../crypto/keyring.js';
import type { SigningKeyPair } from '../../crypto/keys.js';
import { signDetached, verifyDetached } from '../../crypto/sign.js';
import { openEnvelope, verifyEnvelope } from '../../envelope/open.js';
import { sealEnvelope, type SealedEnvelope } from '../../envelope/seal.js';
import type { Envelope } from '../../envelope/types.js';
import { BrokerError, isBrokerErrorCode } from '../../wire/errors.js';
import type { AccessRequest, RequestStatus } from './request.js';
import { z } from 'zod';
import { decodeJson } from '../../wire/decode-json.js';

export type AccessCommand =
  { readonly op: 'create'; readonly patient: string } | { readonly op: 'status'; readonly id: string };

/** What a requesting service learns about a request: never the patient, nor which services hold data. */
export interface AccessRequestSummary {
  readonly id: string;
  readonly status: RequestStatus;
  /** ISO 8601: when the broker received the request. */
  readonly receivedAt: string;
  /** ISO 8601: the due date in force (30 days after receipt, 45 CFR 164.524(b)(2); later once extended). */
  readonly due: string;
}

export function summarize(r: AccessRequest): AccessRequestSummary {
  return {
    id: r.id,
    status: r.status,
    receivedAt: new Date(r.receivedAt).toISOString(),
    due: new Date(r.dueAt).toISOString(),
  };
}

const PARAMETER = { create: 'patient', status: 'request' } as const;

const errorSchema = z.object({ code: z.string(), message: z.string(), path: z.string().optional() });

/** An AccessReply as the service checks it (the broker signed it; the shape is checked all the same). */
const accessReplySchema = z.discriminatedUnion('ok', [
  z.object({
    v: z.literal(1),
    re: z.string(),
    ok: z.literal(true),
    request: z.object({
      id: z.string(),
      status: z.enum(['open', 'partial', 'complete']),
      receivedAt: z.string(),
      due: z.string(),
    }),
  }),
  z.object({ v: z.literal(1), re: z.string().optional(), ok: z.literal(false), error: errorSchema }),
]);

/** The service's side: the command as a Parameters resource, sealed to the broker and signed. */
export function sealAccessCommand(c: {
  id: string;
  service: string;
  command: AccessCommand;
  now: number;
  signer: SigningKeyPair;
  keyring: Keyring;
}): SealedEnvelope {
  const value = c.command.op === 'create' ? c.command.patient : c.command.id;
  const resource: Parameters = {
    resourceType: 'Parameters',
    parameter: [{ name: PARAMETER[c.command.op], valueString: value }],
  };
  return sealEnvelope({
    id: c.id,
    iss: c.service,
    iat: c.now,
    typ: 'Parameters',
    resource,
    signer: c.signer,
    recipients: [{ id: BROKER_ID, kek: c.keyring.kekFor(c.keyring.encryptionKeyOf(BROKER_ID).kid) }],
  });
}

export interface CommandCheck {
  /** The service the NATS subject names (the identity NATS let publish there). */
  readonly subjectService: string;
  /** The catalog's access requesters. */
  readonly requesters: readonly string[];
  readonly now: number;
  readonly clockSkewMs: number;
}

/**
 * The broker's side, in this order: the signature (with a key of the sender, E_KEY_UNKNOWN / E_SIGNATURE), the sender
 * (subject = envelope iss, E_SENDER_MISMATCH), the catalog (E_ACCESS_NOT_ALLOWED), freshness (E_CLOCK_SKEW), then the
 * sealed body opened (E_DECRYPT …) and read (E_ENVELOPE_INVALID). Nothing is decrypted for a sender not allowed.
 */
export function openAccessCommand(
  env: Envelope,
  bytes: Uint8Array,
  sig: string | undefined,
  keyring: Keyring,
  check: CommandCheck,
): { readonly iss: string; readonly command: AccessCommand } {
  const publicKey = keyring.signingPublicKey(env.kid);
  if (keyring.ownerOf(env.kid) !== env.iss)
    throw new BrokerError('E_SIGNATURE', 'envelope signature key does not belong to the issuer', { path: 'kid' });
  verifyEnvelope(bytes, sig, publicKey);
  if (env.iss !== check.subjectService)
    throw new BrokerError('E_SENDER_MISMATCH', 'envelope iss differs from the sender named by the subject', {
      path: 'iss',
    });
  if (!check.requesters.includes(env.iss))
    throw new BrokerError(
      'E_ACCESS_NOT_ALLOWED',
      `iss: ${env.iss} is not among the catalog's access requesters (subjects/access.yaml)`,
      { path: 'iss' },
    );
  if (Math.abs(check.now - env.iat) > check.clockSkewMs)
    throw new BrokerError('E_CLOCK_SKEW', `iat is more than ${check.clockSkewMs} ms from the broker's clock`, {
      path: 'iat',
    });
  if (env.typ !== 'Parameters')
    throw new BrokerError('E_ENVELOPE_INVALID', 'access request: expected a Parameters resource', { path: 'typ' });
  const wrap = env.keys.find((k) => k.to === BROKER_ID);
  if (wrap === undefined)
    throw new BrokerError('E_KEY_UNKNOWN', 'no data key is wrapped for the broker', { path: 'keys' });
  const params = openEnvelope(env, BROKER_ID, keyring.kekForId(wrap.kek)) as Parameters;
  const given = params.parameter ?? [];
  const one = given.length === 1 ? given[0] : undefined;
  const value = one?.valueString;
  if (
    one === undefined ||
    typeof value !== 'string' ||
    value === '' ||
    (one.name !== PARAMETER.create && one.name !== PARAMETER.status)
  ) {
    throw new BrokerError(
      'E_ENVELOPE_INVALID',
      'access request: expected one parameter, patient or request, with a valueString',
      { path: 'Parameters.parameter' },
    );
  }
  return {
    iss: env.iss,
    command: one.name === PARAMETER.create ? { op: 'create', patient: value } : { op: 'status', id: value },
  };
}

export type AccessReply =
  | { readonly v: 1; readonly re: string; readonly ok: true; readonly request: AccessRequestSummary }
  | {
      readonly v: 1;
      readonly re?: string;
      readonly ok: false;
      readonly error: { readonly code: string; readonly message: string; readonly path?: string };
    };

/** The broker's reply: JSON, signed with the broker's key over the exact bytes. */
export function sealAccessReply(reply: AccessReply, signer: SigningKeyPair): { bytes: Uint8Array; sig: string } {
  const bytes = new TextEncoder().encode(JSON.stringify(reply));
  return { bytes, sig: toBase64url(signDetached(bytes, signer.secretKey)) };
}

/**
 * The service's side: the reply must verify under one of the broker's signing keys and answer this command (`re`);
 * a refusal comes back as its BrokerError. A reply that does not verify is E_SIGNATURE.
 */
export function openAccessReply(
  data: Uint8Array,
  sig: string | undefined,
  brokerKeys: readonly Uint8Array[],
  commandId: string,
): AccessRequestSummary {
  const raw = sig === undefined ? undefined : fromBase64url(sig);
  if (raw === undefined || !brokerKeys.some((k) => verifyDetached(data, raw, k)))
    throw new BrokerError('E_SIGNATURE', "access reply signature does not verify with the broker's keys");
  const reply = decodeJson(data, accessReplySchema, { what: 'access reply', code: 'E_ENVELOPE_INVALID' });
  if (reply.re !== undefined && reply.re !== commandId)
    throw new BrokerError('E_ENVELOPE_INVALID', 'access reply answers another request', { path: 're' });
  if (!reply.ok) {
    const code = isBrokerErrorCode(reply.error.code) ? reply.error.code : 'E_INTERNAL';
    throw new BrokerError(
      code,
      reply.error.message,
      reply.error.path === undefined ? undefined : { path: reply.error.path },
    );
  }
  if (reply.re !== commandId)
    throw new BrokerError('E_ENVELOPE_INVALID', 'access reply answers another request', { path: 're' });
  return reply.request;
}
