// The right-of-access exchange between the broker and one holding service, over NATS request/reply on
// phi.access.<service> (a subject only that service may subscribe to). Both directions are phi-broker
// envelopes (docs/wire-format.md): every value sealed field by field to the one recipient, the exact bytes
// signed by the sender (Phi-Sig header). Pure: no NATS here (desk.ts and src/sdk/access.ts do the I/O). The broker's
// check of an answer (FHIR validation, which loads the R4 model) lives in answer.ts, so the SDK does not load it.
//   question: broker → service, a FHIR Parameters resource with the `patient` parameter (the canonical
//             reference, like the input of Patient/$everything, http://hl7.org/fhir/R4/patient-operation-everything.html)
//             and `patient-pseudonym` (the same patient as the broker's copies to that service name it, where its
//             profiles pseudonymise ids and references), id `<request id>.<service>.<attempt>`;
//   answer:   service → broker, a FHIR Bundle of type `collection` holding the service's resources about that
//             patient (its part of the designated record set, 45 CFR 164.501), id `<question id>.a`; or an
//             OperationOutcome when the service could not answer (no diagnostics: they could quote PHI). An answer
//             larger than one NATS message goes as a signed manifest and signed parts (parts.ts).
import { randomUUID } from 'node:crypto';
import type { Bundle, OperationOutcome, Parameters } from 'fhir/r4.js';
import { BROKER_ID } from '../../wire/ids.js';
import type { Keyring } from '../../crypto/keyring.js';
import type { SigningKeyPair } from '../../crypto/keys.js';
import { openEnvelope, verifySignedEnvelope } from '../../envelope/open.js';
import { sealEnvelope, type SealedEnvelope } from '../../envelope/seal.js';
import { BrokerError } from '../../wire/errors.js';
import { entryFullUrl } from '../../fhir/full-url.js';
import type { FhirResource } from '../../fhir/resource.js';

export interface Question {
  readonly id: string;
  readonly patientRef: string;
  /** The patient as the broker's copies to this service name it (its keyed pseudonym), when the broker sent it. */
  readonly patientPseudonym?: string;
}

export function questionId(requestId: string, service: string, attempt: number): string {
  return `${requestId}.${service}.${attempt}`;
}

export function sealQuestion(q: {
  requestId: string;
  service: string;
  attempt: number;
  patientRef: string;
  patientPseudonym?: string;
  now: number;
  signer: SigningKeyPair;
  keyring: Keyring;
}): SealedEnvelope & { id: string } {
  const id = questionId(q.requestId, q.service, q.attempt);
  const resource: Parameters = {
    resourceType: 'Parameters',
    parameter: [
      { name: 'patient', valueString: q.patientRef },
      ...(q.patientPseudonym === undefined ? [] : [{ name: 'patient-pseudonym', valueString: q.patientPseudonym }]),
    ],
  };
  const sealed = sealEnvelope({
    id,
    iss: BROKER_ID,
    iat: q.now,
    typ: 'Parameters',
    resource,
    signer: q.signer,
    recipients: [{ id: q.service, kek: q.keyring.kekFor(q.keyring.encryptionKeyOf(q.service).kid) }],
  });
  return { ...sealed, id };
}

/** The service's side: verifies the broker's signature and opens the question addressed to `service`. */
export function openQuestion(data: Uint8Array, sig: string | undefined, keyring: Keyring, service: string): Question {
  const env = verifySignedEnvelope(data, sig, keyring);
  if (env.iss !== BROKER_ID)
    throw new BrokerError('E_SIGNATURE', 'access question is not signed by the broker', { path: 'iss' });
  if (env.typ !== 'Parameters')
    throw new BrokerError('E_ENVELOPE_INVALID', 'access question: expected a Parameters resource', { path: 'typ' });
  const wrap = env.keys.find((k) => k.to === service);
  if (wrap === undefined)
    throw new BrokerError('E_ENVELOPE_INVALID', 'access question is not addressed to this service', { path: 'keys' });
  const params = openEnvelope(env, service, keyring.kekForId(wrap.kek)) as Parameters;
  const patientRef = params.parameter?.find((p) => p.name === 'patient')?.valueString;
  if (typeof patientRef !== 'string' || patientRef === '')
    throw new BrokerError('E_ENVELOPE_INVALID', 'access question: parameter patient is missing', {
      path: 'Parameters.parameter',
    });
  const pseudonym = params.parameter?.find((p) => p.name === 'patient-pseudonym')?.valueString;
  return {
    id: env.id,
    patientRef,
    ...(typeof pseudonym === 'string' && pseudonym !== '' ? { patientPseudonym: pseudonym } : {}),
  };
}

/** The service's answer: its resources as a collection Bundle, or (error) an OperationOutcome. */
export function sealAnswerEnvelope(a: {
  questionId: string;
  service: string;
  resources: readonly FhirResource[] | undefined;
  now: number;
  signer: SigningKeyPair;
  keyring: Keyring;
}): SealedEnvelope {
  const id = `${a.questionId}.a`;
  const recipients = [{ id: BROKER_ID, kek: a.keyring.kekFor(a.keyring.encryptionKeyOf(BROKER_ID).kid) }];
  if (a.resources === undefined) {
    const outcome: OperationOutcome = {
      resourceType: 'OperationOutcome',
      issue: [{ severity: 'error', code: 'exception' }],
    };
    return sealEnvelope({
      id,
      iss: a.service,
      iat: a.now,
      typ: 'OperationOutcome',
      resource: outcome,
      signer: a.signer,
      recipients,
    });
  }
  // FHIR: a resource the broker validates has an id; an empty array is not valid JSON FHIR, so no entry at all.
  const bundle = {
    resourceType: 'Bundle',
    id: randomUUID(),
    type: 'collection',
    ...(a.resources.length === 0
      ? {}
      : {
          entry: a.resources.map((resource, i) => ({
            fullUrl: entryFullUrl(`answer:${id}`, resource, i),
            resource,
          })),
        }),
  } as unknown as Bundle;
  return sealEnvelope({
    id,
    iss: a.service,
    iat: a.now,
    typ: 'Bundle',
    resource: bundle,
    signer: a.signer,
    recipients,
  });
}
