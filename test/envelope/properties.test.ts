// The five wire-format properties of DESIGN.md, each attacked: swapping, moving, flipping, dropping, replaying,
// re-signing and truncating are detected; wrong or absent recipients cannot open; rotated keys keep old messages
// readable until retired. Several attacks open WITHOUT verifying the signature, to show the AEAD binding on its own.
import { beforeAll, describe, expect, it } from 'vitest';
import { Keyring } from '../../src/crypto/keyring.js';
import { generateServiceKeys, publicRecords } from '../../src/crypto/keys.js';
import { fixedRandom } from '../../src/crypto/random.js';
import { signDetached } from '../../src/crypto/sign.js';
import { initCrypto } from '../../src/crypto/sodium.js';
import { toBase64url } from '../../src/crypto/base64url.js';
import { sealBlobBase64url } from '../../src/crypto/aead.js';
import { leafAad } from '../../src/envelope/aad.js';
import type { BrokerErrorCode } from '../../src/wire/errors.js';
import {
  openEnvelope,
  parseEnvelope,
  verifyEnvelope,
  verifySignedEnvelope,
  type Envelope,
} from '../../src/envelope/open.js';
import { sealEnvelope, type SealInput } from '../../src/envelope/seal.js';
import { makeParties, streamRandom, syntheticPatient, type Parties } from './parties.js';
import { withJsNumbers } from '../helpers/json.js';

let p: Parties;
beforeAll(async () => {
  await initCrypto();
  p = makeParties();
});

function seal(over: Partial<SealInput> = {}): { bytes: Uint8Array; sig: string } {
  return sealEnvelope({
    id: 'msg-1',
    iss: 'registration',
    iat: 1_700_000_000_000,
    typ: 'Patient',
    resource: syntheticPatient(),
    signer: p.keys.registration.sign,
    recipients: [
      { id: 'broker', kek: p.rings.registration.kekFor('broker:enc:1') },
      { id: 'billing', kek: p.rings.registration.kekFor('billing:enc:1') },
    ],
    ...over,
  });
}

type Mutable = Record<string, unknown> & {
  body: Record<string, unknown> & { name: { given: string[] }[]; telecom?: unknown[] };
};
const json = (bytes: Uint8Array): Mutable => JSON.parse(Buffer.from(bytes).toString('utf8')) as Mutable;
const bytesOf = (obj: unknown): Uint8Array => new Uint8Array(Buffer.from(JSON.stringify(obj), 'utf8'));
const brokerKek = (id: string) => p.rings.broker.kekForId(id);

function expectCode(f: () => unknown, code: BrokerErrorCode, message?: RegExp, path?: string): void {
  let caught: unknown;
  try {
    f();
  } catch (e) {
    caught = e;
  }
  expect(caught, 'expected a BrokerError').toMatchObject({ name: 'BrokerError', code });
  const err = caught as { message: string; path?: string };
  if (message) expect(err.message).toMatch(message);
  if (path !== undefined) expect(err.path).toBe(path);
}

function openUnverified(bytes: Uint8Array, recipient = 'broker'): unknown {
  return openEnvelope(parseEnvelope(bytes), recipient, brokerKek);
}

describe('sanity: the attacks below change only what they say', () => {
  it('re-serialising a parsed envelope gives the same bytes, which verify and open', () => {
    const s = seal();
    const same = bytesOf(json(s.bytes));
    expect(Buffer.from(same).equals(Buffer.from(s.bytes))).toBe(true);
    verifyEnvelope(same, s.sig, p.keys.registration.sign.publicKey);
    expect(withJsNumbers(openUnverified(same))).toStrictEqual(syntheticPatient());
  });
});

describe('property 1: every PHI leaf sealed on its own, structure readable', () => {
  it('keeps keys and array lengths, seals every leaf but the plaintext allow-list', () => {
    const body = json(seal().bytes).body as unknown as Record<string, unknown> & {
      name: { given: string[] }[];
      meta: { profile: string[]; security: Record<string, string>[]; tag: Record<string, string>[] };
    };
    expect(Object.keys(body)).toStrictEqual(Object.keys(syntheticPatient()));
    expect(body['resourceType']).toBe('Patient');
    expect(body.meta.profile).toStrictEqual(['http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient']);
    expect(body.meta.security[0]?.['system']).toBe('http://terminology.hl7.org/CodeSystem/v3-Confidentiality');
    expect(body.meta.security[0]?.['code']).toBe('R');
    expect(body.meta.security[0]?.['display']).toMatch(/^[A-Za-z0-9_-]{54,}$/);
    expect(body.meta.tag[0]?.['code']).not.toBe('synthetic');
    expect(body.name[0]?.given).toHaveLength(2);
    for (const sealedLeaf of [
      body['id'],
      body['active'],
      body['multipleBirthInteger'],
      body['_birthDate'],
      body.name[0]?.given[0],
    ]) {
      expect(sealedLeaf).toMatch(/^[A-Za-z0-9_-]{54,}$/);
    }
  });

  it('a contained resource keeps its resourceType readable; a non-resource resourceType is sealed', () => {
    const resource = {
      resourceType: 'Observation',
      contained: [{ resourceType: 'Patient', id: 'p1' }],
      extension: [{ resourceType: 'NotAType' }],
    };
    const body = json(seal({ typ: 'Observation', resource }).bytes).body as unknown as {
      contained: Record<string, string>[];
      extension: Record<string, string>[];
    };
    expect(body.contained[0]?.['resourceType']).toBe('Patient');
    expect(body.contained[0]?.['id']).not.toBe('p1');
    expect(body.extension[0]?.['resourceType']).not.toBe('NotAType');
    expect(withJsNumbers(openUnverified(seal({ typ: 'Observation', resource }).bytes))).toStrictEqual(resource);
  });

  it('a leaf that decrypts to an object or array is refused (structure cannot hide inside a leaf)', () => {
    // Injected randomness makes the data key known (its first 32 bytes), so the test can forge a well-sealed leaf.
    const rand = streamRandom('forge').call(null, 4096);
    const s = seal({ random: fixedRandom(rand) });
    const env = json(s.bytes);
    const forged = sealBlobBase64url(
      rand.slice(0, 32),
      Buffer.from('{"family":"x"}'),
      leafAad('msg-1', 'Patient.gender', env['dk'] as string),
      streamRandom('n'),
    );
    env.body['gender'] = forged;
    expectCode(
      () => openUnverified(bytesOf(env)),
      'E_ENVELOPE_INVALID',
      /Patient\.gender: expected a sealed JSON leaf/,
      'Patient.gender',
    );
    // the same forged value at its own path with a primitive inside opens: the refusal above is the type rule
    env.body['gender'] = sealBlobBase64url(
      rand.slice(0, 32),
      Buffer.from('"forged"'),
      leafAad('msg-1', 'Patient.gender', env['dk'] as string),
      streamRandom('n'),
    );
    expect((openUnverified(bytesOf(env)) as { gender: string }).gender).toBe('forged');
  });

  it('a non-string where a sealed leaf belongs is E_ENVELOPE_INVALID', () => {
    const env = json(seal().bytes);
    env.body['active'] = true;
    expectCode(() => openUnverified(bytesOf(env)), 'E_ENVELOPE_INVALID', /Patient\.active/, 'Patient.active');
  });
});

describe('property 3: a ciphertext is bound to its message, element path and key', () => {
  it('swapping two ciphertexts within a message fails to open even without the signature check', () => {
    const env = json(seal().bytes);
    const given = env.body.name[0]!.given;
    [given[0], given[1]] = [given[1]!, given[0]!];
    const bytes = bytesOf(env);
    expectCode(() => openUnverified(bytes), 'E_DECRYPT', /Patient\.name\[0\]\.given\[0\]/, 'Patient.name[0].given[0]');
    expectCode(
      () => verifyEnvelope(bytes, seal().sig, p.keys.registration.sign.publicKey),
      'E_SIGNATURE',
      /does not verify/,
    );
  });

  it('moving a ciphertext to the same path of another message with the SAME data key fails (message id in the AAD)', () => {
    // Both messages draw identical randomness, so data key, data key id and nonces are equal: only the id differs.
    const rand = streamRandom('same-key').call(null, 4096);
    const a = json(seal({ id: 'msg-a', random: fixedRandom(rand) }).bytes);
    const b = json(seal({ id: 'msg-b', random: fixedRandom(rand) }).bytes);
    expect(a['dk']).toBe(b['dk']);
    a.body.name[0]!.given[0] = b.body.name[0]!.given[0]!;
    expectCode(() => openUnverified(bytesOf(a)), 'E_DECRYPT', /given\[0\]/, 'Patient.name[0].given[0]');
  });

  it('changing the data key id breaks every leaf and the wraps (dk in both AADs)', () => {
    const env = json(seal().bytes);
    env['dk'] = 'AAAAAAAAAAAA';
    expectCode(() => openUnverified(bytesOf(env)), 'E_DECRYPT', /keys\[0\]\.wk/, 'keys[0].wk');
  });

  it('flipping any byte is caught by the signature; flipping a ciphertext byte is caught by the AEAD too', () => {
    const s = seal();
    for (let i = 0; i < s.bytes.length; i += 7) {
      const bad = Uint8Array.from(s.bytes);
      bad[i] = (bad[i] as number) ^ 0x01;
      expectCode(() => verifyEnvelope(bad, s.sig, p.keys.registration.sign.publicKey), 'E_SIGNATURE');
    }
    const env = json(s.bytes);
    const leaf = env.body.name[0]!.given[1]!;
    env.body.name[0]!.given[1] = (leaf[0] === 'A' ? 'B' : 'A') + leaf.slice(1);
    expectCode(() => openUnverified(bytesOf(env)), 'E_DECRYPT', /given\[1\]/, 'Patient.name[0].given[1]');
  });

  it('dropping an element is caught by the signature; dropping a middle array element by the AEAD as well', () => {
    const s = seal();
    const dropField = json(s.bytes);
    delete dropField.body['telecom'];
    expectCode(() => verifyEnvelope(bytesOf(dropField), s.sig, p.keys.registration.sign.publicKey), 'E_SIGNATURE');
    // Dropping the LAST array element leaves every remaining ciphertext at its path: the AEAD cannot notice,
    // only the signature does — which is why opening must follow verification.
    const dropLast = json(s.bytes);
    dropLast.body.name[0]!.given.pop();
    expect((openUnverified(bytesOf(dropLast)) as { name: { given: string[] }[] }).name[0]?.given).toStrictEqual([
      'Zebulon',
    ]);
    expectCode(() => verifyEnvelope(bytesOf(dropLast), s.sig, p.keys.registration.sign.publicKey), 'E_SIGNATURE');
    const dropFirst = json(s.bytes);
    dropFirst.body.name[0]!.given.shift();
    expectCode(() => openUnverified(bytesOf(dropFirst)), 'E_DECRYPT', /given\[0\]/);
  });

  it('truncating the bytes at any length fails to parse or to verify', () => {
    const s = seal();
    for (let n = 0; n < s.bytes.length; n += 3) {
      const cut = s.bytes.subarray(0, n);
      expectCode(() => verifyEnvelope(cut, s.sig, p.keys.registration.sign.publicKey), 'E_SIGNATURE');
      expectCode(() => parseEnvelope(cut), 'E_JSON_MALFORMED', /not well-formed/);
    }
  });

  it('a truncated signature or a missing one is E_SIGNATURE', () => {
    const s = seal();
    expectCode(
      () => verifyEnvelope(s.bytes, s.sig.slice(0, 40), p.keys.registration.sign.publicKey),
      'E_SIGNATURE',
      /malformed/,
    );
    expectCode(() => verifyEnvelope(s.bytes, undefined, p.keys.registration.sign.publicKey), 'E_SIGNATURE', /missing/);
  });
});

describe('replay: id and iat are exposed and covered by the signature', () => {
  it('the same bytes always parse to the same id and iat (the broker dedupes on them)', () => {
    const s = seal();
    expect([parseEnvelope(s.bytes).id, parseEnvelope(s.bytes).iat]).toStrictEqual(['msg-1', 1_700_000_000_000]);
  });

  it('changing id or iat to slip past replay and skew checks breaks the signature', () => {
    const s = seal();
    for (const [field, value] of [
      ['id', 'msg-2'],
      ['iat', 1_700_000_999_999],
    ] as const) {
      const env = json(s.bytes);
      env[field] = value;
      expectCode(() => verifySignedEnvelope(bytesOf(env), s.sig, p.rings.broker), 'E_SIGNATURE', /does not verify/);
    }
  });
});

describe('property 4: every envelope is signed by its sender', () => {
  it('re-signing with another service key does not verify with the key the kid names', () => {
    const s = seal();
    const forged = toBase64url(signDetached(s.bytes, p.keys.billing.sign.secretKey));
    expectCode(() => verifySignedEnvelope(s.bytes, forged, p.rings.broker), 'E_SIGNATURE', /does not verify/);
  });

  it('naming the other service key in kid while keeping iss is refused at parse', () => {
    const env = json(seal().bytes);
    env['kid'] = 'billing:sig:1';
    const bytes = bytesOf(env);
    const forged = toBase64url(signDetached(bytes, p.keys.billing.sign.secretKey));
    expectCode(() => verifySignedEnvelope(bytes, forged, p.rings.broker), 'E_SIGNATURE', /kid/, 'kid');
  });

  it('an unknown signing kid is E_KEY_UNKNOWN', () => {
    const env = json(seal().bytes);
    env['kid'] = 'registration:sig:7';
    expectCode(
      () => verifySignedEnvelope(bytesOf(env), seal().sig, p.rings.broker),
      'E_KEY_UNKNOWN',
      /registration:sig:7/,
    );
  });

  it('deliveries carry provenance, covered by the broker signature', () => {
    const prov = {
      src: 'registration',
      mid: 'msg-1',
      hash: 'A'.repeat(43),
      profile: 'https://example.org/fhir/StructureDefinition/billing-patient',
      purpose: 'HPAYMT',
      at: 1,
    };
    const s = seal({
      id: 'msg-1.billing',
      iss: 'broker',
      signer: p.keys.broker.sign,
      recipients: [{ id: 'billing', kek: p.rings.broker.kekFor('billing:enc:1') }],
      prov,
    });
    const env = verifySignedEnvelope(s.bytes, s.sig, p.rings.billing);
    expect(env.prov).toStrictEqual(prov);
    const changed = json(s.bytes);
    (changed['prov'] as { src: string }).src = 'research';
    expectCode(() => verifySignedEnvelope(bytesOf(changed), s.sig, p.rings.billing), 'E_SIGNATURE');
  });
});

describe('property 2 (envelope side): only recipients in keys can open', () => {
  it('a recipient not in keys gets E_KEY_UNKNOWN', () => {
    const env = parseEnvelope(seal().bytes);
    expectCode(
      () => openEnvelope(env, 'research', (id) => p.rings.research.kekForId(id)),
      'E_KEY_UNKNOWN',
      /research/,
      'keys',
    );
  });

  it('the wrong KEK for a listed recipient is refused; a wrap relabelled for another recipient does not decrypt', () => {
    const s = seal();
    expectCode(
      () => openEnvelope(parseEnvelope(s.bytes), 'broker', p.rings.research.kekFor('registration:enc:1')),
      'E_KEY_UNKNOWN',
      /KEK/,
    );
    const env = json(s.bytes);
    const keys = env['keys'] as { to: string; kek: string }[];
    keys[0] = { ...keys[0]!, to: 'research', kek: 'registration:enc:1~research:enc:1' };
    expectCode(
      () => openEnvelope(parseEnvelope(bytesOf(env)), 'research', (id) => p.rings.research.kekForId(id)),
      'E_DECRYPT',
      /keys\[0\]\.wk/,
      'keys[0].wk',
    );
  });

  it('a recipient that does not hold the KEK own half cannot derive it', () => {
    const env = parseEnvelope(seal().bytes);
    const entry = env.keys.find((k) => k.to === 'broker')!;
    expectCode(
      () => p.rings.research.kekForId(entry.kek),
      'E_KEY_UNKNOWN',
      /uses none of the encryption keys of research/,
    );
  });
});

describe('property 5: keys have ids and versions; old messages open until retired', () => {
  it('a v1 message verifies and opens after the sender rotates to v2, and fails with E_KEY_UNKNOWN once v1 is retired', () => {
    const v2 = generateServiceKeys('registration', 2, streamRandom('rotation'));
    const old: { bytes: Uint8Array; sig: string } = seal();
    const broker = new Keyring(p.keys.broker, p.publics);
    broker.addPeer(publicRecords(v2)[0]!);
    broker.addPeer(publicRecords(v2)[1]!);
    expect(broker.encryptionKeyOf('registration').kid).toBe('registration:enc:2');
    const sender = new Keyring([v2, p.keys.registration], p.publics);
    expect(sender.signer().kid).toBe('registration:sig:2');
    const fresh = seal({
      id: 'msg-v2',
      signer: sender.signer(),
      recipients: [{ id: 'broker', kek: sender.kekFor('broker:enc:1') }],
    });
    for (const m of [old, fresh]) {
      const env: Envelope = verifySignedEnvelope(m.bytes, m.sig, broker);
      expect(withJsNumbers(openEnvelope(env, 'broker', (id) => broker.kekForId(id)))).toStrictEqual(syntheticPatient());
    }
    broker.retire('registration:sig:1');
    expectCode(() => verifySignedEnvelope(old.bytes, old.sig, broker), 'E_KEY_UNKNOWN', /registration:sig:1/);
    broker.retire('registration:enc:1');
    expectCode(
      () => openEnvelope(parseEnvelope(old.bytes), 'broker', (id) => broker.kekForId(id)),
      'E_KEY_UNKNOWN',
      /registration:enc:1/,
    );
    expect(
      withJsNumbers(
        openEnvelope(verifySignedEnvelope(fresh.bytes, fresh.sig, broker), 'broker', (id) => broker.kekForId(id)),
      ),
    ).toStrictEqual(syntheticPatient());
  });

  it('a recipient that rotates its own encryption key still opens messages wrapped to the old one until it destroys it', () => {
    const v2 = generateServiceKeys('broker', 2, streamRandom('broker-rotation'));
    const old = seal();
    const broker = new Keyring([v2, p.keys.broker], p.publics);
    expect(broker.ownEncryptionKey().kid).toBe('broker:enc:2');
    expect(withJsNumbers(openEnvelope(parseEnvelope(old.bytes), 'broker', (id) => broker.kekForId(id)))).toStrictEqual(
      syntheticPatient(),
    );
    // Retiring stops sealing to it, not its holder opening the backlog sealed to it (docs/keys.md); destroying does.
    broker.retire('broker:enc:1');
    expect(withJsNumbers(openEnvelope(parseEnvelope(old.bytes), 'broker', (id) => broker.kekForId(id)))).toStrictEqual(
      syntheticPatient(),
    );
    broker.destroy('broker:enc:1');
    expectCode(
      () => openEnvelope(parseEnvelope(old.bytes), 'broker', (id) => broker.kekForId(id)),
      'E_KEY_DESTROYED',
      /broker:enc:1/,
    );
  });
});
