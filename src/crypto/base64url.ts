// base64url without padding (RFC 4648 section 5), the encoding of every binary value in an envelope, a JWK (RFC 7515
// section 2) and a signature header. Decoding is strict: only the URL-safe alphabet, no padding, no whitespace, and a
// canonical final character, so one byte string has exactly one encoding.

const ALPHABET = /^[A-Za-z0-9_-]*$/;
const VALUE = new Map(
  [...'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'].map((c, i) => [c.charCodeAt(0), i]),
);

export function toBase64url(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64url');
}

/** Whether `text` is the canonical unpadded base64url encoding of some bytes (what fromBase64url accepts). */
export function isCanonicalBase64url(text: string): boolean {
  if (text.length % 4 === 1 || !ALPHABET.test(text)) return false;
  // Reject non-canonical trailing bits (e.g. "AB" and "AA" both decoding to one zero byte): the unused low bits of
  // the last character must be zero (4 bits when length % 4 == 2, 2 bits when length % 4 == 3).
  const rest = text.length % 4;
  if (rest !== 0) {
    const last = VALUE.get(text.charCodeAt(text.length - 1)) ?? 0;
    if ((last & (rest === 2 ? 0x0f : 0x03)) !== 0) return false;
  }
  return true;
}

/** Decodes base64url; returns undefined when `text` is not the canonical unpadded encoding of some bytes. */
export function fromBase64url(text: string): Uint8Array | undefined {
  if (!isCanonicalBase64url(text)) return undefined;
  const bytes = Buffer.from(text, 'base64url');
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** Number of bytes a canonical unpadded base64url text of `length` characters decodes to. */
export function base64urlDecodedLength(length: number): number {
  return Math.floor((length * 3) / 4);
}

/** Length in characters of the unpadded base64url encoding of `n` bytes. */
export function base64urlLength(n: number): number {
  return Math.ceil((n * 4) / 3);
}
