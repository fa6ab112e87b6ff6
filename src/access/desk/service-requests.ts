// The broker's door for right-of-access requests (45 CFR 164.524) filed by a service through the SDK
// (requester.ts): served by every broker process on phi.request.access.* in the queue group phi-broker, so
// exactly one handles each. It verifies the command's signature and sender, checks the catalog's access
// requesters (subjects/access.yaml), refuses a replayed command (KV phi_seen), canonicalises the patient under the catalog's rule and creates the request
// with the same AccessDesk.create the operator's `access request` uses, recording who asked; `status` answers
// only about the asking service's own requests. Every refusal gets a stable code, a signed reply and a FHIR
// AuditEvent (access-refused); logs carry ids and codes only, never the patient reference.
import { createHash } from 'node:crypto';
import { headers as natsHeaders, type KV, type Msg, type NatsConnection, type Subscription } from 'nats';
import type { AuditFact } from '../../audit/facts.js';
import type { Catalog } from '../../catalog/types.js';
import type { Keyring } from '../../crypto/keyring.js';
import type { SigningKeyPair } from '../../crypto/keys.js';
import { parseEnvelope } from '../../envelope/parse.js';
import { BrokerError, isBrokerError } from '../../wire/errors.js';
import { errorFields, type Logger } from '../../log/log.js';
import { BROKER_QUEUE, HEADERS, parseAccessRequestSubject, subjects } from '../../wire/names.js';
import { canonicalPatientRef } from '../../registry/patient-key.js';
import type { AccessRequest } from '../protocol/request.js';
import {
  openAccessCommand,
  sealAccessReply,
  summarize,
  type AccessCommand,
  type AccessReply,
} from '../protocol/service-request.js';
import { checkRequestId } from './sealing.js';

export interface ServiceRequestsOptions {
  readonly nc: NatsConnection;
  readonly catalog: Catalog;
  /** The broker's keyring: the services' signing keys, the broker's KEKs. */
  readonly keyring: Keyring;
  /** The broker's signing key: every reply is signed. */
  readonly signer: SigningKeyPair;
  readonly now: () => number;
  readonly clockSkewMs: number;
  readonly logger: Logger;
  readonly audit?: { record(facts: readonly AuditFact[]): Promise<void> };
  /** AccessDesk.create: the patient (canonical form) and the service that asked. */
  readonly create: (patient: string, requester: string) => Promise<AccessRequest>;
  readonly get: (id: string) => Promise<AccessRequest>;
  /** Keeps the handling of one message in the desk's in-flight set (stop() waits for it). */
  readonly track: (p: Promise<unknown>) => void;
  /**
   * The broker's replay record (KV phi_seen, entries kept for the replay window, which outlasts the skew window):
   * a command's id is claimed once, so a captured request sent again is E_REPLAY instead of a second request.
   */
  readonly seen: KV;
}

/** Claims a command id in phi_seen (atomic create); E_REPLAY when it was claimed before. Keys: SHA-256, own namespace. */
async function claim(seen: KV, requester: string, id: string): Promise<void> {
  const key = createHash('sha256').update(`access-request|${requester}|${id}`).digest('hex');
  try {
    await seen.create(key, new TextEncoder().encode('access-request'));
  } catch (err) {
    if ((await seen.get(key)) === null) throw err; // not a conflict: a NATS failure (E_INTERNAL; the SDK may retry)
    throw new BrokerError('E_REPLAY', 'an access request with this id was already received', { path: 'id' });
  }
}

export function serveServiceRequests(o: ServiceRequestsOptions): Subscription {
  return o.nc.subscribe(subjects.accessRequestAll, {
    queue: BROKER_QUEUE,
    callback: (err, msg) => {
      if (err === null) o.track(handle(o, msg));
    },
  });
}

async function handle(o: ServiceRequestsOptions, msg: Msg): Promise<void> {
  const requester = parseAccessRequestSubject(msg.subject) ?? '_unknown';
  let messageId: string | undefined;
  let op: AccessCommand['op'] | undefined;
  let reply: AccessReply;
  try {
    const env = parseEnvelope(msg.data);
    messageId = env.id;
    const opened = openAccessCommand(env, msg.data, msg.headers?.get(HEADERS.signature) || undefined, o.keyring, {
      subjectService: requester,
      requesters: o.catalog.access.requesters,
      now: o.now(),
      clockSkewMs: o.clockSkewMs,
    });
    const command = opened.command;
    op = command.op;
    await claim(o.seen, opened.iss, env.id);
    let request: AccessRequest;
    if (command.op === 'create') {
      // E_PATIENT_UNRESOLVED before anything is created; create() keeps the canonical form as is.
      request = await o.create(canonicalPatientRef(command.patient, o.catalog.patients), opened.iss);
    } else {
      request = await o.get(checkRequestId(command.id));
      if (request.requester !== opened.iss)
        throw new BrokerError('E_ACCESS_NOT_ALLOWED', 'id: not an access request this service created', { path: 'id' });
    }
    reply = { v: 1, re: env.id, ok: true, request: summarize(request) };
    if (command.op === 'create')
      o.logger.info(
        { event: 'access.service.created', requester, request: request.id },
        'access request filed by a service',
      );
  } catch (err) {
    const error = isBrokerError(err)
      ? err.toJSON()
      : { code: 'E_INTERNAL' as const, message: 'the broker could not carry out this access request' };
    reply = { v: 1, ...(messageId === undefined ? {} : { re: messageId }), ok: false, error };
    if (isBrokerError(err))
      o.logger.warn(
        { event: 'access.service.refused', requester, id: messageId, op, ...errorFields(err) },
        "refused a service's access request",
      );
    else
      o.logger.error(
        { event: 'access.service.failed', requester, id: messageId, op, ...errorFields(err) },
        "a service's access request failed",
      );
    await o.audit
      ?.record([
        {
          kind: 'access-refused',
          requester,
          code: error.code,
          ...(error.path === undefined ? {} : { path: error.path }),
          ...(op === undefined ? {} : { op }),
          ...(messageId === undefined ? {} : { messageId }),
        },
      ])
      .catch((e: unknown) =>
        o.logger.error(
          { event: 'access.service.audit.failed', requester, ...errorFields(e) },
          'could not audit a refused access request',
        ),
      );
  }
  const sealed = sealAccessReply(reply, o.signer);
  const h = natsHeaders();
  h.set(HEADERS.signature, sealed.sig);
  msg.respond(sealed.bytes, { headers: h });
}
