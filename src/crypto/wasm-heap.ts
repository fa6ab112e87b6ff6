// Byte-level access to libsodium's WebAssembly memory for src/crypto/aead-text.ts: the raw Emscripten module
// inside libsodium-wrappers (its heap and the C functions called directly), a Buffer over the heap, and the
// cheapest way to move short text in and out of it — Buffer's own per-encoding methods (what `write` and
// `toString` dispatch to after checking their arguments) and, for short ASCII text and base64url (RFC 4648
// section 5) leaves, plain loops, which cost less than a call into C++ for strings of a few dozen characters.
import { getSodium } from './sodium.js';

/** The raw libsodium module inside libsodium-wrappers (Emscripten): its heap and the C functions used here. */
export interface SodiumModule {
  readonly HEAPU8: Uint8Array;
  _malloc(size: number): number;
  _free(ptr: number): void;
  // 64-bit lengths are passed as two 32-bit halves (low, high), as libsodium-wrappers itself passes them.
  _crypto_aead_xchacha20poly1305_ietf_encrypt(
    c: number,
    clenP: number,
    m: number,
    mlenLo: number,
    mlenHi: number,
    ad: number,
    adlenLo: number,
    adlenHi: number,
    nsec: number,
    npub: number,
    k: number,
  ): number;
  _crypto_aead_xchacha20poly1305_ietf_decrypt(
    m: number,
    mlenP: number,
    nsec: number,
    c: number,
    clenLo: number,
    clenHi: number,
    ad: number,
    adlenLo: number,
    adlenHi: number,
    npub: number,
    k: number,
  ): number;
}

/**
 * Buffer's own per-encoding methods (what `write`/`toString`/`fill` dispatch to after checking their arguments).
 * Calling them directly skips that argument handling, which costs more than the copy for strings of a few dozen
 * bytes; where a runtime lacks them, the documented methods do the same.
 */
export interface HeapBuffer extends Buffer {
  utf8Write?(text: string, offset: number, max: number): number;
  base64urlWrite?(text: string, offset: number, max: number): number;
  base64urlSlice?(start: number, end: number): string;
  utf8Slice?(start: number, end: number): string;
}
const direct =
  typeof (Buffer.prototype as HeapBuffer).utf8Write === 'function' &&
  typeof (Buffer.prototype as HeapBuffer).base64urlWrite === 'function' &&
  typeof (Buffer.prototype as HeapBuffer).base64urlSlice === 'function' &&
  typeof (Buffer.prototype as HeapBuffer).utf8Slice === 'function';
const writeUtf8Native = direct
  ? (h: HeapBuffer, s: string, at: number, max: number): number =>
      (h.utf8Write as NonNullable<HeapBuffer['utf8Write']>)(s, at, max)
  : (h: HeapBuffer, s: string, at: number, max: number): number => h.write(s, at, max, 'utf8');
/** Below this many UTF-16 units a JavaScript loop writes ASCII text faster than a call into C++ does. */
export const SHORT_TEXT = 64;

/** UTF-8 of `s` at `at` (room for `max` bytes); short ASCII text (element paths, most leaf values) by a loop. */
export function writeUtf8(h: HeapBuffer, s: string, at: number, max: number): number {
  const n = s.length;
  if (n > SHORT_TEXT) return writeUtf8Native(h, s, at, max);
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0x80) return writeUtf8Native(h, s, at, max); // rewrites the whole text: UTF-8 from here on
    h[at + i] = c;
  }
  return n;
}
export const writeBase64url = direct
  ? (h: HeapBuffer, s: string, at: number, max: number): number =>
      (h.base64urlWrite as NonNullable<HeapBuffer['base64urlWrite']>)(s, at, max)
  : (h: HeapBuffer, s: string, at: number, max: number): number => h.write(s, at, max, 'base64url');
export const readBase64url = direct
  ? (h: HeapBuffer, start: number, end: number): string =>
      (h.base64urlSlice as NonNullable<HeapBuffer['base64urlSlice']>)(start, end)
  : (h: HeapBuffer, start: number, end: number): string => h.toString('base64url', start, end);
export const readUtf8Lenient = direct
  ? (h: HeapBuffer, start: number, end: number): string =>
      (h.utf8Slice as NonNullable<HeapBuffer['utf8Slice']>)(start, end)
  : (h: HeapBuffer, start: number, end: number): string => h.toString('utf8', start, end);
export const zero = (h: Uint8Array, start: number, end: number): void =>
  void Uint8Array.prototype.fill.call(h, 0, start, end);

/** Up to this many characters a sealed leaf is decoded by decodeBase64urlInto (a leaf of a typical resource is 60–120). */
export const SHORT_SEALED = 512;
/** base64url (RFC 4648 section 5) character code → 6-bit value, -1 outside the alphabet. */
const B64URL = new Int8Array(128).fill(-1);
for (let i = 0; i < 64; i++)
  B64URL['ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'.charCodeAt(i)] = i;

function sextet(text: string, i: number): number {
  const c = text.charCodeAt(i);
  return c < 128 ? (B64URL[c] as number) : -1;
}

/**
 * Decodes unpadded base64url `text` into `h` at `at`; returns the byte count, or -1 when `text` is not the canonical
 * encoding of some bytes (a character outside the alphabet, a length of 4k + 1, or unused low bits that are not
 * zero): the same verdict as isCanonicalBase64url (src/crypto/base64url.ts).
 */
export function decodeBase64urlInto(h: Uint8Array, text: string, at: number): number {
  const len = text.length;
  if (len % 4 === 1) return -1;
  let o = at;
  let i = 0;
  for (; i + 4 <= len; i += 4) {
    const a = sextet(text, i);
    const b = sextet(text, i + 1);
    const c = sextet(text, i + 2);
    const d = sextet(text, i + 3);
    if ((a | b | c | d) < 0) return -1;
    h[o++] = (a << 2) | (b >> 4);
    h[o++] = ((b & 15) << 4) | (c >> 2);
    h[o++] = ((c & 3) << 6) | d;
  }
  const rest = len - i;
  if (rest >= 2) {
    const a = sextet(text, i);
    const b = sextet(text, i + 1);
    const c = rest === 3 ? sextet(text, i + 2) : 0;
    if ((a | b | c) < 0 || (rest === 2 ? b & 15 : c & 3) !== 0) return -1;
    h[o++] = (a << 2) | (b >> 4);
    if (rest === 3) h[o++] = ((b & 15) << 4) | (c >> 2);
  }
  return o - at;
}

let module: SodiumModule | null | undefined;
let heapView: HeapBuffer | undefined;

export function raw(): SodiumModule | null {
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

/**
 * A Buffer over the whole heap. A malloc anywhere may grow the WebAssembly memory, which replaces its ArrayBuffer
 * and detaches the old one (WebAssembly JS API, Memory.grow): a view over it then has length 0, the cheapest
 * check there is, made on every call.
 */
export function heapOf(m: SodiumModule): HeapBuffer {
  if (heapView === undefined || heapView.length === 0) heapView = Buffer.from(m.HEAPU8.buffer) as HeapBuffer;
  return heapView;
}
