// Verifying and opening a phi-broker envelope v1 (docs/wire-format.md). Verify the Ed25519 signature (RFC 8032) over
// the exact bytes received before trusting anything parsed from them; then unwrap the recipient's copy of the data
// key and decrypt each sealed leaf, checking it against its message id, element path and data key id.
import { fromBase64url } from '../crypto/base64url.js';
import { KEY_BYTES } from '../crypto/aead.js';
import { withLeafCipher } from '../crypto/aead-text.js';
import type { Kek } from '../crypto/kek.js';
import type { Keyring } from '../crypto/keyring.js';
import { SIGNATURE_BYTES, verifyDetached } from '../crypto/sign.js';
import { BrokerError } from '../wire/errors.js';
import { leafAadPrefix, leafAadSuffix, wrapAadText } from './aad.js';
import { openResource } from './leaves.js';
import { parseEnvelope } from './parse.js';
import { type Envelope, type RawPayload } from './types.js';
import { RAW_TYPE } from '../wire/ids.js';

export { parseEnvelope };
export type { Envelope, Provenance, RawPayload, SealedBody, WrappedKey } from './types.js';

function signatureError(reason: string): BrokerError {
  return new BrokerError('E_SIGNATURE', `envelope signature ${reason}`);
}

/** Checks `sig` (base64url, e.g. the Phi-Sig header) over `bytes`. E_SIGNATURE when missing, malformed or wrong. */
export function verifyEnvelope(bytes: Uint8Array, sig: string | undefined, publicKey: Uint8Array): void {
  if (sig === undefined || sig === '') throw signatureError('is missing');
  const raw = fromBase64url(sig);
  if (raw === undefined || raw.length !== SIGNATURE_BYTES) throw signatureError('is malformed');
  if (!verifyDetached(bytes, raw, publicKey)) throw signatureError('does not verify with the named key');
}

/**
 * Parse + sender check + signature in one call: the kid must be held by the keyring (E_KEY_UNKNOWN), be owned by
 * the issuer (E_SIGNATURE), and its key must verify the bytes (E_SIGNATURE). Returns the parsed envelope.
 */
export function verifySignedEnvelope(bytes: Uint8Array, sig: string | undefined, keyring: Keyring): Envelope {
  const env = parseEnvelope(bytes);
  const publicKey = keyring.signingPublicKey(env.kid);
  if (keyring.ownerOf(env.kid) !== env.iss) throw signatureError('key does not belong to the issuer');
  verifyEnvelope(bytes, sig, publicKey);
  return env;
}

/** The data key of `recipient`, unwrapped. E_KEY_UNKNOWN when the envelope has no copy for it or the KEK differs. */
function unwrapDataKey(env: Envelope, recipient: string, kek: Kek | ((kekId: string) => Kek)): Uint8Array {
  const index = env.keys.findIndex((k) => k.to === recipient);
  const entry = env.keys[index];
  if (entry === undefined)
    throw new BrokerError('E_KEY_UNKNOWN', `the envelope holds no data key for recipient ${recipient}`, {
      path: 'keys',
    });
  const path = `keys[${index}].wk`;
  const resolved = typeof kek === 'function' ? kek(entry.kek) : kek;
  if (resolved.id !== entry.kek)
    throw new BrokerError('E_KEY_UNKNOWN', `${path}: wrapped under KEK ${entry.kek}, not the one given`, {
      path: `keys[${index}].kek`,
    });
  // Opened in a scratch block that is zeroed afterwards: neither KEK nor data key stays in WebAssembly memory.
  const key = withLeafCipher(resolved.key, '', '', (unwrapper) => {
    unwrapper.appendMiddle(wrapAadText(env.id, recipient, entry.kek, env.dk));
    return unwrapper.openBytes(entry.wk);
  });
  if (key === undefined || key.length !== KEY_BYTES)
    throw new BrokerError('E_DECRYPT', `${path} could not be decrypted or authenticated`, { path });
  return key;
}

/**
 * Opens an envelope for `recipient`: the resource (structured mode) or `{ raw }` (typ `$raw`). `kek` is the KEK the
 * recipient shares with the sender, or a resolver from KEK id (e.g. `(id) => keyring.kekForId(id)`).
 * Does not verify the signature: call verifyEnvelope / verifySignedEnvelope first.
 */
export function openEnvelope(env: Envelope, recipient: string, kek: Kek | ((kekId: string) => Kek)): unknown {
  const dataKey = unwrapDataKey(env, recipient, kek);
  try {
    if (env.typ !== RAW_TYPE && typeof env.body !== 'object')
      throw new BrokerError('E_ENVELOPE_INVALID', 'envelope field body: expected a sealed resource object', {
        path: 'body',
      });
    return withLeafCipher(dataKey, leafAadPrefix(env.id), leafAadSuffix(env.dk), (cipher) => {
      if (env.typ !== RAW_TYPE)
        return openResource({ cipher, random: noRandom }, env.body as Record<string, unknown>, env.typ);
      // The one `$raw` leaf, opened in the zeroed scratch block (libsodium-wrappers' openBlob leaves key and
      // plaintext in freed WebAssembly memory).
      cipher.appendMiddle(RAW_TYPE);
      const raw = typeof env.body === 'string' ? cipher.openBytes(env.body) : undefined;
      if (raw === undefined)
        throw new BrokerError('E_DECRYPT', `${RAW_TYPE} could not be decrypted or authenticated`, { path: RAW_TYPE });
      const payload: RawPayload = { raw };
      return payload;
    });
  } finally {
    dataKey.fill(0);
  }
}

function noRandom(): Uint8Array {
  throw new TypeError('opening draws no randomness');
}
