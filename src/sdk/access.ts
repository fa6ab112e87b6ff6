// The service side of the right of access (45 CFR 164.524): answers the broker's questions on
// phi.access.<service> with the service's resources about the patient, sealed to the broker and signed
// (src/access/protocol.ts). A question that does not verify as the broker's is ignored (logged); a handler
// that throws answers with an OperationOutcome, so the broker records the service as failed and retries.
import { headers as natsHeaders, type Msg, type NatsConnection, type Subscription as NatsSubscription } from 'nats';
import type { FhirResource } from 'fhir/r4.js';
import { openQuestion, sealAnswerEnvelope } from '../access/protocol.js';
import type { Keyring } from '../crypto/keyring.js';
import type { ServiceKeys } from '../crypto/keys.js';
import type { FhirResource as JsonResource } from '../fhir/resource.js';
import { errorFields, type Logger } from '../log.js';
import { HEADERS, subjects } from '../nats/names.js';

/** Returns every resource this service holds about the patient (its part of the designated record set). */
export type AccessRequestHandler = (patientRef: string) => readonly FhirResource[] | Promise<readonly FhirResource[]>;

export function serveAccessRequests(nc: NatsConnection, service: string, keys: ServiceKeys, keyring: Keyring, handler: AccessRequestHandler, logger: Logger | undefined): NatsSubscription {
  // One instance of a replicated service answers each question (queue group = the service id).
  return nc.subscribe(subjects.access(service), {
    queue: service,
    callback: (err, msg) => {
      if (err === null) void answer(msg, service, keys, keyring, handler, logger);
    },
  });
}

async function answer(msg: Msg, service: string, keys: ServiceKeys, keyring: Keyring, handler: AccessRequestHandler, logger: Logger | undefined): Promise<void> {
  let question;
  try {
    question = openQuestion(msg.data, msg.headers?.get(HEADERS.signature) || undefined, keyring, service);
  } catch (err) {
    logger?.warn({ event: 'sdk.access.invalid', ...errorFields(err) }, 'ignored an access question that does not verify');
    return;
  }
  let resources: readonly JsonResource[] | undefined;
  try {
    resources = (await handler(question.patientRef)) as unknown as readonly JsonResource[];
  } catch (err) {
    logger?.warn({ event: 'sdk.access.handler.failed', question: question.id, ...errorFields(err) }, 'access handler failed; answering with an OperationOutcome');
    resources = undefined;
  }
  if (resources !== undefined && !Array.isArray(resources)) {
    logger?.warn({ event: 'sdk.access.handler.failed', question: question.id }, 'access handler did not return an array of resources; answering with an OperationOutcome');
    resources = undefined;
  }
  try {
    const sealed = sealAnswerEnvelope({ questionId: question.id, service, resources, now: Date.now(), signer: keys.sign, keyring });
    const h = natsHeaders();
    h.set(HEADERS.signature, sealed.sig);
    msg.respond(sealed.bytes, { headers: h });
  } catch (err) {
    // Nothing sent: the broker records no answer and asks again later.
    logger?.error({ event: 'sdk.access.answer.failed', question: question.id, ...errorFields(err) }, 'could not seal or send the access answer');
  }
}
