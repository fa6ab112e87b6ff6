// The envelope vectors again, on the path a libsodium build without the raw Emscripten exports takes: LeafCipher
// (src/crypto/aead-text.ts) then seals and opens through aead.ts's one-call functions, which use the crypto backend
// in use. Same bytes, same openings. The exports are hidden for this file only (vitest runs it in a module graph of
// its own; the shared libsodium-wrappers object is restored afterwards).
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deriveKek } from '../../src/crypto/kek.js';
import type { ServiceKeys } from '../../src/crypto/keys.js';
import { fixedRandom } from '../../src/crypto/random.js';
import { getSodium, initCrypto } from '../../src/crypto/sodium.js';
import { raw } from '../../src/crypto/wasm-heap.js';
import { openEnvelope, parseEnvelope } from '../../src/envelope/open.js';
import { partyKeys, sealCase, unhex, type VectorFile } from './build.js';
import { withJsNumbers } from '../helpers/json.js';
import { stringifyJson } from '../../src/wire/json.js';

type WithModule = { libsodium: object };
let real: object;
let vectors: VectorFile;
let keys: Record<string, ServiceKeys>;

beforeAll(async () => {
  await initCrypto();
  const sodium = getSodium() as unknown as WithModule;
  real = sodium.libsodium;
  sodium.libsodium = new Proxy(real, { get: (t, k) => (k === '_malloc' ? undefined : (Reflect.get(t, k) as unknown)) });
  vectors = JSON.parse(readFileSync(new URL('./envelope-v1.json', import.meta.url), 'utf8')) as VectorFile;
  keys = Object.fromEntries(Object.entries(vectors.parties).map(([s, v]) => [s, partyKeys(s, v)]));
});

afterAll(() => {
  (getSodium() as unknown as WithModule).libsodium = real;
});

describe('envelope v1 vectors without the raw libsodium module', () => {
  it('the fast path is off', () => {
    expect(raw()).toBeNull();
  });

  it.each([
    'patient-two-recipients',
    'observation-contained-broker-delivery',
    'raw-not-json',
    'basic-number-lexemes-and-keys',
  ])('case %s: regenerates byte for byte and opens', (name) => {
    const c = vectors.cases.find((x) => x.name === name)!;
    const random = fixedRandom(unhex(c.random));
    const sealed = sealCase(c.input, keys, random);
    expect(random.remaining()).toBe(0);
    expect(Buffer.from(sealed.bytes).toString('base64')).toBe(c.envelope);
    const env = parseEnvelope(new Uint8Array(Buffer.from(c.envelope, 'base64')));
    for (const to of c.input.recipients) {
      const opened = openEnvelope(env, to, deriveKek(keys[to]!.enc, keys[c.input.iss]!.enc));
      if (c.input.resourceJson !== undefined) expect(stringifyJson(opened)).toBe(c.input.resourceJson);
      else if (c.input.rawUtf8 === undefined) expect(withJsNumbers(opened)).toStrictEqual(c.input.resource);
      else expect(Buffer.from((opened as { raw: Uint8Array }).raw).toString('utf8')).toBe(c.input.rawUtf8);
    }
  });
});
