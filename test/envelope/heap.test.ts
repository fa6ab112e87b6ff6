// What sealing and opening an envelope leave in libsodium's WebAssembly memory: neither the data key nor a leaf's
// plaintext nor an element path may outlive the call (src/crypto/aead-text.ts zeroes its scratch blocks; the data
// key is wrapped and unwrapped there too, not by libsodium-wrappers, whose functions leave arguments in freed
// memory). Also: the sealer's remembered kid checks still refuse a signer of another service.
import { beforeAll, describe, expect, it } from 'vitest';
import { fixedRandom } from '../../src/crypto/random.js';
import { getSodium, initCrypto } from '../../src/crypto/sodium.js';
import { openEnvelope, verifySignedEnvelope } from '../../src/envelope/open.js';
import { sealEnvelope } from '../../src/envelope/seal.js';
import { makeParties, type Parties } from './parties.js';

let p: Parties;
beforeAll(async () => {
  await initCrypto();
  p = makeParties('heap');
});

const heap = (): Buffer =>
  Buffer.from((getSodium() as unknown as { libsodium: { HEAPU8: Uint8Array } }).libsodium.HEAPU8);

describe('the WebAssembly heap after sealEnvelope and openEnvelope', () => {
  it('holds neither the data key, nor a plaintext, nor a PHI-looking key of the path', () => {
    // Randomness: data key (32), data key id (9), one nonce per recipient and per sealed leaf.
    const random = new Uint8Array(32 + 9 + 24 * 16);
    for (let i = 0; i < random.length; i++) random[i] = (i * 131 + 7) & 0xff;
    const dataKey = Buffer.from(random.subarray(0, 32));
    const resource = {
      resourceType: 'Patient',
      name: [{ family: 'Heapcheck-4412-distinctive-family', given: ['Given-4412-distinctive'] }],
      'Heapkey-4412-distinctive': 'x',
    };
    const sealed = sealEnvelope({
      id: 'heap-1',
      iss: 'registration',
      iat: 1,
      typ: 'Patient',
      resource,
      signer: p.keys.registration.sign,
      recipients: [{ id: 'broker', kek: p.rings.registration.kekFor('broker:enc:1') }],
      random: fixedRandom(random),
    });
    const env = verifySignedEnvelope(sealed.bytes, sealed.sig, p.rings.broker);
    expect(openEnvelope(env, 'broker', (id) => p.rings.broker.kekForId(id))).toStrictEqual(resource);
    const h = heap();
    expect(h.indexOf(dataKey)).toBe(-1);
    expect(h.indexOf(Buffer.from('4412-distinctive'))).toBe(-1);
    // the check can fail: the sealed bytes do hold the (allow-listed, plaintext) key name
    expect(Buffer.from(sealed.bytes).indexOf(Buffer.from('Heapkey-4412-distinctive'))).toBeGreaterThan(0);
  });
});

describe('the WebAssembly heap after a raw-mode ($raw) seal and open', () => {
  it('holds neither the data key nor the raw payload', () => {
    const random = new Uint8Array(32 + 9 + 24 * 2);
    for (let i = 0; i < random.length; i++) random[i] = (i * 197 + 11) & 0xff;
    const dataKey = Buffer.from(random.subarray(0, 32));
    const payload = Buffer.from('MSH|^~\\&|RAW-7731-distinctive-hl7v2|PID|||Rawcheck-7731-distinctive', 'latin1');
    const sealed = sealEnvelope({
      id: 'heap-raw-1',
      iss: 'registration',
      iat: 1,
      typ: '$raw',
      resource: { raw: new Uint8Array(payload) },
      signer: p.keys.registration.sign,
      recipients: [{ id: 'broker', kek: p.rings.registration.kekFor('broker:enc:1') }],
      random: fixedRandom(random),
    });
    const env = verifySignedEnvelope(sealed.bytes, sealed.sig, p.rings.broker);
    const opened = openEnvelope(env, 'broker', (id) => p.rings.broker.kekForId(id)) as { raw: Uint8Array };
    expect(Buffer.from(opened.raw).equals(payload)).toBe(true);
    const h = heap();
    expect(h.indexOf(dataKey)).toBe(-1);
    expect(h.indexOf(Buffer.from('7731-distinctive'))).toBe(-1);
    // the check can fail: the opened copy (JavaScript memory, not the heap) holds the marker
    expect(Buffer.from(opened.raw).indexOf(Buffer.from('7731-distinctive'))).toBeGreaterThan(0);
  });
});

describe("the sealer's checks of signer and KEK ids (remembered per id)", () => {
  it('refuse a signer of another service after the same kid sealed for its own, every time', () => {
    const ok = {
      id: 'k-1',
      iss: 'registration',
      iat: 1,
      typ: 'Patient',
      resource: { resourceType: 'Patient' },
      signer: p.keys.registration.sign,
      recipients: [{ id: 'broker', kek: p.rings.registration.kekFor('broker:enc:1') }],
    };
    expect(sealEnvelope(ok).bytes.length).toBeGreaterThan(0);
    for (let i = 0; i < 2; i++) {
      expect(() => sealEnvelope({ ...ok, iss: 'billing' })).toThrow(
        new TypeError('sealEnvelope: signer must be a signing key of iss'),
      );
      expect(() => sealEnvelope({ ...ok, signer: { ...p.keys.registration.sign, kid: 'registration:enc:1' } })).toThrow(
        new TypeError('sealEnvelope: signer must be a signing key of iss'),
      );
      expect(() =>
        sealEnvelope({
          ...ok,
          recipients: [{ id: 'broker', kek: { id: 'registration:enc:1~broker:enc:1', key: new Uint8Array(32) } }],
        }),
      ).toThrow(TypeError);
      expect(sealEnvelope(ok).bytes.length).toBeGreaterThan(0);
    }
  });
});
