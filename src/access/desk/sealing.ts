// Right-of-access data at rest: the patient reference of a request and each service's answer are PHI, so the
// phi_access bucket and the answer store hold them only sealed — XChaCha20-Poly1305 (src/crypto/aead.ts) under
// a key derived from the broker's pseudonym master key for this purpose alone (HMAC-SHA256, RFC 2104), with
// associated data binding each ciphertext to its request (and service), so a sealed value moved to another
// request does not open. Whoever holds the broker secrets (the broker processes; an operator's CLI on the
// broker's data dir) can open them; NATS stores only ciphertext.
import { createHash, createHmac } from 'node:crypto';
import type { BrokerSecrets } from '../../crypto/broker-secrets.js';
import { openBlob, sealBlob } from '../../crypto/aead.js';
import { BrokerError } from '../../wire/errors.js';

const text = new TextEncoder();

/** HMAC-SHA256(master, "access|v1"): the broker's right-of-access storage key. */
export function accessKey(secrets: Pick<BrokerSecrets, 'pseudonymKey'>): Uint8Array {
  return new Uint8Array(createHmac('sha256', secrets.pseudonymKey).update('access|v1').digest());
}

export function sealPatientRef(key: Uint8Array, requestId: string, ref: string): string {
  return Buffer.from(sealBlob(key, text.encode(ref), text.encode(`phi-broker access ref v1|${requestId}`))).toString(
    'base64url',
  );
}

export function openPatientRef(key: Uint8Array, requestId: string, sealed: string): string {
  return new TextDecoder().decode(
    openBlob(
      key,
      new Uint8Array(Buffer.from(sealed, 'base64url')),
      text.encode(`phi-broker access ref v1|${requestId}`),
      'sealedRef',
    ),
  );
}

/** A service's answer (the JSON of its resources) sealed for the answer store. */
export function sealAnswer(key: Uint8Array, requestId: string, service: string, json: string): Uint8Array {
  return sealBlob(key, text.encode(json), text.encode(`phi-broker access answer v1|${requestId}|${service}`));
}

export function openAnswer(key: Uint8Array, requestId: string, service: string, sealed: Uint8Array): string {
  return new TextDecoder().decode(
    openBlob(key, sealed, text.encode(`phi-broker access answer v1|${requestId}|${service}`), 'answer'),
  );
}

/** SHA-256 (hex) of an answer's JSON, as the request records it. */
export function answerHash(json: string): string {
  return createHash('sha256').update(json, 'utf8').digest('hex');
}

/** The ids of requests are ours: `ar-<uuid>`. */
export const REQUEST_ID_PATTERN = /^ar-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export function checkRequestId(id: string): string {
  if (!REQUEST_ID_PATTERN.test(id))
    throw new BrokerError('E_ACCESS_UNKNOWN', 'id: not an access request id (ar-<uuid>)', { path: 'id' });
  return id;
}
