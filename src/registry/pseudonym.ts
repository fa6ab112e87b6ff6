// The broker's own keyed pseudonym of a patient reference: the key of the patient-to-service registry and
// the patient entity of audit events, so neither ever stores a raw identifier. HMAC-SHA256 (RFC 2104)
// under a key derived from the broker's pseudonym master key for this purpose alone, so these tokens
// never equal a subscriber's `pseudonym` transform output and cannot be joined with it.
import { createHmac } from 'node:crypto';
import type { BrokerSecrets } from '../crypto/broker-secrets.js';

/** HMAC-SHA256(master, "patient-registry|v1"): the broker-internal patient pseudonym key. */
export function patientPseudonymKey(master: Uint8Array): Uint8Array {
  return new Uint8Array(createHmac('sha256', master).update('patient-registry|v1').digest());
}

/** The derived key per master key, so the per-message path computes one HMAC, not three. */
const derived = new WeakMap<Uint8Array, Uint8Array>();

/**
 * base64url(HMAC-SHA256(key, "Patient/<id>")) — 43 characters, safe as a NATS subject token and a KV key.
 * `ref` is the canonical `Patient/<id>` form produced by extractPatientRef.
 */
export function patientPseudonym(secrets: Pick<BrokerSecrets, 'pseudonymKey'>, ref: string): string {
  let key = derived.get(secrets.pseudonymKey);
  if (key === undefined) {
    key = patientPseudonymKey(secrets.pseudonymKey);
    derived.set(secrets.pseudonymKey, key);
  }
  return createHmac('sha256', key).update(ref).digest('base64url');
}
