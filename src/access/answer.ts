// The broker's check of a service's answer to a right-of-access question (protocol.ts): signed by the service
// asked, answering exactly this question, and a valid FHIR R4 collection Bundle (validated like any ingest).
// Apart from protocol.ts because validation loads the FHIR R4 model, which the SDK must not pay for.
import type { Bundle } from 'fhir/r4.js';
import { BROKER_ID } from '../catalog/types.js';
import type { Keyring } from '../crypto/keyring.js';
import { openEnvelope, verifySignedEnvelope } from '../envelope/open.js';
import { BrokerError } from '../errors.js';
import type { ValidationLimits } from '../fhir/limits.js';
import type { FhirResource } from '../fhir/resource.js';
import { validateResource } from '../fhir/validate.js';

export type OpenedAnswer = { readonly ok: true; readonly resources: readonly FhirResource[] } | { readonly ok: false; readonly code: string };

/**
 * The broker's side: the answer must be signed by `service` with one of its keys, answer exactly this question,
 * and hold a valid FHIR R4 collection Bundle (or an OperationOutcome: the service could not answer). Throws a
 * coded BrokerError when the answer is not acceptable (E_SIGNATURE, E_ENVELOPE_INVALID, E_FHIR_INVALID …).
 */
export function openAnswerEnvelope(data: Uint8Array, sig: string | undefined, keyring: Keyring, expected: { questionId: string; service: string }, limits: ValidationLimits): OpenedAnswer {
  const env = verifySignedEnvelope(data, sig, keyring);
  if (env.iss !== expected.service) throw new BrokerError('E_SENDER_MISMATCH', 'access answer is not from the service asked', { path: 'iss' });
  if (env.id !== `${expected.questionId}.a`) throw new BrokerError('E_ENVELOPE_INVALID', 'access answer does not answer this question', { path: 'id' });
  const wrap = env.keys.find((k) => k.to === BROKER_ID);
  if (wrap === undefined) throw new BrokerError('E_KEY_UNKNOWN', 'no data key is wrapped for the broker', { path: 'keys' });
  const opened = openEnvelope(env, BROKER_ID, keyring.kekForId(wrap.kek));
  if (env.typ === 'OperationOutcome') return { ok: false, code: 'SERVICE_ERROR' };
  if (env.typ !== 'Bundle') throw new BrokerError('E_ENVELOPE_INVALID', 'access answer: expected a Bundle of type collection', { path: 'typ' });
  const bundle = validateResource(opened, limits) as unknown as Bundle;
  if (bundle.type !== 'collection') throw new BrokerError('E_ENVELOPE_INVALID', 'access answer: expected a Bundle of type collection', { path: 'Bundle.type' });
  const resources = (bundle.entry ?? []).map((e) => e.resource as unknown as FhirResource | undefined).filter((r): r is FhirResource => r !== undefined);
  return { ok: true, resources };
}
