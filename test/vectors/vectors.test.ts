// Envelope v1 test vectors: regenerate every case from the recorded keys and randomness and compare byte for byte,
// check the signature with both Ed25519 backends, and open for every recipient. Vectors change only on purpose:
// UPDATE_VECTORS=1 rewrites envelope-v1.json from build.ts; otherwise a difference fails the test.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { fromBase64url } from '../../src/crypto/base64url.js';
import { openBlob } from '../../src/crypto/aead.js';
import { deriveKek } from '../../src/crypto/kek.js';
import type { ServiceKeys } from '../../src/crypto/keys.js';
import { fixedRandom } from '../../src/crypto/random.js';
import { sodiumEd25519, verifyDetached } from '../../src/crypto/sign.js';
import { initCrypto } from '../../src/crypto/sodium.js';
import { openEnvelope, parseEnvelope, verifyEnvelope } from '../../src/envelope/open.js';
import { buildVectors, partyKeys, sealCase, unhex, type VectorFile } from './build.js';
import { withJsNumbers } from '../helpers/json.js';
import { stringifyJson } from '../../src/wire/json.js';

const FILE = new URL('./envelope-v1.json', import.meta.url);
let vectors: VectorFile;
let keys: Record<string, ServiceKeys>;

beforeAll(async () => {
  await initCrypto();
  if (process.env['UPDATE_VECTORS'] === '1') writeFileSync(FILE, `${JSON.stringify(buildVectors(), null, 2)}\n`);
  if (!existsSync(FILE))
    throw new Error('test/vectors/envelope-v1.json is missing: run UPDATE_VECTORS=1 npx vitest run test/vectors');
  vectors = JSON.parse(readFileSync(FILE, 'utf8')) as VectorFile;
  keys = Object.fromEntries(Object.entries(vectors.parties).map(([s, v]) => [s, partyKeys(s, v)]));
});

describe('envelope v1 vectors', () => {
  it('the file is what build.ts produces (specs and file in step)', () => {
    expect(buildVectors()).toStrictEqual(vectors);
  });

  it('keys: the recorded public keys follow from the recorded secrets', () => {
    for (const [service, v] of Object.entries(vectors.parties)) {
      expect([
        Buffer.from(keys[service]!.sign.publicKey).toString('hex'),
        Buffer.from(keys[service]!.enc.publicKey).toString('hex'),
      ]).toStrictEqual([v.sigPublic, v.encPublic]);
    }
  });

  it('KEKs: recorded values, the same from both sides', () => {
    for (const kek of vectors.keks) {
      const [a, b] = kek.id.split('~').map((kid) => kid.split(':')[0]!) as [string, string];
      expect(Buffer.from(deriveKek(keys[a]!.enc, keys[b]!.enc).key).toString('hex')).toBe(kek.key);
      expect(Buffer.from(deriveKek(keys[b]!.enc, keys[a]!.enc).key).toString('hex')).toBe(kek.key);
    }
  });

  it('XChaCha20-Poly1305: the recorded sealed value opens to the recorded plaintext', () => {
    for (const v of vectors.aead) {
      expect(v.sealed.slice(0, 48)).toBe(v.nonce);
      expect(Buffer.from(openBlob(unhex(v.key), unhex(v.sealed), unhex(v.aad))).toString('hex')).toBe(v.plaintext);
    }
  });

  it.each([
    'patient-two-recipients',
    'observation-contained-broker-delivery',
    'raw-not-json',
    'basic-number-lexemes-and-keys',
  ])('case %s: regenerates byte for byte, verifies, opens', (name) => {
    const c = vectors.cases.find((x) => x.name === name)!;
    const random = fixedRandom(unhex(c.random));
    const sealed = sealCase(c.input, keys, random);
    expect(random.remaining()).toBe(0);
    expect(Buffer.from(sealed.bytes).toString('base64')).toBe(c.envelope);
    expect(sealed.sig).toBe(c.sig);
    const bytes = new Uint8Array(Buffer.from(c.envelope, 'base64'));
    expect(createHash('sha256').update(bytes).digest('base64url')).toBe(c.sha256);
    const sender = keys[c.input.iss]!.sign.publicKey;
    verifyEnvelope(bytes, c.sig, sender);
    expect(sodiumEd25519.verify(bytes, fromBase64url(c.sig)!, sender)).toBe(true);
    expect(verifyDetached(bytes, fromBase64url(c.sig)!, sender)).toBe(true);
    const env = parseEnvelope(bytes);
    for (const to of c.input.recipients) {
      const opened = openEnvelope(env, to, deriveKek(keys[to]!.enc, keys[c.input.iss]!.enc));
      if (c.input.resourceJson !== undefined) expect(stringifyJson(opened)).toBe(c.input.resourceJson);
      else if (c.input.rawUtf8 === undefined) expect(withJsNumbers(opened)).toStrictEqual(c.input.resource);
      else expect(Buffer.from((opened as { raw: Uint8Array }).raw).toString('utf8')).toBe(c.input.rawUtf8);
    }
  });

  it('number lexemes and keys: the exact bytes carry the lexemes sealed, the non-ASCII key raw, the lone surrogate escaped', () => {
    const c = vectors.cases.find((x) => x.name === 'basic-number-lexemes-and-keys')!;
    const text = Buffer.from(c.envelope, 'base64').toString('utf8');
    expect(text).toContain('"Größe":"');
    expect(text).toContain('"\\ud800":"');
    for (const lexeme of ['6.30', '12345678901234567890', '-0', '1.0e2']) expect(text).not.toContain(`:${lexeme}`);
  });

  it('refused: signed bytes with a duplicate member verify, and the parser refuses them with code and path', () => {
    expect(vectors.refused.map((r) => r.name)).toStrictEqual(['duplicate-body-member']);
    for (const r of vectors.refused) {
      const bytes = new Uint8Array(Buffer.from(r.envelope, 'base64'));
      expect(verifyDetached(bytes, fromBase64url(r.sig)!, keys[r.iss]!.sign.publicKey)).toBe(true);
      let err: unknown;
      try {
        parseEnvelope(bytes);
      } catch (e) {
        err = e;
      }
      expect(err).toMatchObject({ code: r.code, path: r.path });
    }
  });
});
