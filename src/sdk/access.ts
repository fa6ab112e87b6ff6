// The service side of the right of access (45 CFR 164.524): answers the broker's questions on
// phi.access.<service> with the service's resources about the patient, sealed to the broker and signed
// (src/access/protocol/holder-exchange.ts). A question that does not verify as the broker's is ignored (logged); a handler
// that throws answers with an OperationOutcome, so the broker records the service as failed and retries. An answer
// larger than one NATS message (the server's max_payload) is served in signed parts on a one-off subject
// phi.access.<service>.part.<token> until the broker has fetched each, or PARTS_IDLE_MS passes without a fetch.
import { headers as natsHeaders, type Msg, type NatsConnection, type Subscription as NatsSubscription } from 'nats';
import type { FhirResource } from 'fhir/r4.js';
import {
  PART_HEADROOM,
  newPartsToken,
  parsePartRequest,
  splitAnswer,
  type SplitAnswer,
} from '../access/protocol/parts.js';
import { openQuestion, sealAnswerEnvelope } from '../access/protocol/holder-exchange.js';
import type { Keyring } from '../crypto/keyring.js';
import type { ServiceKeys } from '../crypto/keys.js';
import type { FhirResource as JsonResource } from '../fhir/resource.js';
import { errorFields, type Logger } from '../log/log.js';
import { serverMaxPayload } from '../wire/max-payload.js';
import { HEADERS, subjects } from '../wire/names.js';

/** The patient as a question names it: `patientPseudonym` is how the broker's copies to this service name it. */
export interface AccessQuestion {
  readonly patientRef: string;
  readonly patientPseudonym?: string;
}

/**
 * Returns every resource this service holds about the patient (its part of the designated record set): its own
 * records about `patientRef`, and the copies the broker delivered, whose ids and references may be the service's
 * pseudonym of it (`question.patientPseudonym`; docs/patient-rights.md).
 */
export type AccessRequestHandler = (
  patientRef: string,
  question: AccessQuestion,
) => readonly FhirResource[] | Promise<readonly FhirResource[]>;

export function serveAccessRequests(
  nc: NatsConnection,
  service: string,
  keys: ServiceKeys,
  keyring: Keyring,
  handler: AccessRequestHandler,
  logger: Logger | undefined,
): NatsSubscription {
  // One instance of a replicated service answers each question (queue group = the service id).
  return nc.subscribe(subjects.access(service), {
    queue: service,
    callback: (err, msg) => {
      // answer() cannot reject: it logs every failure itself (the broker asks again when no answer comes).
      if (err === null) void answer(nc, msg, service, keys, keyring, handler, logger);
    },
  });
}

async function answer(
  nc: NatsConnection,
  msg: Msg,
  service: string,
  keys: ServiceKeys,
  keyring: Keyring,
  handler: AccessRequestHandler,
  logger: Logger | undefined,
): Promise<void> {
  let question;
  try {
    question = openQuestion(msg.data, msg.headers?.get(HEADERS.signature) || undefined, keyring, service);
  } catch (err) {
    logger?.warn(
      { event: 'sdk.access.invalid', ...errorFields(err) },
      'ignored an access question that does not verify',
    );
    return;
  }
  let resources: readonly JsonResource[] | undefined;
  try {
    const asked: AccessQuestion = {
      patientRef: question.patientRef,
      ...(question.patientPseudonym === undefined ? {} : { patientPseudonym: question.patientPseudonym }),
    };
    resources = (await handler(question.patientRef, asked)) as unknown as readonly JsonResource[];
  } catch (err) {
    logger?.warn(
      { event: 'sdk.access.handler.failed', question: question.id, ...errorFields(err) },
      'access handler failed; answering with an OperationOutcome',
    );
    resources = undefined;
  }
  if (resources !== undefined && !Array.isArray(resources)) {
    logger?.warn(
      { event: 'sdk.access.handler.failed', question: question.id },
      'access handler did not return an array of resources; answering with an OperationOutcome',
    );
    resources = undefined;
  }
  try {
    const sealed = sealAnswerEnvelope({
      questionId: question.id,
      service,
      resources,
      now: Date.now(),
      signer: keys.sign,
      keyring,
    });
    const maxPayload = serverMaxPayload(nc.info);
    const h = natsHeaders();
    if (sealed.bytes.length + PART_HEADROOM <= maxPayload) {
      h.set(HEADERS.signature, sealed.sig);
      msg.respond(sealed.bytes, { headers: h });
      return;
    }
    // Larger than one message: serve the parts first, then reply with the manifest that names them.
    const split = splitAnswer({
      id: `${question.id}.a`,
      service,
      bytes: sealed.bytes,
      sig: sealed.sig,
      maxPart: maxPayload - PART_HEADROOM,
      signer: keys.sign,
      token: newPartsToken(),
    });
    await serveParts(nc, service, split, logger);
    h.set(HEADERS.signature, split.manifest.sig);
    h.set(HEADERS.parts, String(split.parts.length));
    msg.respond(split.manifest.bytes, { headers: h });
    logger?.debug(
      { event: 'sdk.access.parts', question: question.id, parts: split.parts.length, bytes: sealed.bytes.length },
      'answer sent in parts',
    );
  } catch (err) {
    // Nothing sent: the broker records no answer and asks again later.
    logger?.error(
      { event: 'sdk.access.answer.failed', question: question.id, ...errorFields(err) },
      'could not seal or send the access answer',
    );
  }
}

/** How long the parts of an answer stay available after the last fetch (the broker fetches them one after another). */
export const PARTS_IDLE_MS = 60_000;

/** Serves the parts of one answer on its one-off subject; resolves once the server has the subscription. */
async function serveParts(
  nc: NatsConnection,
  service: string,
  split: SplitAnswer,
  logger: Logger | undefined,
): Promise<void> {
  const served = new Set<number>();
  let timer: NodeJS.Timeout | undefined;
  const done = (why: string): void => {
    if (timer !== undefined) clearTimeout(timer);
    if (!sub.isClosed()) sub.unsubscribe();
    if (why === 'idle')
      logger?.warn(
        {
          event: 'sdk.access.parts.expired',
          answer: split.manifest.value.id,
          served: served.size,
          parts: split.parts.length,
        },
        'answer parts expired before the broker fetched them all',
      );
  };
  const idle = (): void => {
    if (timer !== undefined) clearTimeout(timer);
    timer = setTimeout(() => done('idle'), PARTS_IDLE_MS);
    timer.unref();
  };
  const sub = nc.subscribe(subjects.accessPart(service, split.manifest.value.token), {
    callback: (err, msg) => {
      if (err !== null) return;
      const k = parsePartRequest(msg.data);
      const part = k === undefined ? undefined : split.parts[k - 1];
      if (k === undefined || part === undefined) return; // not a part of this answer: the broker's request times out
      const h = natsHeaders();
      h.set(HEADERS.part, part.place);
      h.set(HEADERS.signature, part.sig);
      msg.respond(part.data, { headers: h });
      served.add(k);
      if (served.size === split.parts.length) done('served');
      else idle();
    },
  });
  idle();
  await nc.flush();
}
