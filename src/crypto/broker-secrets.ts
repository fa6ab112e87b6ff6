// The broker's symmetric secrets, beside its key pair: the quarantine key (seals rejected input) and the
// pseudonym master key (derives one HMAC key per subscriber for the `pseudonym` transform, so tokens
// given to two de-identified consumers cannot be joined). Kept in the data dir by src/runtime/broker-secrets.ts.
import { createHmac } from 'node:crypto';

export interface BrokerSecrets {
  readonly quarantineKey: Uint8Array;
  readonly pseudonymKey: Uint8Array;
}

/** HMAC-SHA256(master, "pseudonym|v1|" + service): the subscriber's own pseudonym key. */
export function subscriberPseudonymKey(master: Uint8Array, service: string): Uint8Array {
  return new Uint8Array(createHmac('sha256', master).update(`pseudonym|v1|${service}`).digest());
}
