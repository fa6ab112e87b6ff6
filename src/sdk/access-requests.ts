// The requesting side of the right of access (45 CFR 164.524) in the SDK: a catalog access requester (e.g. the
// patient portal) files a patient's request with the broker, or asks the status of one it filed, over NATS
// request/reply on phi.request.access.<service> (src/access/protocol/service-request.ts). The patient reference leaves this
// process only sealed to the broker inside the signed envelope; the broker's reply is checked against its signing
// keys and against this command's id. Refusals throw a BrokerError with a stable code (docs/errors.md).
import { randomUUID } from 'node:crypto';
import { headers as natsHeaders, type NatsConnection } from 'nats';
import {
  openAccessReply,
  sealAccessCommand,
  type AccessCommand,
  type AccessRequestSummary,
} from '../access/protocol/service-request.js';
import type { Keyring } from '../crypto/keyring.js';
import type { ServiceKeys } from '../crypto/keys.js';
import { BrokerError } from '../wire/errors.js';
import { requestOn, replyNonce } from '../nats/request.js';
import { HEADERS, inboxPrefix, replies, subjects } from '../wire/names.js';

export type { AccessRequestSummary } from '../access/protocol/service-request.js';

export interface AccessRequester {
  readonly nc: NatsConnection;
  readonly service: string;
  readonly keys: ServiceKeys;
  readonly keyring: Keyring;
  /** The broker's signing key ids (the reply must verify under one). */
  readonly brokerSigningKeys: ReadonlySet<string>;
  readonly timeoutMs: number;
}

/** One command, one signed reply. NATS refusing the publish (the service is no requester) is E_ACCESS_NOT_ALLOWED. */
export async function sendAccessCommand(r: AccessRequester, command: AccessCommand): Promise<AccessRequestSummary> {
  const id = randomUUID();
  const sealed = sealAccessCommand({
    id,
    service: r.service,
    command,
    now: Date.now(),
    signer: r.keys.sign,
    keyring: r.keyring,
  });
  const h = natsHeaders();
  h.set(HEADERS.signature, sealed.sig);
  let msg;
  try {
    // The broker answers under this service's inbox, the one its connection must use (docs/security-model.md).
    const reply = replies.desk(inboxPrefix(r.service), replyNonce());
    msg = await requestOn(r.nc, subjects.accessRequest(r.service), sealed.bytes, reply, {
      timeout: r.timeoutMs,
      headers: h,
    });
  } catch (err) {
    throw natsFailure(err, r.service);
  }
  const brokerKeys = [...r.brokerSigningKeys].map((kid) => r.keyring.signingPublicKey(kid));
  return openAccessReply(msg.data, msg.headers?.get(HEADERS.signature) || undefined, brokerKeys, id);
}

/** The NATS failure as a coded error (no request was created unless the code says it may have been). */
function natsFailure(err: unknown, service: string): BrokerError {
  const code = (err as { code?: unknown } | null)?.code;
  if (code === 'PERMISSIONS_VIOLATION') {
    return new BrokerError(
      'E_ACCESS_NOT_ALLOWED',
      `iss: the NATS server refused ${service} publishing an access request (not among the catalog's access requesters)`,
      { path: 'iss', cause: err },
    );
  }
  if (code === '503' || code === 'NO_RESPONDERS')
    return new BrokerError(
      'E_TIMEOUT',
      'no broker process serves access requests (no responders); nothing was created',
      { cause: err },
    );
  return new BrokerError(
    'E_TIMEOUT',
    'no reply from the broker in time; the request may still have been created (ask the operator: access list)',
    { cause: err },
  );
}
