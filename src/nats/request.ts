// A NATS request answered on a reply subject the requester names (nats.js `noMux` with `reply`) rather than on its
// shared inbox: the replies of src/wire/names.ts, which permissions allow exactly, in place of `allow_responses`.
import { randomBytes } from 'node:crypto';
import type { Msg, MsgHdrs, NatsConnection } from 'nats';

/** 32 random hex digits: one reply subject per request, so an answer cannot be aimed at another request. */
export function replyNonce(): string {
  return randomBytes(16).toString('hex');
}

export function requestOn(
  nc: NatsConnection,
  subject: string,
  data: Uint8Array,
  reply: string,
  opts: { readonly timeout: number; readonly headers?: MsgHdrs },
): Promise<Msg> {
  return nc.request(subject, data, {
    timeout: opts.timeout,
    ...(opts.headers === undefined ? {} : { headers: opts.headers }),
    noMux: true,
    reply,
  });
}
