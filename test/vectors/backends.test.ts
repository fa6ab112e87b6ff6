// The crypto backends (src/crypto/backend.ts) give the same bytes and verdicts: the envelope v1 vectors, the
// primitive vectors (RFC 8032, draft-irtf-cfrg-xchacha-03, the recorded KEKs) and libsodium's strict Ed25519 refusals
// run under `native` (sodium-native) and `wasm` (libsodium-wrappers) alike, and what one backend seals, signs or
// derives, the other opens, verifies or derives the same.
import { readFileSync } from 'node:fs';
import { verify as opensslVerify, createPublicKey } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { openBlob, sealBlob } from '../../src/crypto/aead.js';
import { openTextBase64url, sealTextBase64url } from '../../src/crypto/aead-text.js';
import { fromBase64url } from '../../src/crypto/base64url.js';
import { deriveKek } from '../../src/crypto/kek.js';
import { signingKeyFromSeed, type ServiceKeys } from '../../src/crypto/keys.js';
import { fixedRandom } from '../../src/crypto/random.js';
import { signDetached, verifyDetached } from '../../src/crypto/sign.js';
import { cryptoBackend, initCrypto, selectCryptoBackend, type CryptoBackendName } from '../../src/crypto/sodium.js';
import { openEnvelope, parseEnvelope, verifyEnvelope } from '../../src/envelope/open.js';
import { sealEnvelope } from '../../src/envelope/seal.js';
import { partyKeys, sealCase, unhex, type VectorFile } from './build.js';
import { withJsNumbers } from '../helpers/json.js';
import { stringifyJson } from '../../src/wire/json.js';

const BACKENDS: readonly CryptoBackendName[] = ['native', 'wasm'];
const OTHER: Record<CryptoBackendName, CryptoBackendName> = { native: 'wasm', wasm: 'native' };
let vectors: VectorFile;
let keys: Record<string, ServiceKeys>;

beforeAll(async () => {
  await initCrypto('native');
  vectors = JSON.parse(readFileSync(new URL('./envelope-v1.json', import.meta.url), 'utf8')) as VectorFile;
  keys = Object.fromEntries(Object.entries(vectors.parties).map(([s, v]) => [s, partyKeys(s, v)]));
});

/** `f` with `name` as the backend in use; the native backend is restored afterwards. */
function under<T>(name: CryptoBackendName, f: () => T): T {
  selectCryptoBackend(name);
  try {
    return f();
  } finally {
    selectCryptoBackend('native');
  }
}

const RFC8032_SEED = '9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60';
const RFC8032_SIG =
  'e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b';
/** The Ed25519 group order L (RFC 8032 section 5.1), little-endian. */
const L = Buffer.from('edd3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010', 'hex');

/** The signature with S replaced by S + L: the same point equation, a non-canonical encoding (RFC 8032 5.1.7). */
function nonCanonicalS(sig: Uint8Array): Uint8Array {
  const out = Uint8Array.from(sig);
  let carry = 0;
  for (let i = 0; i < 32; i++) {
    const v = (out[32 + i] as number) + (L[i] as number) + carry;
    out[32 + i] = v & 0xff;
    carry = v >> 8;
  }
  return out;
}

/** The identity point (y = 1) as public key and as R, S = 0: satisfies the cofactorless equation for any message. */
const IDENTITY = unhex(`01${'00'.repeat(31)}`);
const SMALL_ORDER_SIG = unhex(`01${'00'.repeat(31)}${'00'.repeat(32)}`);

describe.each(BACKENDS)('under the %s backend', (name) => {
  it('is the backend in use while the test runs', () => {
    expect(under(name, () => cryptoBackend().name)).toBe(name);
  });

  it.each([
    'patient-two-recipients',
    'observation-contained-broker-delivery',
    'raw-not-json',
    'basic-number-lexemes-and-keys',
  ])('envelope case %s: regenerates byte for byte, verifies, opens', (caseName) => {
    under(name, () => {
      const c = vectors.cases.find((x) => x.name === caseName)!;
      const random = fixedRandom(unhex(c.random));
      const sealed = sealCase(c.input, keys, random);
      expect(random.remaining()).toBe(0);
      expect(Buffer.from(sealed.bytes).toString('base64')).toBe(c.envelope);
      expect(sealed.sig).toBe(c.sig);
      const bytes = new Uint8Array(Buffer.from(c.envelope, 'base64'));
      verifyEnvelope(bytes, c.sig, keys[c.input.iss]!.sign.publicKey);
      const env = parseEnvelope(bytes);
      for (const to of c.input.recipients) {
        const opened = openEnvelope(env, to, deriveKek(keys[to]!.enc, keys[c.input.iss]!.enc));
        if (c.input.resourceJson !== undefined) expect(stringifyJson(opened)).toBe(c.input.resourceJson);
        else if (c.input.rawUtf8 === undefined) expect(withJsNumbers(opened)).toStrictEqual(c.input.resource);
        else expect(Buffer.from((opened as { raw: Uint8Array }).raw).toString('utf8')).toBe(c.input.rawUtf8);
      }
    });
  });

  it('keys and KEKs: the recorded public keys and KEKs follow from the recorded secrets', () => {
    under(name, () => {
      for (const [service, v] of Object.entries(vectors.parties)) {
        const k = partyKeys(service, v);
        expect(Buffer.from(k.sign.publicKey).toString('hex')).toBe(v.sigPublic);
        expect(Buffer.from(k.enc.publicKey).toString('hex')).toBe(v.encPublic);
      }
      for (const kek of vectors.keks) {
        const [a, b] = kek.id.split('~').map((kid) => kid.split(':')[0]!) as [string, string];
        expect(Buffer.from(deriveKek(keys[a]!.enc, keys[b]!.enc).key).toString('hex')).toBe(kek.key);
      }
    });
  });

  it('XChaCha20-Poly1305: the recorded AEAD vectors open, and draft-irtf-cfrg-xchacha-03 A.3.1 seals', () => {
    under(name, () => {
      for (const v of vectors.aead)
        expect(Buffer.from(openBlob(unhex(v.key), unhex(v.sealed), unhex(v.aad))).toString('hex')).toBe(v.plaintext);
      const sealed = sealBlob(
        unhex('808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f'),
        Buffer.from(
          "Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.",
        ),
        unhex('50515253c0c1c2c3c4c5c6c7'),
        fixedRandom(unhex('404142434445464748494a4b4c4d4e4f5051525354555657')),
      );
      expect(Buffer.from(sealed.subarray(sealed.length - 16)).toString('hex')).toBe('c0875924c1c7987947deafd8780acf49');
    });
  });

  it('Ed25519: RFC 8032 7.1 TEST 1 signs and verifies; libsodium-strict refusals hold', () => {
    under(name, () => {
      const key = signingKeyFromSeed('t:sig:1', unhex(RFC8032_SEED));
      const sig = signDetached(new Uint8Array(0), key.secretKey);
      expect(Buffer.from(sig).toString('hex')).toBe(RFC8032_SIG);
      expect(verifyDetached(new Uint8Array(0), sig, key.publicKey)).toBe(true);
      const flipped = Uint8Array.from(sig);
      flipped[10] = (flipped[10] as number) ^ 1;
      expect(verifyDetached(new Uint8Array(0), flipped, key.publicKey)).toBe(false);
      expect(verifyDetached(new Uint8Array(0), nonCanonicalS(sig), key.publicKey)).toBe(false);
      expect(verifyDetached(Buffer.from('any message'), SMALL_ORDER_SIG, IDENTITY)).toBe(false);
    });
  });

  it(`cross-check: what ${name} seals and signs, ${OTHER[name]} opens and verifies`, () => {
    const k = keys['registration']!;
    const sealed = under(name, () =>
      sealEnvelope({
        id: `cross-${name}`,
        iss: 'registration',
        iat: 1,
        typ: 'Patient',
        resource: {
          resourceType: 'Patient',
          name: [{ family: 'Crosscheck', given: ['Zoë'] }],
          birthDate: '1970-01-01',
        },
        signer: k.sign,
        recipients: [{ id: 'broker', kek: deriveKek(k.enc, keys['broker']!.enc) }],
      }),
    );
    const leaf = under(name, () =>
      sealTextBase64url(
        unhex('11'.repeat(32)),
        '"Zoë"',
        'v1|x|Patient.name|dk',
        fixedRandom(new Uint8Array(24).fill(5)),
      ),
    );
    const blob = under(name, () => sealBlob(unhex('22'.repeat(32)), Buffer.from('quarantined'), Buffer.from('q|1')));
    under(OTHER[name], () => {
      expect(cryptoBackend().name).toBe(OTHER[name]);
      verifyEnvelope(sealed.bytes, sealed.sig, k.sign.publicKey);
      const env = parseEnvelope(sealed.bytes);
      expect(openEnvelope(env, 'broker', deriveKek(keys['broker']!.enc, k.enc))).toStrictEqual({
        resourceType: 'Patient',
        name: [{ family: 'Crosscheck', given: ['Zoë'] }],
        birthDate: '1970-01-01',
      });
      expect(openTextBase64url(unhex('11'.repeat(32)), leaf, 'v1|x|Patient.name|dk')).toBe('"Zoë"');
      expect(openTextBase64url(unhex('11'.repeat(32)), leaf, 'v1|x|Patient.other|dk')).toBeUndefined();
      expect(Buffer.from(openBlob(unhex('22'.repeat(32)), blob, Buffer.from('q|1'))).toString()).toBe('quarantined');
      const tampered = Uint8Array.from(fromBase64url(sealed.sig)!);
      tampered[0] = (tampered[0] as number) ^ 1;
      expect(verifyDetached(sealed.bytes, tampered, k.sign.publicKey)).toBe(false);
    });
  });
});

describe('the strictness vectors can fail', () => {
  it("OpenSSL's Ed25519 (node:crypto) accepts the small-order vector that libsodium refuses", () => {
    const spki = createPublicKey({
      key: Buffer.concat([Buffer.from('302a300506032b6570032100', 'hex'), IDENTITY]),
      format: 'der',
      type: 'spki',
    });
    expect(opensslVerify(null, Buffer.from('any message'), spki, SMALL_ORDER_SIG)).toBe(true);
  });
});
