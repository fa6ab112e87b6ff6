// Stored restrictions are PHI (a Consent names its patient and may quote the patient's reason), so what the
// consent bucket holds is sealed: XChaCha20-Poly1305 (src/crypto/aead.ts) under a key derived from the broker's
// pseudonym master key for this purpose alone (HMAC-SHA256 over a label, as src/registry/pseudonym.ts does),
// bound by associated data to the bucket and the KV key, so a value moved under another key (another patient)
// does not open. Value = version byte 0x01 || nonce || ciphertext || tag.
import { createHmac } from 'node:crypto';
import type { BrokerSecrets } from '../crypto/broker-secrets.js';
import { openBlob, sealBlob } from '../crypto/aead.js';
import { BrokerError } from '../wire/errors.js';
import { KV_BUCKETS } from '../wire/names.js';
import { decodeJsonBytes } from '../wire/decode-json.js';

const VERSION = 1;

/** HMAC-SHA256(master, "consent-store|v1"): the consent bucket's sealing key. */
export function consentStoreKey(secrets: Pick<BrokerSecrets, 'pseudonymKey'>): Uint8Array {
  return new Uint8Array(createHmac('sha256', secrets.pseudonymKey).update('consent-store|v1').digest());
}

function aad(kvKey: string): Uint8Array {
  return new TextEncoder().encode(`${KV_BUCKETS.consent}|v${VERSION}|${kvKey}`);
}

export function sealConsentValue(key: Uint8Array, kvKey: string, json: unknown): Uint8Array {
  const sealed = sealBlob(key, new TextEncoder().encode(JSON.stringify(json)), aad(kvKey));
  const out = new Uint8Array(1 + sealed.length);
  out[0] = VERSION;
  out.set(sealed, 1);
  return out;
}

/** The JSON sealed under `kvKey`; E_DECRYPT when it is not a value this key sealed for this KV key. */
export function openConsentValue(key: Uint8Array, kvKey: string, value: Uint8Array): unknown {
  if (value[0] !== VERSION)
    throw new BrokerError('E_DECRYPT', 'consent value: unknown format version', { path: 'consent' });
  const plain = openBlob(key, value.subarray(1), aad(kvKey), 'consent');
  return decodeJsonBytes(plain, {
    what: 'consent value',
    malformedCode: 'E_DECRYPT',
    path: 'consent',
    message: 'consent value: not JSON after opening',
  });
}
