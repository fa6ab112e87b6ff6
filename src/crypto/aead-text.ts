// XChaCha20-Poly1305-IETF (src/crypto/aead.ts) for the envelope's leaves and wrapped data keys, text in and text
// out: the same construction and the same bytes as sealBlobBase64url / openBlobText / sealBlob / openBlob, without
// their per-call copies. A LeafCipher serves the leaves of one message under one key: the constant parts of the AAD
// (`v1|<id>|` before the element path and `|<dk>` after it, src/envelope/aad.ts) are written once into a scratch
// Buffer, the element path is extended and cut back in place as the caller walks the resource, and each leaf then
// writes only its UTF-8 plaintext and its nonce; the nonce sits right before the ciphertext so
// `nonce || ciphertext || tag` is read out as base64url in one call (and decoded into place when opening). The
// backend in use (src/crypto/backend.ts) encrypts between views of that Buffer. `dispose()` zeroes it, so paths
// and plaintexts never outlive the message.
import { KEY_BYTES, NONCE_BYTES, TAG_BYTES } from './aead.js';
import type { CryptoBackend } from './backend.js';
import { base64urlDecodedLength, isCanonicalBase64url } from './base64url.js';
import { randomBytes, takeRandomInto, type RandomSource } from './random.js';
import {
  SHORT_SEALED,
  SHORT_TEXT,
  decodeBase64urlInto,
  readBase64url,
  readUtf8Lenient,
  writeBase64url,
  writeUtf8,
  type ScratchBuffer,
} from './scratch-text.js';
import { cryptoBackend } from './sodium.js';

const utf8Fatal = new TextDecoder('utf-8', { fatal: true });

/** One zeroed scratch Buffer kept between messages (a LeafCipher takes it, or allocates, and gives it back zeroed). */
let spare: ScratchBuffer | undefined;

function takeScratch(size: number): ScratchBuffer {
  if (spare !== undefined && spare.length >= size) {
    const s = spare;
    spare = undefined;
    return s;
  }
  let cap = 4096;
  while (cap < size) cap *= 2;
  return Buffer.alloc(cap) as ScratchBuffer; // never from Buffer's shared pool
}

function giveBack(s: ScratchBuffer, used: number): void {
  s.fill(0, 0, used);
  if (spare === undefined || spare.length < s.length) spare = s;
}

/**
 * The leaves of one message under one key: AAD = UTF-8(aadPrefix + middle + aadSuffix). The middle (the element
 * path) is built in place as the caller walks the resource — appendMiddle when it enters a member or an item,
 * truncateMiddle when it leaves — so a path is written once per node, not once per leaf, and never exists as a
 * string unless middle() is asked for it (to build an error). Not reentrant: one LeafCipher per sealing or
 * opening, then dispose().
 */
export class LeafCipher {
  readonly #key: Uint8Array;
  readonly #backend: CryptoBackend;
  /** The scratch Buffer: aadPrefix | middle | aadSuffix | data; undefined after dispose(). */
  #s: ScratchBuffer | undefined;
  /** Where the middle of the AAD starts (after the prefix), and its length in bytes. */
  readonly #mid: number;
  #midLength = 0;
  /** How far the scratch Buffer has been written (what dispose() zeroes). */
  #used = 0;
  /** The suffix as UTF-8 bytes, copied after the middle for each leaf. */
  readonly #suffixBytes: Uint8Array;
  /** Where #decrypt left the plaintext. */
  #plainAt = 0;
  #plainLength = 0;

  constructor(key: Uint8Array, aadPrefix: string, aadSuffix: string) {
    if (!(key instanceof Uint8Array) || key.length !== KEY_BYTES)
      throw new TypeError(`AEAD key must be ${KEY_BYTES} bytes`);
    this.#key = key;
    this.#backend = cryptoBackend();
    this.#suffixBytes = Buffer.from(aadSuffix, 'utf8');
    const s = takeScratch(aadPrefix.length * 3 + 256);
    this.#mid = writeUtf8(s, aadPrefix, 0, s.length);
    this.#used = this.#mid;
    this.#s = s;
  }

  /** The scratch Buffer, holding at least `size` bytes after the end of the middle. */
  #area(size: number): ScratchBuffer {
    const s = this.#s;
    if (s === undefined) throw new TypeError('LeafCipher used after dispose()');
    const need = this.#mid + this.#midLength + size;
    if (need > this.#used) this.#used = Math.min(need, s.length);
    if (need <= s.length) return s;
    const grown = takeScratch(need);
    s.copy(grown, 0, 0, this.#mid + this.#midLength); // prefix and the path built so far
    giveBack(s, s.length);
    this.#s = grown;
    this.#used = need;
    return grown;
  }

  /** Appends `text` (after the byte `lead` unless it is 0) to the middle; returns the mark to truncate back to. */
  appendMiddle(text: string, lead = 0): number {
    const mark = this.#midLength;
    const s = this.#area(text.length * 3 + 1);
    let at = this.#mid + mark;
    if (lead !== 0) s[at++] = lead;
    this.#midLength = at - this.#mid + writeUtf8(s, text, at, text.length * 3);
    return mark;
  }

  /** Appends `[index]` to the middle; returns the mark to truncate back to. */
  appendIndex(index: number): number {
    if (index > 9) return this.appendMiddle(`[${index}]`);
    const mark = this.#midLength;
    const s = this.#area(3);
    const at = this.#mid + mark;
    s[at] = 0x5b;
    s[at + 1] = 0x30 + index;
    s[at + 2] = 0x5d;
    this.#midLength = mark + 3;
    return mark;
  }

  /** Cuts the middle back to what it was when `mark` was returned. */
  truncateMiddle(mark: number): void {
    this.#midLength = mark;
  }

  /** The middle as text (for an error message, through shownPath: it may hold keys a sender wrote). */
  middle(): string {
    const s = this.#s;
    return s === undefined ? '' : s.toString('utf8', this.#mid, this.#mid + this.#midLength);
  }

  /** Writes the suffix after the middle; returns the AAD's end. */
  #aad(s: ScratchBuffer): number {
    let at = this.#mid + this.#midLength;
    const x = this.#suffixBytes;
    for (let i = 0; i < x.length; i++) s[at++] = x[i] as number;
    return at;
  }

  /**
   * base64url(nonce || XChaCha20-Poly1305(key, nonce, UTF-8(plaintext), aad)) with a fresh nonce from `random`:
   * byte for byte what sealBlobBase64url(key, utf8(plaintext), utf8(aad), random) returns.
   */
  seal(plaintext: string, random: RandomSource): string {
    // Data after the AAD: plaintext | nonce | ciphertext+tag. UTF-8 takes at most 3 bytes per UTF-16 unit.
    const maxPlain = plaintext.length * 3;
    const s = this.#area(this.#suffixBytes.length + maxPlain + NONCE_BYTES + maxPlain + TAG_BYTES);
    const mp = this.#aad(s);
    return this.#encrypt(s, mp, writeUtf8(s, plaintext, mp, maxPlain), random);
  }

  /**
   * seal(JSON.stringify(value), random) for a string leaf, without building that text when the string is short
   * printable ASCII without `"` or `\\` (then its JSON text is the string in double quotes).
   */
  sealJsonString(value: string, random: RandomSource): string {
    const n = value.length;
    if (n > SHORT_TEXT) return this.seal(JSON.stringify(value), random);
    const s = this.#area(this.#suffixBytes.length + 2 * (n + 2) + NONCE_BYTES + TAG_BYTES);
    const mp = this.#aad(s);
    s[mp] = 0x22;
    for (let i = 0; i < n; i++) {
      const c = value.charCodeAt(i);
      if (c < 0x20 || c === 0x22 || c === 0x5c || c >= 0x80) return this.seal(JSON.stringify(value), random);
      s[mp + 1 + i] = c;
    }
    s[mp + 1 + n] = 0x22;
    return this.#encrypt(s, mp, n + 2, random);
  }

  /**
   * base64url(nonce || XChaCha20-Poly1305(key, nonce, plaintext, aad)) of bytes (a wrapped data key): byte for byte
   * toBase64url(sealBlob(key, plaintext, utf8(aad), random)), with no copy left after dispose().
   */
  sealBytes(plaintext: Uint8Array, random: RandomSource): string {
    const n = plaintext.length;
    const s = this.#area(this.#suffixBytes.length + n + NONCE_BYTES + n + TAG_BYTES);
    const mp = this.#aad(s);
    s.set(plaintext, mp);
    return this.#encrypt(s, mp, n, random);
  }

  /** Draws the nonce (right after the plaintext at `mp`), encrypts, returns base64url(nonce || ciphertext || tag). */
  #encrypt(s: ScratchBuffer, mp: number, mlen: number, random: RandomSource): string {
    const np = mp + mlen;
    if (random === randomBytes) takeRandomInto(s, np, NONCE_BYTES);
    else {
      const nonce = random(NONCE_BYTES);
      if (nonce.length !== NONCE_BYTES) throw new TypeError('random source returned the wrong number of bytes');
      s.set(nonce, np);
    }
    const cp = np + NONCE_BYTES;
    const end = cp + mlen + TAG_BYTES;
    this.#backend.aeadEncrypt(
      s.subarray(cp, end),
      s.subarray(mp, np),
      s.subarray(0, mp),
      s.subarray(np, cp),
      this.#key,
    );
    return readBase64url(s, np, end);
  }

  /**
   * Opens base64url(nonce || ciphertext || tag) and returns the plaintext as text; undefined when the text is not
   * canonical base64url, is too short, does not authenticate or is not UTF-8 — exactly when
   * openBlobText(key, fromBase64url(sealed), utf8(aad)) gives undefined (or fromBase64url does).
   */
  open(sealed: string): string | undefined {
    const s = this.#decrypt(sealed);
    if (s === undefined) return undefined;
    const mp = this.#plainAt;
    const mlen = this.#plainLength;
    const text = readUtf8Lenient(s, mp, mp + mlen);
    if (!text.includes('\ufffd')) return text;
    // A replacement character: either in the plaintext or standing for bytes that are not UTF-8. Only a strict
    // decode tells.
    try {
      return utf8Fatal.decode(s.subarray(mp, mp + mlen));
    } catch {
      return undefined;
    }
  }

  /**
   * Opens what sealBytes sealed; a copy of the plaintext bytes, or undefined exactly when
   * openBlob(key, fromBase64url(sealed), utf8(aad)) would throw (or fromBase64url gives undefined).
   */
  openBytes(sealed: string): Uint8Array | undefined {
    const s = this.#decrypt(sealed);
    if (s === undefined) return undefined;
    return new Uint8Array(s.buffer, s.byteOffset + this.#plainAt, this.#plainLength).slice(); // a copy, not a Buffer
  }

  /** Decrypts into the scratch Buffer (plaintext at #plainAt, #plainLength bytes); undefined for any failure. */
  #decrypt(sealed: string): ScratchBuffer | undefined {
    const n = base64urlDecodedLength(sealed.length);
    if (sealed.length > SHORT_SEALED) {
      if (!isCanonicalBase64url(sealed) || n < NONCE_BYTES + TAG_BYTES) return undefined;
    } else if (sealed.length % 4 === 1 || n < NONCE_BYTES + TAG_BYTES) return undefined;
    // Data after the AAD: nonce | ciphertext+tag | plaintext.
    const s = this.#area(this.#suffixBytes.length + n + n);
    const np = this.#aad(s);
    // A short text is checked (canonical base64url, as isCanonicalBase64url) and decoded in one loop.
    const written =
      sealed.length > SHORT_SEALED ? writeBase64url(s, sealed, np, n) : decodeBase64urlInto(s, sealed, np);
    if (written !== n) return undefined;
    const cp = np + NONCE_BYTES;
    const mp = np + n;
    const mlen = n - NONCE_BYTES - TAG_BYTES;
    if (
      !this.#backend.aeadDecrypt(
        s.subarray(mp, mp + mlen),
        s.subarray(cp, mp),
        s.subarray(0, np),
        s.subarray(np, cp),
        this.#key,
      )
    )
      return undefined;
    this.#plainAt = mp;
    this.#plainLength = mlen;
    return s;
  }

  /** Zeroes what the scratch Buffer held (AAD, plaintexts) and gives it back. Safe to call more than once. */
  dispose(): void {
    const s = this.#s;
    if (s === undefined) return;
    this.#s = undefined;
    this.#midLength = 0;
    giveBack(s, this.#used);
  }
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
