// XChaCha20-Poly1305-IETF authenticated encryption (draft-irtf-cfrg-xchacha-03 over RFC 8439 ChaCha20-Poly1305):
// 32-byte key, random 24-byte nonce, 16-byte tag. A sealed value is `nonce || ciphertext || tag`. The extended nonce
// makes random nonces safe for any number of messages per key. sealBlob/openBlob serve the broker's quarantine
// copies, access answers and references; the envelope's own AEADs go through aead-text.ts (LeafCipher).
// Both run in a scratch block of libsodium's WebAssembly memory that is zeroed and freed before they return:
// libsodium-wrappers' own functions copy key, AAD and plaintext into heap allocations they free without
// clearing, so key material and PHI would stay readable in that heap until overwritten.
import { BrokerError } from '../wire/errors.js';
import { toBase64url } from './base64url.js';
import { randomBytes, type RandomSource } from './random.js';
import { getSodium } from './sodium.js';
import { heapOf, raw, zero } from './wasm-heap.js';

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
  const inHeap = sealInHeap(key, plaintext, aad, nonce);
  if (inHeap !== undefined) return inHeap;
  const ct = getSodium().crypto_aead_xchacha20poly1305_ietf_encrypt(plaintext, aad, null, nonce, key);
  const out = new Uint8Array(NONCE_BYTES + ct.length);
  out.set(nonce, 0);
  out.set(ct, NONCE_BYTES);
  return out;
}

/** A plain Uint8Array copy of heap[start, end) (as libsodium-wrappers returns: not a Buffer, not a view). */
function copyOut(heap: Uint8Array, start: number, end: number): Uint8Array {
  return new Uint8Array(heap.buffer, heap.byteOffset + start, end - start).slice();
}

/** `nonce || ciphertext || tag` computed in a zeroed scratch block; undefined when the raw module is not exposed. */
function sealInHeap(
  key: Uint8Array,
  plaintext: Uint8Array,
  aad: Uint8Array,
  nonce: Uint8Array,
): Uint8Array | undefined {
  const m = raw();
  if (m === null) return undefined;
  const mlen = plaintext.length;
  // Layout: key | aad | plaintext | nonce | ciphertext+tag.
  const size = KEY_BYTES + aad.length + mlen + NONCE_BYTES + mlen + TAG_BYTES;
  const p = m._malloc(size);
  if (p === 0) throw new RangeError('libsodium could not allocate memory');
  const heap = heapOf(m); // after malloc: it may have grown (and so replaced) the memory
  const ap = p + KEY_BYTES;
  const mp = ap + aad.length;
  const np = mp + mlen;
  const cp = np + NONCE_BYTES;
  try {
    heap.set(key, p);
    heap.set(aad, ap);
    heap.set(plaintext, mp);
    heap.set(nonce, np);
    if (m._crypto_aead_xchacha20poly1305_ietf_encrypt(cp, 0, mp, mlen, 0, ap, aad.length, 0, 0, np, p) !== 0)
      throw new BrokerError('E_INTERNAL', 'libsodium refused to encrypt');
    return copyOut(heap, np, cp + mlen + TAG_BYTES);
  } finally {
    zero(heap, p, p + size);
    m._free(p);
  }
}

/** The plaintext opened in a zeroed scratch block; null when it does not authenticate; undefined without the raw module. */
function openInHeap(key: Uint8Array, sealed: Uint8Array, aad: Uint8Array): Uint8Array | null | undefined {
  const m = raw();
  if (m === null) return undefined;
  const n = sealed.length;
  const mlen = n - NONCE_BYTES - TAG_BYTES;
  // Layout: key | aad | nonce+ciphertext+tag | plaintext.
  const size = KEY_BYTES + aad.length + n + mlen;
  const p = m._malloc(size);
  if (p === 0) throw new RangeError('libsodium could not allocate memory');
  const heap = heapOf(m);
  const ap = p + KEY_BYTES;
  const sp = ap + aad.length;
  const mp = sp + n;
  try {
    heap.set(key, p);
    heap.set(aad, ap);
    heap.set(sealed, sp);
    if (
      m._crypto_aead_xchacha20poly1305_ietf_decrypt(
        mp,
        0,
        0,
        sp + NONCE_BYTES,
        n - NONCE_BYTES,
        0,
        ap,
        aad.length,
        0,
        sp,
        p,
      ) !== 0
    )
      return null;
    return copyOut(heap, mp, mp + mlen);
  } finally {
    zero(heap, p, p + size);
    m._free(p);
  }
}

/**
 * Decrypts `nonce || ciphertext || tag` made by sealBlob with the same key and aad.
 * Any failure (too short, wrong key, wrong aad, altered byte) is E_DECRYPT; `path` names what was being opened.
 */
export function openBlob(key: Uint8Array, sealed: Uint8Array, aad: Uint8Array, path = '$blob'): Uint8Array {
  checkKey(key);
  if (sealed.length < NONCE_BYTES + TAG_BYTES) throw decryptError(path);
  const inHeap = openInHeap(key, sealed, aad);
  if (inHeap === null) throw decryptError(path);
  if (inHeap !== undefined) return inHeap;
  try {
    return getSodium().crypto_aead_xchacha20poly1305_ietf_decrypt(
      null,
      sealed.subarray(NONCE_BYTES),
      aad,
      sealed.subarray(0, NONCE_BYTES),
      key,
    );
  } catch (cause) {
    throw decryptError(path, cause);
  }
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
  if (sealed.length < NONCE_BYTES + TAG_BYTES) return undefined;
  const inHeap = openInHeap(key, sealed, aad);
  if (inHeap === null) return undefined;
  try {
    if (inHeap !== undefined) return utf8Fatal.decode(inHeap); // not UTF-8: undefined, as libsodium's 'text' output throws
    return getSodium().crypto_aead_xchacha20poly1305_ietf_decrypt(
      null,
      sealed.subarray(NONCE_BYTES),
      aad,
      sealed.subarray(0, NONCE_BYTES),
      key,
      'text',
    );
  } catch {
    return undefined;
  }
}

const utf8Fatal = new TextDecoder('utf-8', { fatal: true });

function decryptError(path: string, cause?: unknown): BrokerError {
  return new BrokerError(
    'E_DECRYPT',
    `${path} could not be decrypted or authenticated`,
    cause === undefined ? { path } : { path, cause },
  );
}
