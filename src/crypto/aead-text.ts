// XChaCha20-Poly1305-IETF (src/crypto/aead.ts) for the envelope's leaves and wrapped data keys, text in and text
// out: the same construction and the same bytes as sealBlobBase64url / openBlobText / sealBlob / openBlob, without
// their per-call copies. A LeafCipher serves the leaves of one message under one key: the key and the constant
// parts of the AAD (`v1|<id>|` before the element path and `|<dk>` after it, src/envelope/aad.ts) are written once
// into a scratch block of libsodium's WebAssembly memory, the element path is extended and cut back in place as
// the caller walks the resource, and each leaf then writes only its UTF-8 plaintext and its nonce; the nonce sits
// right before the ciphertext so `nonce || ciphertext || tag` is read out as base64url in one call (and decoded
// into place when opening). `dispose()` zeroes every byte the block held and frees it, so key, paths and
// plaintext never outlive the message. libsodium-wrappers' own functions copy each argument into a fresh
// allocation (freed without zeroing), copy the result out again and decode text with a new TextDecoder each time:
// on a ~1.6 KB Patient with three subscribers those copies cost more than the cipher. It stays on WebAssembly with
// either backend: for leaves of tens of bytes a call into WebAssembly costs less than sodium-native's N-API call
// (docs/performance.md, "Native libsodium"). When the libsodium build does not expose what this needs, aead.ts's
// functions (the backend in use) serve instead: same results, slower.
import { BrokerError } from '../wire/errors.js';
import { KEY_BYTES, NONCE_BYTES, TAG_BYTES, openBlob, openBlobText, sealBlobBase64url } from './aead.js';
import { base64urlDecodedLength, fromBase64url, isCanonicalBase64url } from './base64url.js';
import { randomBytes, takeRandomInto, type RandomSource } from './random.js';
import {
  SHORT_SEALED,
  SHORT_TEXT,
  decodeBase64urlInto,
  heapOf,
  raw,
  readBase64url,
  readUtf8Lenient,
  writeBase64url,
  writeUtf8,
  zero,
  type HeapBuffer,
  type SodiumModule,
} from './wasm-heap.js';

const utf8Fatal = new TextDecoder('utf-8', { fatal: true });

/**
 * The leaves of one message under one key: AAD = UTF-8(aadPrefix + middle + aadSuffix). The middle (the element
 * path) is built in place as the caller walks the resource — appendMiddle when it enters a member or an item,
 * truncateMiddle when it leaves — so a path is written once per node, not once per leaf, and never exists as a
 * string unless middle() is asked for it (to build an error). Not reentrant: one LeafCipher per sealing or
 * opening, then dispose().
 */
export class LeafCipher {
  readonly #key: Uint8Array;
  readonly #prefix: string;
  readonly #suffix: string;
  readonly #m: SodiumModule | null;
  /** The scratch block: key | aadPrefix | middle | aadSuffix | data. */
  #p = 0;
  #cap = 0;
  /** Where the middle of the AAD starts (after key and prefix), and its length in bytes. */
  #mid = 0;
  #midLength = 0;
  /** The middle as text, kept only when there is no scratch block (the wrapper's functions take text). */
  #midText = '';
  /** The suffix as UTF-8 bytes, copied after the middle for each leaf. */
  readonly #suffixBytes: Uint8Array;
  /** Where #decrypt left the plaintext. */
  #plainAt = 0;
  #plainLength = 0;

  constructor(key: Uint8Array, aadPrefix: string, aadSuffix: string) {
    if (!(key instanceof Uint8Array) || key.length !== KEY_BYTES)
      throw new TypeError(`AEAD key must be ${KEY_BYTES} bytes`);
    this.#key = key;
    this.#prefix = aadPrefix;
    this.#suffix = aadSuffix;
    this.#suffixBytes = Buffer.from(aadSuffix, 'utf8');
    this.#m = raw();
  }

  /** The heap, with the scratch block holding at least `size` bytes after the end of the middle. */
  #area(m: SodiumModule, size: number): HeapBuffer {
    if (this.#p !== 0 && this.#mid + this.#midLength + size <= this.#p + this.#cap) return heapOf(m);
    const frame = KEY_BYTES + this.#prefix.length * 3 + this.#midLength;
    let cap = 4096;
    while (cap < frame + size) cap *= 2;
    const p = m._malloc(cap);
    if (p === 0) throw new RangeError('libsodium could not allocate scratch memory');
    const heap = heapOf(m);
    heap.set(this.#key, p);
    const mid = p + KEY_BYTES + writeUtf8(heap, this.#prefix, p + KEY_BYTES, cap - KEY_BYTES);
    if (this.#p !== 0) heap.copyWithin(mid, this.#mid, this.#mid + this.#midLength); // the path built so far
    this.#release(m);
    this.#p = p;
    this.#cap = cap;
    this.#mid = mid;
    return heap;
  }

  /** Appends `text` (after the byte `lead` unless it is 0) to the middle; returns the mark to truncate back to. */
  appendMiddle(text: string, lead = 0): number {
    const mark = this.#midLength;
    const m = this.#m;
    if (m === null) {
      this.#midText += (lead === 0 ? '' : String.fromCharCode(lead)) + text;
      this.#midLength = this.#midText.length;
      return mark;
    }
    const heap = this.#area(m, text.length * 3 + 1);
    let at = this.#mid + mark;
    if (lead !== 0) heap[at++] = lead;
    this.#midLength = at - this.#mid + writeUtf8(heap, text, at, text.length * 3);
    return mark;
  }

  /** Appends `[index]` to the middle; returns the mark to truncate back to. */
  appendIndex(index: number): number {
    const m = this.#m;
    if (m === null || index > 9) return this.appendMiddle(`[${index}]`);
    const mark = this.#midLength;
    const heap = this.#area(m, 3);
    const at = this.#mid + mark;
    heap[at] = 0x5b;
    heap[at + 1] = 0x30 + index;
    heap[at + 2] = 0x5d;
    this.#midLength = mark + 3;
    return mark;
  }

  /** Cuts the middle back to what it was when `mark` was returned. */
  truncateMiddle(mark: number): void {
    this.#midLength = mark;
    if (this.#m === null) this.#midText = this.#midText.slice(0, mark);
  }

  /** The middle as text (for an error message, through shownPath: it may hold keys a sender wrote). */
  middle(): string {
    const m = this.#m;
    if (m === null) return this.#midText;
    if (this.#p === 0) return '';
    return heapOf(m).toString('utf8', this.#mid, this.#mid + this.#midLength);
  }

  /** Writes the suffix after the middle; returns the AAD's end. */
  #aad(heap: HeapBuffer): number {
    let at = this.#mid + this.#midLength;
    const s = this.#suffixBytes;
    for (let i = 0; i < s.length; i++) heap[at++] = s[i] as number;
    return at;
  }

  /**
   * base64url(nonce || XChaCha20-Poly1305(key, nonce, UTF-8(plaintext), aad)) with a fresh nonce from `random`:
   * byte for byte what sealBlobBase64url(key, utf8(plaintext), utf8(aad), random) returns.
   */
  seal(plaintext: string, random: RandomSource): string {
    const m = this.#m;
    if (m === null)
      return sealBlobBase64url(this.#key, utf8(plaintext), utf8(this.#prefix + this.#midText + this.#suffix), random);
    // Data after the AAD: plaintext | nonce | ciphertext+tag. UTF-8 takes at most 3 bytes per UTF-16 unit.
    const maxPlain = plaintext.length * 3;
    const heap = this.#area(m, this.#suffixBytes.length + maxPlain + NONCE_BYTES + maxPlain + TAG_BYTES);
    const mp = this.#aad(heap);
    return this.#encrypt(m, heap, mp, writeUtf8(heap, plaintext, mp, maxPlain), random);
  }

  /**
   * seal(JSON.stringify(value), random) for a string leaf, without building that text when the string is short
   * printable ASCII without `"` or `\\` (then its JSON text is the string in double quotes).
   */
  sealJsonString(value: string, random: RandomSource): string {
    const m = this.#m;
    const n = value.length;
    if (m === null || n > SHORT_TEXT) return this.seal(JSON.stringify(value), random);
    const heap = this.#area(m, this.#suffixBytes.length + 2 * (n + 2) + NONCE_BYTES + TAG_BYTES);
    const mp = this.#aad(heap);
    heap[mp] = 0x22;
    for (let i = 0; i < n; i++) {
      const c = value.charCodeAt(i);
      if (c < 0x20 || c === 0x22 || c === 0x5c || c >= 0x80) return this.seal(JSON.stringify(value), random);
      heap[mp + 1 + i] = c;
    }
    heap[mp + 1 + n] = 0x22;
    return this.#encrypt(m, heap, mp, n + 2, random);
  }

  /**
   * base64url(nonce || XChaCha20-Poly1305(key, nonce, plaintext, aad)) of bytes (a wrapped data key): byte for byte
   * toBase64url(sealBlob(key, plaintext, utf8(aad), random)), with nothing left in the heap after dispose().
   */
  sealBytes(plaintext: Uint8Array, random: RandomSource): string {
    const m = this.#m;
    if (m === null)
      return sealBlobBase64url(this.#key, plaintext, utf8(this.#prefix + this.#midText + this.#suffix), random);
    const n = plaintext.length;
    const heap = this.#area(m, this.#suffixBytes.length + n + NONCE_BYTES + n + TAG_BYTES);
    const mp = this.#aad(heap);
    heap.set(plaintext, mp);
    return this.#encrypt(m, heap, mp, n, random);
  }

  /** Draws the nonce (right after the plaintext at `mp`), encrypts, returns base64url(nonce || ciphertext || tag). */
  #encrypt(m: SodiumModule, heap: HeapBuffer, mp: number, mlen: number, random: RandomSource): string {
    const ap = this.#p + KEY_BYTES;
    const np = mp + mlen;
    if (random === randomBytes) takeRandomInto(heap, np, NONCE_BYTES);
    else {
      const nonce = random(NONCE_BYTES);
      if (nonce.length !== NONCE_BYTES) throw new TypeError('random source returned the wrong number of bytes');
      heap.set(nonce, np);
    }
    const cp = np + NONCE_BYTES;
    const end = cp + mlen + TAG_BYTES;
    if (m._crypto_aead_xchacha20poly1305_ietf_encrypt(cp, 0, mp, mlen, 0, ap, mp - ap, 0, 0, np, this.#p) !== 0)
      throw new BrokerError('E_INTERNAL', 'libsodium refused to encrypt');
    return readBase64url(heap, np, end);
  }

  /**
   * Opens base64url(nonce || ciphertext || tag) and returns the plaintext as text; undefined when the text is not
   * canonical base64url, is too short, does not authenticate or is not UTF-8 — exactly when
   * openBlobText(key, fromBase64url(sealed), utf8(aad)) gives undefined (or fromBase64url does).
   */
  open(sealed: string): string | undefined {
    const m = this.#m;
    if (m === null) return openTextOneCall(this.#key, sealed, this.#prefix + this.#midText + this.#suffix);
    const heap = this.#decrypt(m, sealed);
    if (heap === undefined) return undefined;
    const mp = this.#plainAt;
    const mlen = this.#plainLength;
    const text = readUtf8Lenient(heap, mp, mp + mlen);
    if (!text.includes('\ufffd')) return text;
    // A replacement character: either in the plaintext or standing for bytes that are not UTF-8. Only a strict
    // decode tells (libsodium-wrappers' 'text' output refuses the latter too).
    try {
      return utf8Fatal.decode(heap.subarray(mp, mp + mlen));
    } catch {
      return undefined;
    }
  }

  /**
   * Opens what sealBytes sealed; a copy of the plaintext bytes, or undefined exactly when
   * openBlob(key, fromBase64url(sealed), utf8(aad)) would throw (or fromBase64url gives undefined).
   */
  openBytes(sealed: string): Uint8Array | undefined {
    const m = this.#m;
    if (m === null) return openBytesOneCall(this.#key, sealed, this.#prefix + this.#midText + this.#suffix);
    const heap = this.#decrypt(m, sealed);
    if (heap === undefined) return undefined;
    return new Uint8Array(heap.buffer, heap.byteOffset + this.#plainAt, this.#plainLength).slice(); // a copy, not a Buffer
  }

  /** Decrypts into the scratch block (plaintext at #plainAt, #plainLength bytes); undefined for any failure. */
  #decrypt(m: SodiumModule, sealed: string): HeapBuffer | undefined {
    const n = base64urlDecodedLength(sealed.length);
    if (sealed.length > SHORT_SEALED) {
      if (!isCanonicalBase64url(sealed) || n < NONCE_BYTES + TAG_BYTES) return undefined;
    } else if (sealed.length % 4 === 1 || n < NONCE_BYTES + TAG_BYTES) return undefined;
    // Data after the AAD: nonce | ciphertext+tag | plaintext.
    const heap = this.#area(m, this.#suffixBytes.length + n + n);
    const ap = this.#p + KEY_BYTES;
    const np = this.#aad(heap);
    // A short text is checked (canonical base64url, as isCanonicalBase64url) and decoded in one loop.
    const written =
      sealed.length > SHORT_SEALED ? writeBase64url(heap, sealed, np, n) : decodeBase64urlInto(heap, sealed, np);
    const cp = np + NONCE_BYTES;
    const clen = n - NONCE_BYTES;
    const mp = np + n;
    const mlen = clen - TAG_BYTES;
    if (written !== n) return undefined;
    if (m._crypto_aead_xchacha20poly1305_ietf_decrypt(mp, 0, 0, cp, clen, 0, ap, np - ap, 0, np, this.#p) !== 0)
      return undefined;
    this.#plainAt = mp;
    this.#plainLength = mlen;
    return heap;
  }

  /** Zeroes what the scratch block held (key, AAD, plaintexts) and frees it. Safe to call more than once. */
  dispose(): void {
    if (this.#m !== null) this.#release(this.#m);
    this.#midLength = 0;
    this.#midText = '';
  }

  #release(m: SodiumModule): void {
    if (this.#p === 0) return;
    zero(heapOf(m), this.#p, this.#p + this.#cap); // the whole block: a throw mid-leaf leaves nothing behind either
    m._free(this.#p);
    this.#p = 0;
    this.#cap = 0;
  }
}

// Without the raw module (the LeafCipher's #m is null) the one-call functions of aead.ts serve: they then use
// libsodium-wrappers' own functions, with the same bytes and the same verdicts.
function utf8(text: string): Uint8Array {
  return Buffer.from(text, 'utf8');
}

function openBytesOneCall(key: Uint8Array, sealed: string, aad: string): Uint8Array | undefined {
  const bytes = fromBase64url(sealed);
  if (bytes === undefined) return undefined;
  try {
    return openBlob(key, bytes, utf8(aad));
  } catch {
    return undefined;
  }
}

function openTextOneCall(key: Uint8Array, sealed: string, aad: string): string | undefined {
  const bytes = fromBase64url(sealed);
  return bytes === undefined ? undefined : openBlobText(key, bytes, utf8(aad));
}

/** `use` with a LeafCipher over `key` and that AAD frame, disposed (zeroed and freed) however `use` ends. */
export function withLeafCipher<T>(
  key: Uint8Array,
  aadPrefix: string,
  aadSuffix: string,
  use: (cipher: LeafCipher) => T,
): T {
  const cipher = new LeafCipher(key, aadPrefix, aadSuffix);
  try {
    return use(cipher);
  } finally {
    cipher.dispose();
  }
}

/** One leaf on its own (a LeafCipher for one call): byte for byte sealBlobBase64url(key, utf8(plaintext), utf8(aad), random). */
export function sealTextBase64url(key: Uint8Array, plaintext: string, aad: string, random: RandomSource): string {
  return withLeafCipher(key, '', '', (cipher) => {
    cipher.appendMiddle(aad);
    return cipher.seal(plaintext, random);
  });
}

/** One leaf on its own: exactly what openBlobText(key, fromBase64url(sealed), utf8(aad)) gives (undefined for any failure). */
export function openTextBase64url(key: Uint8Array, sealed: string, aad: string): string | undefined {
  return withLeafCipher(key, '', '', (cipher) => {
    cipher.appendMiddle(aad);
    return cipher.open(sealed);
  });
}
