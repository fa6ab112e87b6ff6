// base64url (RFC 4648 section 5), XChaCha20-Poly1305 blobs, Ed25519 signatures (both backends), the random source.
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { openBlob, sealBlob, sealBlobBase64url } from '../../src/crypto/aead.js';
import { fromBase64url, toBase64url } from '../../src/crypto/base64url.js';
import { fixedRandom, randomBytes, takeRandomInto } from '../../src/crypto/random.js';
import { signDetached, sodiumEd25519, verifyDetached } from '../../src/crypto/sign.js';
import { getSodium, initCrypto } from '../../src/crypto/sodium.js';
import { signingKeyFromSeed } from '../../src/crypto/keys.js';

beforeAll(async () => {
  await initCrypto();
});

describe('base64url', () => {
  it('round-trips any bytes and matches Node encoding', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 100 }), (bytes) => {
        const text = toBase64url(bytes);
        expect(text).toBe(Buffer.from(bytes).toString('base64url'));
        expect(Buffer.from(fromBase64url(text) ?? [1, 2, 3]).equals(Buffer.from(bytes))).toBe(true);
      }),
    );
  });

  it.each(['AA==', 'A', 'AB', 'AAB', 'A+B/', 'AA AA', 'Zm9v\n'])(
    'refuses %j (padding, bad length, non-canonical bits, other alphabets)',
    (text) => {
      expect(fromBase64url(text)).toBeUndefined();
    },
  );
});

describe('random source', () => {
  it('gives fresh bytes of the asked length that are never handed out twice', () => {
    const a = randomBytes(24);
    const b = randomBytes(24);
    expect([a.length, b.length, randomBytes(100_000).length]).toStrictEqual([24, 24, 100_000]);
    expect(Buffer.from(a).equals(Buffer.from(b))).toBe(false);
    const copy = Buffer.from(a);
    for (let i = 0; i < 5000; i++) randomBytes(24); // crosses several chunk refills
    expect(Buffer.from(a).equals(copy)).toBe(true);
  });

  it('takeRandomInto writes fresh bytes in place, never the same twice, and only where it is told', () => {
    const target = new Uint8Array(64);
    takeRandomInto(target, 8, 24);
    takeRandomInto(target, 32, 24);
    expect([...target.subarray(0, 8), ...target.subarray(56)]).toStrictEqual(new Array<number>(16).fill(0));
    expect(Buffer.from(target.subarray(8, 32)).equals(Buffer.from(target.subarray(32, 56)))).toBe(false);
    const seen = new Set<string>();
    for (let i = 0; i < 5000; i++) {
      // crosses several chunk refills
      takeRandomInto(target, 0, 24);
      seen.add(Buffer.from(target.subarray(0, 24)).toString('hex'));
    }
    expect(seen.size).toBe(5000);
    expect(() => takeRandomInto(target, 50, 24)).toThrow(RangeError);
  });

  it('fixedRandom replays recorded bytes and refuses to run past them', () => {
    const r = fixedRandom(Uint8Array.from([1, 2, 3, 4, 5]));
    expect([...r(2), ...r(2)]).toStrictEqual([1, 2, 3, 4]);
    expect(r.remaining()).toBe(1);
    expect(() => r(2)).toThrow(/exhausted/);
  });
});

describe('sealBlob / openBlob (XChaCha20-Poly1305)', () => {
  const key = new Uint8Array(32).fill(7);
  const aad = Buffer.from('quarantine|m-1');

  it('round-trips, is nonce || ciphertext || tag, and uses the injected nonce', () => {
    const nonce = Uint8Array.from({ length: 24 }, (_, i) => i);
    const sealed = sealBlob(key, Buffer.from('hello'), aad, fixedRandom(nonce));
    expect(sealed.length).toBe(24 + 5 + 16);
    expect([...sealed.subarray(0, 24)]).toStrictEqual([...nonce]);
    expect(Buffer.from(openBlob(key, sealed, aad)).toString()).toBe('hello');
    expect(sealBlobBase64url(key, Buffer.from('hello'), aad, fixedRandom(nonce))).toBe(toBase64url(sealed));
  });

  it('draft-irtf-cfrg-xchacha-03 appendix A.3.1 test vector', () => {
    const pt = Buffer.from(
      "Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.",
    );
    const sealed = sealBlob(
      Buffer.from('808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f', 'hex'),
      pt,
      Buffer.from('50515253c0c1c2c3c4c5c6c7', 'hex'),
      fixedRandom(Buffer.from('404142434445464748494a4b4c4d4e4f5051525354555657', 'hex')),
    );
    const ciphertext =
      'bd6d179d3e83d43b9576579493c0e939572a1700252bfaccbed2902c21396cbb731c7f1b0b4aa6440bf3a82f4eda7e39ae64c6708c54c216cb96b72e1213b452' +
      '2f8c9ba40db5d945b11b69b982c1bb9e3f3fac2bc369488f76b2383565d3fff921f9664c97637da9768812f615c68b13b52e';
    expect(Buffer.from(sealed.subarray(24)).toString('hex')).toBe(`${ciphertext}c0875924c1c7987947deafd8780acf49`);
  });

  it('matches libsodium directly (independent check of the layout)', () => {
    const nonce = new Uint8Array(24).fill(9);
    const sealed = sealBlob(key, Buffer.from('x'), aad, fixedRandom(nonce));
    const ct = getSodium().crypto_aead_xchacha20poly1305_ietf_encrypt(Buffer.from('x'), aad, null, nonce, key);
    expect(Buffer.from(sealed.subarray(24)).equals(Buffer.from(ct))).toBe(true);
  });

  it.each<[string, (s: Uint8Array) => [Uint8Array, Uint8Array, Uint8Array]]>([
    [
      'a flipped ciphertext byte',
      (s) => {
        const b = Uint8Array.from(s);
        b[30] = (b[30] as number) ^ 1;
        return [key, b, aad];
      },
    ],
    [
      'a flipped nonce byte',
      (s) => {
        const b = Uint8Array.from(s);
        b[0] = (b[0] as number) ^ 1;
        return [key, b, aad];
      },
    ],
    ['another aad', (s) => [key, s, Buffer.from('quarantine|m-2')]],
    ['another key', (s) => [new Uint8Array(32).fill(8), s, aad]],
    ['a truncated blob', (s) => [key, s.subarray(0, s.length - 1), aad]],
    ['a blob shorter than nonce + tag', (s) => [key, s.subarray(0, 39), aad]],
  ])('%s → E_DECRYPT naming the path', (_name, change) => {
    const [k, s, a] = change(sealBlob(key, Buffer.from('secret value'), aad));
    expect(() => openBlob(k, s, a, 'quarantine[m-1]')).toThrow(
      expect.objectContaining({
        code: 'E_DECRYPT',
        path: 'quarantine[m-1]',
        message: 'quarantine[m-1] could not be decrypted or authenticated',
      }),
    );
  });

  it('a key of the wrong length is a TypeError', () => {
    expect(() => sealBlob(new Uint8Array(16), Buffer.from('x'), aad)).toThrow(TypeError);
  });
});

describe('Ed25519 (RFC 8032)', () => {
  it('RFC 8032 section 7.1 TEST 1: empty message', () => {
    const seed = Buffer.from('9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60', 'hex');
    const key = signingKeyFromSeed('t:sig:1', seed);
    expect(Buffer.from(key.publicKey).toString('hex')).toBe(
      'd75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a',
    );
    const expected =
      'e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b';
    expect(Buffer.from(signDetached(new Uint8Array(0), key.secretKey)).toString('hex')).toBe(expected);
    expect(Buffer.from(sodiumEd25519.sign(new Uint8Array(0), key.secretKey)).toString('hex')).toBe(expected);
  });

  it('the backend in use and libsodium-wrappers agree on signatures and verdicts', () => {
    const key = signingKeyFromSeed('t:sig:1', new Uint8Array(32).fill(3));
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.nat(), (msg, flip) => {
        const sig = signDetached(msg, key.secretKey);
        expect(Buffer.from(sodiumEd25519.sign(msg, key.secretKey)).equals(Buffer.from(sig))).toBe(true);
        expect(verifyDetached(msg, sig, key.publicKey)).toBe(true);
        expect(sodiumEd25519.verify(msg, sig, key.publicKey)).toBe(true);
        const bad = Uint8Array.from(sig);
        bad[flip % 64] = (bad[flip % 64] as number) ^ 0x80;
        expect(verifyDetached(msg, bad, key.publicKey)).toBe(false);
        expect(sodiumEd25519.verify(msg, bad, key.publicKey)).toBe(false);
      }),
      { numRuns: 50 },
    );
  });

  it('a wrong-length signature, another key or an invalid public key never verify', () => {
    const key = signingKeyFromSeed('t:sig:1', new Uint8Array(32).fill(3));
    const other = signingKeyFromSeed('t:sig:2', new Uint8Array(32).fill(4));
    const sig = signDetached(Buffer.from('m'), key.secretKey);
    expect(verifyDetached(Buffer.from('m'), sig.subarray(0, 63), key.publicKey)).toBe(false);
    expect(verifyDetached(Buffer.from('m'), sig, other.publicKey)).toBe(false);
    expect(verifyDetached(Buffer.from('m'), sig, new Uint8Array(32).fill(0xff))).toBe(false);
  });
});
