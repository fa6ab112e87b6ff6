// Operator commands to the broker processes for right-of-access requests: JSON request/reply on
// phi.control.access, served by every broker process in the queue group phi-broker, so exactly one handles
// each command. The patient reference never crosses NATS in clear: `create` carries it sealed under the
// broker's access key (the operator's CLI runs on the broker's data dir, as `quarantine show --decrypt` does);
// replies carry ids, dates, statuses, codes and counts. NATS permissions should let only operators publish here.
import type { NatsConnection } from 'nats';
import { BrokerError, isBrokerErrorCode } from '../../wire/errors.js';
import { requestOn, replyNonce } from '../../nats/request.js';
import { replies, subjects } from '../../wire/names.js';
import { requestSchema, type AccessRequest } from '../protocol/request.js';
import { z } from 'zod';
import { decodeJson } from '../../wire/decode-json.js';

export type ControlCommand =
  | { readonly op: 'create'; readonly sealedRef: string }
  | { readonly op: 'status'; readonly id: string }
  | { readonly op: 'extend'; readonly id: string; readonly reason: string }
  | { readonly op: 'list'; readonly overdue: boolean }
  | { readonly op: 'retry'; readonly id?: string };

export type ControlReply =
  | { readonly ok: true; readonly requests: readonly AccessRequest[]; readonly now: number }
  | { readonly ok: false; readonly error: { readonly code: string; readonly message: string; readonly path?: string } };

/** A ControlCommand as the broker checks it (JSON from NATS). */
export const controlCommandSchema = z.discriminatedUnion(
  'op',
  [
    z.object({ op: z.literal('create'), sealedRef: z.string() }),
    z.object({ op: z.literal('status'), id: z.string() }),
    z.object({ op: z.literal('extend'), id: z.string(), reason: z.string().default('') }),
    z.object({ op: z.literal('list'), overdue: z.boolean().optional() }),
    z.object({ op: z.literal('retry'), id: z.string().optional() }),
  ],
  { error: 'expected create, status, extend, list or retry' },
);

const controlReplySchema = z.discriminatedUnion('ok', [
  z.object({ ok: z.literal(true), requests: z.array(requestSchema), now: z.number() }),
  z.object({
    ok: z.literal(false),
    error: z.object({ code: z.string(), message: z.string(), path: z.string().optional() }),
  }),
]);

/** The associated data of a `create` command's sealed reference (not bound to a request id: none exists yet). */
export const CONTROL_REF_AAD = 'phi-broker access control v1';

/**
 * Sends one command and returns the requests in the reply; a refusal comes back as its BrokerError. `inbox` is the
 * connection's inbox prefix: the broker answers under it (`replies.desk`).
 */
export async function sendControl(
  nc: NatsConnection,
  command: ControlCommand,
  inbox: string,
  timeoutMs = 60_000,
): Promise<{ requests: readonly AccessRequest[]; now: number }> {
  const bytes = new TextEncoder().encode(JSON.stringify(command));
  const msg = await requestOn(nc, subjects.accessControl, bytes, replies.desk(inbox, replyNonce()), {
    timeout: timeoutMs,
  });
  const reply = decodeJson(msg.data, controlReplySchema, { what: 'access reply', code: 'E_ENVELOPE_INVALID' });
  if (reply.ok) return { requests: reply.requests as AccessRequest[], now: reply.now };
  const code = isBrokerErrorCode(reply.error.code) ? reply.error.code : 'E_INTERNAL';
  throw new BrokerError(
    code,
    reply.error.message,
    reply.error.path === undefined ? undefined : { path: reply.error.path },
  );
}
