// XChaCha20-Poly1305-IETF (src/crypto/aead.ts) for the envelope's leaves, text in and text out: the same
// construction and the same bytes as sealBlobBase64url / openBlobText, without their per-call copies. The
// UTF-8 plaintext and AAD are written straight into one scratch area of libsodium's WebAssembly memory, the
// nonce is placed right before the ciphertext so `nonce || ciphertext || tag` is read out as base64url in one
// call (and decoded into place when opening), and the scratch area is zeroed after every call (key and
// plaintext never linger in the heap). libsodium-wrappers' own functions copy each argument into a fresh
// allocation, copy the result out again and decode text with a new TextDecoder each time: on a ~1.6 KB
// Patient with three subscribers those copies cost more than the cipher. When the libsodium build does not
// expose what this needs, the wrapper's functions are used instead (same results, slower).
import { base64urlDecodedLength, isCanonicalBase64url } from './base64url.js';
import type { RandomSource } from './random.js';
import { getSodium } from './sodium.js';

const KEY_BYTES = 32;
const NONCE_BYTES = 24;
const TAG_BYTES = 16;

/** The raw libsodium module inside libsodium-wrappers (Emscripten): its heap and the C functions used here. */
interface SodiumModule {
  readonly HEAPU8: Uint8Array;
  _malloc(size: number): number;
  _free(ptr: number): void;
  // 64-bit lengths are passed as two 32-bit halves (low, high), as libsodium-wrappers itself passes them.
  _crypto_aead_xchacha20poly1305_ietf_encrypt(c: number, clenP: number, m: number, mlenLo: number, mlenHi: number, ad: number, adlenLo: number, adlenHi: number, nsec: number, npub: number, k: number): number;
  _crypto_aead_xchacha20poly1305_ietf_decrypt(m: number, mlenP: number, nsec: number, c: number, clenLo: number, clenHi: number, ad: number, adlenLo: number, adlenHi: number, npub: number, k: number): number;
}

let module: SodiumModule | null | undefined;
let scratch = 0;
let scratchSize = 0;
let heapView: Buffer | undefined;
const utf8Fatal = new TextDecoder('utf-8', { fatal: true });

function raw(): SodiumModule | null {
  if (module === undefined) {
    const m = (getSodium() as unknown as { libsodium?: Partial<SodiumModule> }).libsodium;
    const ok =
      m !== undefined &&
      m.HEAPU8 instanceof Uint8Array &&
      typeof m._malloc === 'function' &&
      typeof m._free === 'function' &&
      typeof m._crypto_aead_xchacha20poly1305_ietf_encrypt === 'function' &&
      typeof m._crypto_aead_xchacha20poly1305_ietf_decrypt === 'function';
    module = ok ? (m as SodiumModule) : null;
  }
  return module;
}

/** The scratch area (at least `size` bytes) and a Buffer over the whole heap (re-read: the heap may have grown). */
function area(m: SodiumModule, size: number): { p: number; heap: Buffer } {
  if (size > scratchSize) {
    if (scratch !== 0) m._free(scratch);
    let cap = 4096;
    while (cap < size) cap *= 2;
    scratch = m._malloc(cap);
    if (scratch === 0) {
      scratchSize = 0;
      throw new RangeError('libsodium could not allocate scratch memory');
    }
    scratchSize = cap;
  }
  if (heapView === undefined || heapView.buffer !== m.HEAPU8.buffer) heapView = Buffer.from(m.HEAPU8.buffer);
  return { p: scratch, heap: heapView };
}

/**
 * base64url(nonce || XChaCha20-Poly1305(key, nonce, UTF-8(plaintext), UTF-8(aad))) with a fresh nonce from `random`:
 * byte for byte what sealBlobBase64url(key, utf8(plaintext), utf8(aad), random) returns.
 */
export function sealTextBase64url(key: Uint8Array, plaintext: string, aad: string, random: RandomSource): string {
  if (!(key instanceof Uint8Array) || key.length !== KEY_BYTES) throw new TypeError(`AEAD key must be ${KEY_BYTES} bytes`);
  const nonce = random(NONCE_BYTES);
  if (nonce.length !== NONCE_BYTES) throw new TypeError('random source returned the wrong number of bytes');
  const m = raw();
  if (m === null) {
    const ct = getSodium().crypto_aead_xchacha20poly1305_ietf_encrypt(Buffer.from(plaintext, 'utf8'), Buffer.from(aad, 'utf8'), null, nonce, key);
    return Buffer.from(nonce).toString('base64url') + Buffer.from(ct.buffer, ct.byteOffset, ct.byteLength).toString('base64url');
  }
  // Layout: key | aad | plaintext | nonce | ciphertext+tag. UTF-8 takes at most 3 bytes per UTF-16 unit.
  const maxPlain = plaintext.length * 3;
  const { p, heap } = area(m, KEY_BYTES + aad.length * 3 + maxPlain + NONCE_BYTES + maxPlain + TAG_BYTES);
  heap.set(key, p);
  const ap = p + KEY_BYTES;
  const alen = heap.write(aad, ap, 'utf8');
  const mp = ap + alen;
  const mlen = heap.write(plaintext, mp, 'utf8');
  const np = mp + mlen;
  heap.set(nonce, np);
  const cp = np + NONCE_BYTES;
  const end = cp + mlen + TAG_BYTES;
  try {
    if (m._crypto_aead_xchacha20poly1305_ietf_encrypt(cp, 0, mp, mlen, 0, ap, alen, 0, 0, np, p) !== 0) throw new Error('libsodium refused to encrypt');
    return heap.toString('base64url', np, end);
  } finally {
    heap.fill(0, p, end);
  }
}

/**
 * Opens base64url(nonce || ciphertext || tag) sealed under `key` with UTF-8(aad) and returns the plaintext as text;
 * undefined when the text is not canonical base64url, is too short, does not authenticate or is not UTF-8 —
 * exactly when openBlobText(key, fromBase64url(sealed), utf8(aad)) gives undefined (or fromBase64url does).
 */
export function openTextBase64url(key: Uint8Array, sealed: string, aad: string): string | undefined {
  if (!(key instanceof Uint8Array) || key.length !== KEY_BYTES) throw new TypeError(`AEAD key must be ${KEY_BYTES} bytes`);
  if (!isCanonicalBase64url(sealed)) return undefined;
  const n = base64urlDecodedLength(sealed.length);
  if (n < NONCE_BYTES + TAG_BYTES) return undefined;
  const m = raw();
  if (m === null) {
    const bytes = Buffer.from(sealed, 'base64url');
    try {
      return getSodium().crypto_aead_xchacha20poly1305_ietf_decrypt(null, bytes.subarray(NONCE_BYTES), Buffer.from(aad, 'utf8'), bytes.subarray(0, NONCE_BYTES), key, 'text');
    } catch {
      return undefined;
    }
  }
  // Layout: key | aad | nonce | ciphertext+tag | plaintext.
  const { p, heap } = area(m, KEY_BYTES + aad.length * 3 + n + n);
  heap.set(key, p);
  const ap = p + KEY_BYTES;
  const alen = heap.write(aad, ap, 'utf8');
  const np = ap + alen;
  const written = heap.write(sealed, np, n, 'base64url');
  const cp = np + NONCE_BYTES;
  const clen = n - NONCE_BYTES;
  const mp = np + n;
  const mlen = clen - TAG_BYTES;
  try {
    if (written !== n) return undefined;
    if (m._crypto_aead_xchacha20poly1305_ietf_decrypt(mp, 0, 0, cp, clen, 0, ap, alen, 0, np, p) !== 0) return undefined;
    try {
      return utf8Fatal.decode(heap.subarray(mp, mp + mlen));
    } catch {
      return undefined; // not UTF-8 (libsodium-wrappers' 'text' output throws here too)
    }
  } finally {
    heap.fill(0, p, mp + mlen);
  }
}
