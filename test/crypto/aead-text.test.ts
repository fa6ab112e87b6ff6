// The leaf fast path (src/crypto/aead-text.ts) against the reference functions it replaces on the hot path:
// the same ciphertext for the same nonce, the same answer (text or undefined) when opening anything, and no
// key or plaintext left in libsodium's WebAssembly heap afterwards.
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { openBlobText, sealBlobBase64url } from '../../src/crypto/aead.js';
import { openTextBase64url, sealTextBase64url } from '../../src/crypto/aead-text.js';
import { fromBase64url, toBase64url } from '../../src/crypto/base64url.js';
import { fixedRandom } from '../../src/crypto/random.js';
import { getSodium, initCrypto } from '../../src/crypto/sodium.js';

beforeAll(async () => {
  await initCrypto();
});

const KEY = Uint8Array.from({ length: 32 }, (_, i) => i * 7 + 1);
const NONCE = Uint8Array.from({ length: 24 }, (_, i) => 200 - i);

function reference(key: Uint8Array, text: string, aad: string): string {
  return sealBlobBase64url(key, Buffer.from(text, 'utf8'), Buffer.from(aad, 'utf8'), fixedRandom(NONCE));
}

function referenceOpen(key: Uint8Array, sealed: string, aad: string): string | undefined {
  const bytes = fromBase64url(sealed);
  return bytes === undefined ? undefined : openBlobText(key, bytes, Buffer.from(aad, 'utf8'));
}

describe('sealTextBase64url', () => {
  it.each([
    ['empty', '', 'v1|m|Patient.id|dk'],
    ['ASCII', '"Quillfeather"', 'v1|m|Patient.name[0].family|dk'],
    ['multi-byte and astral', '"Zéphyrine 北京 🩺"', 'v1|m|Patient["名前"]|dk'],
    ['large (300 KB)', `"${'A'.repeat(300_000)}"`, 'v1|m|DiagnosticReport.presentedForm[0].data|dk'],
  ])('gives exactly the reference bytes (%s)', (_name, text, aad) => {
    expect(sealTextBase64url(KEY, text, aad, fixedRandom(NONCE))).toBe(reference(KEY, text, aad));
  });

  it('gives the reference bytes for any text and AAD', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme', maxLength: 200 }), fc.string({ maxLength: 100 }), (text, aad) => {
        expect(sealTextBase64url(KEY, text, aad, fixedRandom(NONCE))).toBe(reference(KEY, text, aad));
      }),
    );
  });

  it('refuses a key of the wrong size and a random source that returns the wrong length', () => {
    expect(() => sealTextBase64url(new Uint8Array(31), 'x', 'a', fixedRandom(NONCE))).toThrow(TypeError);
    expect(() => sealTextBase64url(KEY, 'x', 'a', () => new Uint8Array(23))).toThrow(TypeError);
  });
});

describe('openTextBase64url', () => {
  it('opens what either implementation sealed, for any text', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme', maxLength: 200 }), fc.string({ maxLength: 100 }), (text, aad) => {
        const sealed = reference(KEY, text, aad);
        expect(openTextBase64url(KEY, sealed, aad)).toBe(text);
        expect(openTextBase64url(KEY, sealTextBase64url(KEY, text, aad, fixedRandom(NONCE)), aad)).toBe(text);
      }),
    );
  });

  it('agrees with the reference on every altered input: wrong key, wrong AAD, flipped bit, truncation, bad base64url', () => {
    const sealed = reference(KEY, '"Marisol"', 'v1|m|Patient.name[0].given[0]|dk');
    const bytes = fromBase64url(sealed) as Uint8Array;
    const flipped = Uint8Array.from(bytes);
    flipped[30] = (flipped[30] as number) ^ 1;
    const otherKey = Uint8Array.from(KEY, (b) => b ^ 0xff);
    const cases: [Uint8Array, string, string][] = [
      [otherKey, sealed, 'v1|m|Patient.name[0].given[0]|dk'],
      [KEY, sealed, 'v1|m|Patient.name[0].given[1]|dk'],
      [KEY, toBase64url(flipped), 'v1|m|Patient.name[0].given[0]|dk'],
      [KEY, sealed.slice(0, 50), 'v1|m|Patient.name[0].given[0]|dk'],
      [KEY, sealed.slice(0, 53), 'v1|m|Patient.name[0].given[0]|dk'],
      [KEY, `${sealed.slice(0, -1)}=`, 'v1|m|Patient.name[0].given[0]|dk'],
      [KEY, sealed.replace(/[-_]/, '+'), 'v1|m|Patient.name[0].given[0]|dk'],
      [KEY, '', 'v1|m|Patient.name[0].given[0]|dk'],
    ];
    for (const [key, text, aad] of cases) {
      expect(openTextBase64url(key, text, aad)).toBeUndefined();
      expect(referenceOpen(key, text, aad)).toBeUndefined();
    }
    expect(openTextBase64url(KEY, sealed, 'v1|m|Patient.name[0].given[0]|dk')).toBe('"Marisol"');
  });

  it('refuses a plaintext that is not UTF-8, as the reference does', () => {
    const ct = getSodium().crypto_aead_xchacha20poly1305_ietf_encrypt(Uint8Array.of(0x22, 0xff, 0x22), Buffer.from('a'), null, NONCE, KEY);
    const sealed = toBase64url(NONCE) + toBase64url(ct);
    expect(referenceOpen(KEY, sealed, 'a')).toBeUndefined();
    expect(openTextBase64url(KEY, sealed, 'a')).toBeUndefined();
  });
});

describe('the WebAssembly heap', () => {
  const heap = (): Buffer => Buffer.from((getSodium() as unknown as { libsodium: { HEAPU8: Uint8Array } }).libsodium.HEAPU8);
  // 128 bytes of UTF-8: whole ChaCha20 blocks, so libsodium's own code keeps no partial-block copy on its stack.
  const secret = `"${'Ravensloe-7731-distinctive-plaintext-'.repeat(4).slice(0, 126)}"`;

  it('keeps neither the key nor the plaintext after sealing and opening', () => {
    const key = Uint8Array.from({ length: 32 }, (_, i) => 0xa0 + i);
    expect(Buffer.byteLength(secret)).toBe(128);
    const sealed = sealTextBase64url(key, secret, 'v1|m|Patient.name[0].family|dk', fixedRandom(NONCE));
    expect(openTextBase64url(key, sealed, 'v1|m|Patient.name[0].family|dk')).toBe(secret);
    expect(heap().indexOf(Buffer.from('Ravensloe-7731-distinctive'))).toBe(-1);
    expect(heap().indexOf(Buffer.from(key))).toBe(-1);
  });

  it('(the check can fail: libsodium-wrappers\' own functions leave both behind in freed memory)', () => {
    const key = Uint8Array.from({ length: 32 }, (_, i) => 0x40 + i);
    sealBlobBase64url(key, Buffer.from(secret.replace(/Ravensloe/g, 'Wrapperleft')), Buffer.from('a'), fixedRandom(NONCE));
    expect(heap().indexOf(Buffer.from('Wrapperleft-7731-distinctive'))).toBeGreaterThanOrEqual(0);
    expect(heap().indexOf(Buffer.from(key))).toBeGreaterThanOrEqual(0);
  });
});
