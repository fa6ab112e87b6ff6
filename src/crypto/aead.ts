// XChaCha20-Poly1305-IETF authenticated encryption (draft-irtf-cfrg-xchacha-03 over RFC 8439 ChaCha20-Poly1305):
// 32-byte key, random 24-byte nonce, 16-byte tag. A sealed value is `nonce || ciphertext || tag`. The extended nonce
// makes random nonces safe for any number of messages per key. sealBlob/openBlob serve the broker's quarantine
// copies, access answers and references through the backend in use (src/crypto/backend.ts); a plaintext copy made
// here is zeroed before it is dropped. The envelope's leaves go through aead-text.ts (LeafCipher).
import { BrokerError } from '../wire/errors.js';
import { toBase64url } from './base64url.js';
import { randomBytes, type RandomSource } from './random.js';
import { cryptoBackend } from './sodium.js';

export const KEY_BYTES = 32;
export const NONCE_BYTES = 24;
export const TAG_BYTES = 16;

function checkKey(key: Uint8Array): void {
  if (!(key instanceof Uint8Array) || key.length !== KEY_BYTES)
    throw new TypeError(`AEAD key must be ${KEY_BYTES} bytes`);
}

/** Encrypts `plaintext` bound to `aad`; returns `nonce || ciphertext || tag`. */
export function sealBlob(
  key: Uint8Array,
  plaintext: Uint8Array,
  aad: Uint8Array,
  random: RandomSource = randomBytes,
): Uint8Array {
  checkKey(key);
  const nonce = random(NONCE_BYTES);
  if (nonce.length !== NONCE_BYTES) throw new TypeError('random source returned the wrong number of bytes');
  const out = new Uint8Array(NONCE_BYTES + plaintext.length + TAG_BYTES);
  out.set(nonce, 0);
  cryptoBackend().aeadEncrypt(out.subarray(NONCE_BYTES), plaintext, aad, out.subarray(0, NONCE_BYTES), key);
  return out;
}

/** The plaintext of `nonce || ciphertext || tag` in a new array; null when it does not authenticate. */
function open(key: Uint8Array, sealed: Uint8Array, aad: Uint8Array): Uint8Array | null {
  const plain = new Uint8Array(sealed.length - NONCE_BYTES - TAG_BYTES);
  const ok = cryptoBackend().aeadDecrypt(
    plain,
    sealed.subarray(NONCE_BYTES),
    aad,
    sealed.subarray(0, NONCE_BYTES),
    key,
  );
  return ok ? plain : null;
}

/**
 * Decrypts `nonce || ciphertext || tag` made by sealBlob with the same key and aad.
 * Any failure (too short, wrong key, wrong aad, altered byte) is E_DECRYPT; `path` names what was being opened.
 */
export function openBlob(key: Uint8Array, sealed: Uint8Array, aad: Uint8Array, path = '$blob'): Uint8Array {
  checkKey(key);
  if (sealed.length < NONCE_BYTES + TAG_BYTES) throw decryptError(path);
  const plain = open(key, sealed, aad);
  if (plain === null) throw decryptError(path);
  return plain;
}

/** sealBlob, returned as base64url text. */
export function sealBlobBase64url(
  key: Uint8Array,
  plaintext: Uint8Array,
  aad: Uint8Array,
  random: RandomSource,
): string {
  return toBase64url(sealBlob(key, plaintext, aad, random));
}

/**
 * Like openBlob but returns the plaintext decoded as UTF-8 text, or undefined when it does not authenticate or is
 * not UTF-8: the caller builds the error, naming the path in a form fit to show.
 */
export function openBlobText(key: Uint8Array, sealed: Uint8Array, aad: Uint8Array): string | undefined {
  checkKey(key);
  if (sealed.length < NONCE_BYTES + TAG_BYTES) return undefined;
  const plain = open(key, sealed, aad);
  if (plain === null) return undefined;
  try {
    return utf8Fatal.decode(plain);
  } catch {
    return undefined;
  } finally {
    plain.fill(0);
  }
}

const utf8Fatal = new TextDecoder('utf-8', { fatal: true });

function decryptError(path: string): BrokerError {
  return new BrokerError('E_DECRYPT', `${path} could not be decrypted or authenticated`, { path });
}
