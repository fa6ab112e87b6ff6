// XChaCha20-Poly1305-IETF authenticated encryption (draft-irtf-cfrg-xchacha-03 over RFC 8439 ChaCha20-Poly1305):
// 32-byte key, random 24-byte nonce, 16-byte tag. A sealed value is `nonce || ciphertext || tag`. The extended nonce
// makes random nonces safe for any number of messages per key. Used for envelope leaves, key wrapping and the broker's
// quarantine copies (sealBlob/openBlob).
import { BrokerError } from '../errors.js';
import { toBase64url } from './base64url.js';
import { randomBytes, type RandomSource } from './random.js';
import { getSodium } from './sodium.js';

export const KEY_BYTES = 32;
export const NONCE_BYTES = 24;
export const TAG_BYTES = 16;

function checkKey(key: Uint8Array): void {
  if (!(key instanceof Uint8Array) || key.length !== KEY_BYTES) throw new TypeError(`AEAD key must be ${KEY_BYTES} bytes`);
}

/** Encrypts `plaintext` bound to `aad`; returns `nonce || ciphertext || tag`. */
export function sealBlob(key: Uint8Array, plaintext: Uint8Array, aad: Uint8Array, random: RandomSource = randomBytes): Uint8Array {
  checkKey(key);
  const nonce = random(NONCE_BYTES);
  if (nonce.length !== NONCE_BYTES) throw new TypeError('random source returned the wrong number of bytes');
  const ct = getSodium().crypto_aead_xchacha20poly1305_ietf_encrypt(plaintext, aad, null, nonce, key);
  const out = new Uint8Array(NONCE_BYTES + ct.length);
  out.set(nonce, 0);
  out.set(ct, NONCE_BYTES);
  return out;
}

/**
 * Decrypts `nonce || ciphertext || tag` made by sealBlob with the same key and aad.
 * Any failure (too short, wrong key, wrong aad, altered byte) is E_DECRYPT; `path` names what was being opened.
 */
export function openBlob(key: Uint8Array, sealed: Uint8Array, aad: Uint8Array, path = '$blob'): Uint8Array {
  checkKey(key);
  if (sealed.length < NONCE_BYTES + TAG_BYTES) throw decryptError(path);
  try {
    return getSodium().crypto_aead_xchacha20poly1305_ietf_decrypt(null, sealed.subarray(NONCE_BYTES), aad, sealed.subarray(0, NONCE_BYTES), key);
  } catch (cause) {
    throw decryptError(path, cause);
  }
}

/**
 * sealBlob, returned as base64url text. The nonce (24 bytes) is a multiple of 3 bytes long, so
 * base64url(nonce) + base64url(ct) = base64url(nonce || ct) and no concatenated copy is needed.
 */
export function sealBlobBase64url(key: Uint8Array, plaintext: Uint8Array, aad: Uint8Array, random: RandomSource): string {
  const nonce = random(NONCE_BYTES);
  if (nonce.length !== NONCE_BYTES) throw new TypeError('random source returned the wrong number of bytes');
  const ct = getSodium().crypto_aead_xchacha20poly1305_ietf_encrypt(plaintext, aad, null, nonce, key);
  return toBase64url(nonce) + toBase64url(ct);
}

/**
 * Like openBlob but returns the plaintext decoded as UTF-8 text (libsodium decodes it; one copy fewer), or undefined
 * when it does not authenticate: the caller builds the error, naming the path in a form fit to show.
 */
export function openBlobText(key: Uint8Array, sealed: Uint8Array, aad: Uint8Array): string | undefined {
  if (sealed.length < NONCE_BYTES + TAG_BYTES) return undefined;
  try {
    return getSodium().crypto_aead_xchacha20poly1305_ietf_decrypt(null, sealed.subarray(NONCE_BYTES), aad, sealed.subarray(0, NONCE_BYTES), key, 'text');
  } catch {
    return undefined;
  }
}

function decryptError(path: string, cause?: unknown): BrokerError {
  return new BrokerError('E_DECRYPT', `${path} could not be decrypted or authenticated`, cause === undefined ? { path } : { path, cause });
}
