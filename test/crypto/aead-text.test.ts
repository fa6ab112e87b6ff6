// The leaf fast path (src/crypto/aead-text.ts) against the reference functions it replaces on the hot path:
// the same ciphertext for the same nonce, the same answer (text or undefined) when opening anything, and no
// key or plaintext left in libsodium's WebAssembly heap afterwards.
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { openBlob, openBlobText, sealBlob, sealBlobBase64url } from '../../src/crypto/aead.js';
import { LeafCipher, openTextBase64url, sealTextBase64url } from '../../src/crypto/aead-text.js';
import { fromBase64url, toBase64url } from '../../src/crypto/base64url.js';
import { fixedRandom } from '../../src/crypto/random.js';
import { getSodium, initCrypto } from '../../src/crypto/sodium.js';

beforeAll(async () => {
  await initCrypto();
});

// 128 bytes of UTF-8: whole ChaCha20 blocks, so libsodium's own code keeps no partial-block copy on its stack.
const secret = `"${'Ravensloe-7731-distinctive-plaintext-'.repeat(4).slice(0, 126)}"`;
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
    const ct = getSodium().crypto_aead_xchacha20poly1305_ietf_encrypt(
      Uint8Array.of(0x22, 0xff, 0x22),
      Buffer.from('a'),
      null,
      NONCE,
      KEY,
    );
    const sealed = toBase64url(NONCE) + toBase64url(ct);
    expect(referenceOpen(KEY, sealed, 'a')).toBeUndefined();
    expect(openTextBase64url(KEY, sealed, 'a')).toBeUndefined();
  });
});

describe('the WebAssembly heap', () => {
  const heap = (): Buffer =>
    Buffer.from((getSodium() as unknown as { libsodium: { HEAPU8: Uint8Array } }).libsodium.HEAPU8);

  it('keeps neither the key nor the plaintext after sealing and opening', () => {
    const key = Uint8Array.from({ length: 32 }, (_, i) => 0xa0 + i);
    expect(Buffer.byteLength(secret)).toBe(128);
    const sealed = sealTextBase64url(key, secret, 'v1|m|Patient.name[0].family|dk', fixedRandom(NONCE));
    expect(openTextBase64url(key, sealed, 'v1|m|Patient.name[0].family|dk')).toBe(secret);
    expect(heap().indexOf(Buffer.from('Ravensloe-7731-distinctive'))).toBe(-1);
    expect(heap().indexOf(Buffer.from(key))).toBe(-1);
  });

  it('sealBlob / openBlob / openBlobText (quarantine copies, access answers) leave neither key nor plaintext in the heap', () => {
    const key = Uint8Array.from({ length: 32 }, (_, i) => 0x60 + i);
    const plain = Buffer.from(secret.replace(/Ravensloe/g, 'Blobcheck'));
    const sealed = sealBlob(key, plain, Buffer.from('quarantine|q-1'), fixedRandom(NONCE));
    expect(Buffer.from(openBlob(key, sealed, Buffer.from('quarantine|q-1'))).equals(plain)).toBe(true);
    expect(openBlobText(key, sealed, Buffer.from('quarantine|q-1'))).toBe(plain.toString('utf8'));
    expect(() => openBlob(key, sealed, Buffer.from('quarantine|q-2'))).toThrow(
      expect.objectContaining({ code: 'E_DECRYPT' }),
    );
    expect(heap().indexOf(Buffer.from('Blobcheck-7731-distinctive'))).toBe(-1);
    expect(heap().indexOf(Buffer.from(key))).toBe(-1);
  });

  it("(the check can fail: libsodium-wrappers' own functions leave both behind in freed memory)", () => {
    const key = Uint8Array.from({ length: 32 }, (_, i) => 0x40 + i);
    getSodium().crypto_aead_xchacha20poly1305_ietf_encrypt(
      Buffer.from(secret.replace(/Ravensloe/g, 'Wrapperleft')),
      Buffer.from('a'),
      null,
      NONCE,
      key,
    );
    expect(heap().indexOf(Buffer.from('Wrapperleft-7731-distinctive'))).toBeGreaterThanOrEqual(0);
    expect(heap().indexOf(Buffer.from(key))).toBeGreaterThanOrEqual(0);
  });
});

describe('LeafCipher (one message: key and AAD frame written once, the path built in place)', () => {
  const prefix = 'v1|msg-1|';
  const suffix = '|dk-AbC_123';
  /** A path segment as the envelope walk writes it: `.key`, `["key"]` (written as text) or `[index]`. */
  const segment = fc.oneof(
    fc.stringMatching(/^[A-Za-z_$][A-Za-z0-9_$-]{0,12}$/).map((k) => ({ key: k })),
    fc.string({ unit: 'grapheme', maxLength: 12 }).map((k) => ({ text: `[${JSON.stringify(k)}]` })),
    fc.nat({ max: 40 }).map((i) => ({ index: i })),
  );
  type Segment = { key: string } | { text: string } | { index: number };
  const enter = (c: LeafCipher, s: Segment): number =>
    'key' in s ? c.appendMiddle(s.key, 0x2e) : 'text' in s ? c.appendMiddle(s.text) : c.appendIndex(s.index);
  const shown = (s: Segment): string => ('key' in s ? `.${s.key}` : 'text' in s ? s.text : `[${s.index}]`);

  it('seals with AAD = prefix + the segments entered (and not yet left) + suffix, as the one-shot reference', () => {
    fc.assert(
      fc.property(
        fc.array(segment, { maxLength: 6 }),
        fc.array(segment, { maxLength: 4 }),
        fc.string({ unit: 'grapheme', maxLength: 80 }),
        (kept, left, text) => {
          const c = new LeafCipher(KEY, prefix, suffix);
          try {
            c.appendMiddle('Patient');
            for (const s of kept) enter(c, s);
            const marks = left.map((s) => enter(c, s));
            if (marks.length > 0) c.truncateMiddle(marks[0] as number);
            const path = `Patient${kept.map(shown).join('')}`;
            expect(c.middle()).toBe(path);
            expect(c.seal(text, fixedRandom(NONCE))).toBe(reference(KEY, text, prefix + path + suffix));
            expect(c.open(reference(KEY, text, prefix + path + suffix))).toBe(text);
          } finally {
            c.dispose();
          }
        },
      ),
    );
  });

  it('sealJsonString(s) gives the bytes seal(JSON.stringify(s)) does, for any string (quotes, controls, non-ASCII, long)', () => {
    const c = new LeafCipher(KEY, prefix, suffix);
    try {
      c.appendMiddle('Patient.name[0].family');
      const check = (s: string): void => {
        expect(c.sealJsonString(s, fixedRandom(NONCE))).toBe(c.seal(JSON.stringify(s), fixedRandom(NONCE)));
      };
      for (const s of [
        '',
        'Quillfeather',
        'a"b',
        'back\\slash',
        'tab\there',
        '\u007f',
        'Zéphyrine',
        '\ud800',
        'x'.repeat(64),
        'y'.repeat(65),
      ])
        check(s);
      fc.assert(fc.property(fc.string({ unit: 'binary', maxLength: 100 }), check));
    } finally {
      c.dispose();
    }
  });

  it('keeps the path when a large leaf makes it move to a bigger scratch block', () => {
    const c = new LeafCipher(KEY, prefix, suffix);
    try {
      c.appendMiddle('DiagnosticReport');
      c.appendMiddle('presentedForm', 0x2e);
      c.appendIndex(0);
      c.appendMiddle('data', 0x2e);
      const big = `"${'A'.repeat(300_000)}"`;
      const aad = `${prefix}DiagnosticReport.presentedForm[0].data${suffix}`;
      expect(c.seal(big, fixedRandom(NONCE))).toBe(reference(KEY, big, aad));
      expect(c.seal('"after"', fixedRandom(NONCE))).toBe(reference(KEY, '"after"', aad));
      // ~20 MB of scratch: more than the heap holds, so the WebAssembly memory grows (its old buffer detached)
      const huge = `"${'B'.repeat(3_000_000)}"`;
      const before = (getSodium() as unknown as { libsodium: { HEAPU8: Uint8Array } }).libsodium.HEAPU8.length;
      expect(c.seal(huge, fixedRandom(NONCE))).toBe(reference(KEY, huge, aad));
      expect((getSodium() as unknown as { libsodium: { HEAPU8: Uint8Array } }).libsodium.HEAPU8.length).toBeGreaterThan(
        before,
      );
      expect(c.middle()).toBe('DiagnosticReport.presentedForm[0].data');
      expect(c.seal('"after"', fixedRandom(NONCE))).toBe(reference(KEY, '"after"', aad));
    } finally {
      c.dispose();
    }
  });

  it('sealBytes / openBytes give the bytes of sealBlob / openBlob (a wrapped data key), and refuse what they refuse', () => {
    const dataKey = Uint8Array.from({ length: 32 }, (_, i) => 255 - i);
    const aad = 'v1-wrap|msg-1|billing|billing:enc:1~registration:enc:1|dk-AbC_123';
    const c = new LeafCipher(KEY, '', '');
    try {
      c.appendMiddle(aad);
      const wk = c.sealBytes(dataKey, fixedRandom(NONCE));
      expect(wk).toBe(toBase64url(sealBlob(KEY, dataKey, Buffer.from(aad), fixedRandom(NONCE))));
      expect(c.openBytes(wk)).toStrictEqual(dataKey);
      const bytes = fromBase64url(wk) as Uint8Array;
      bytes[40] = (bytes[40] as number) ^ 1;
      expect(c.openBytes(toBase64url(bytes))).toBeUndefined();
      expect(c.openBytes(wk.slice(0, -2))).toBeUndefined();
    } finally {
      c.dispose();
    }
  });

  it('opens exactly when the reference opens, whatever one character of the sealed text is changed to', () => {
    const aad = 'v1|m|Patient.name[0].given[0]|dk';
    const sealed = reference(KEY, '"Marisol"', aad);
    fc.assert(
      fc.property(fc.nat({ max: sealed.length - 1 }), fc.constantFrom(...'AQgw_-+/=. é'), (at, ch) => {
        const altered = sealed.slice(0, at) + ch + sealed.slice(at + 1);
        expect(openTextBase64url(KEY, altered, aad)).toBe(referenceOpen(KEY, altered, aad));
      }),
    );
  });

  it('leaves nothing of key, path or plaintext in the heap after dispose()', () => {
    const key = Uint8Array.from({ length: 32 }, (_, i) => 0x60 + i);
    const c = new LeafCipher(key, prefix, suffix);
    c.appendMiddle('Patient.Fenwright-9913-distinctive-key');
    const sealed = c.seal(secret, fixedRandom(NONCE));
    expect(c.open(sealed)).toBe(secret);
    c.dispose();
    const heap = Buffer.from((getSodium() as unknown as { libsodium: { HEAPU8: Uint8Array } }).libsodium.HEAPU8);
    expect(heap.indexOf(Buffer.from('Ravensloe-7731-distinctive'))).toBe(-1);
    expect(heap.indexOf(Buffer.from('Fenwright-9913-distinctive'))).toBe(-1);
    expect(heap.indexOf(Buffer.from(key))).toBe(-1);
  });
});
