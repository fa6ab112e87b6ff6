// The key directory's entry format (src/crypto/key-directory.ts): JWS EdDSA under the operator root key, checked
// by jose as well (interop), refused when tampered, signed by another key, or naming another party; and what the
// lifecycle statuses do to a keyring (retiring until notAfter, then E_KEY_UNKNOWN; revoked → E_KEY_REVOKED;
// destroyed → E_KEY_DESTROYED, and which versions `keys prune` may destroy when).
import { calculateJwkThumbprint, compactVerify } from 'jose';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  addClientKeys,
  addListedKeys,
  applyEntry,
  destroyInEntry,
  entryFromVersions,
  operatorRootKey,
  prunableVersions,
  revokeInEntry,
  rotateEntry,
  signEntry,
  signedWhileValid,
  verifyEntry,
  type OperatorRootKey,
} from '../../src/crypto/key-directory.js';
import { Keyring } from '../../src/crypto/keyring.js';
import { generateServiceKeys, publicRecords } from '../../src/crypto/keypairs.js';
import { getSodium, initCrypto } from '../../src/crypto/sodium.js';
import { isBrokerError } from '../../src/wire/errors.js';

function rootFromSeed(fill: number): OperatorRootKey {
  const seed = new Uint8Array(32).fill(fill);
  return operatorRootKey(getSodium().crypto_sign_seed_keypair(seed).publicKey, seed);
}

function codeOf(f: () => unknown): string | undefined {
  try {
    f();
  } catch (e) {
    return isBrokerError(e) ? e.code : 'not a BrokerError';
  }
  return undefined;
}

function messageOf(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    return (e as Error).message;
  }
  return '';
}

const T0 = Date.parse('2026-12-01T00:00:00.000Z');
let root: OperatorRootKey;
let other: OperatorRootKey;

beforeAll(async () => {
  await initCrypto();
  root = rootFromSeed(7);
  other = rootFromSeed(8);
});

describe('directory entries', () => {
  it('sign → verify round trip; jose verifies the same JWS (EdDSA, RFC 8037) and sees the typ', async () => {
    const v1 = generateServiceKeys('registration', 1);
    const entry = entryFromVersions('service', [v1], T0);
    const jws = await signEntry(entry, root);
    expect(verifyEntry('registration', jws, root)).toEqual(entry);
    const { payload, protectedHeader } = await compactVerify(jws, root.publicKey, { algorithms: ['EdDSA'] });
    expect(protectedHeader).toMatchObject({ alg: 'EdDSA', typ: 'phi-broker-keys+jwks', kid: root.kid });
    const json = JSON.parse(new TextDecoder().decode(payload)) as { keys: Record<string, unknown>[] };
    expect(json.keys.map((k) => [k['kid'], k['status'], 'd' in k])).toEqual([
      ['registration:sig:1', 'active', false],
      ['registration:enc:1', 'active', false],
    ]);
    // kid = RFC 7638 thumbprint of the root's public JWK, as jose computes it.
    const jwk = root.publicKey.export({ format: 'jwk' });
    expect(root.kid).toBe(await calculateJwkThumbprint({ kty: 'OKP', crv: 'Ed25519', x: jwk.x as string }));
  });

  it('refuses a tampered payload, a JWS signed by another key, another party, and alg none', async () => {
    const entry = entryFromVersions('service', [generateServiceKeys('registration', 1)], T0);
    const jws = await signEntry(entry, root);
    const [h, p, s] = jws.split('.') as [string, string, string];
    const payload = JSON.parse(Buffer.from(p, 'base64url').toString('utf8')) as Record<string, unknown>;
    const tampered = `${h}.${Buffer.from(JSON.stringify({ ...payload, seq: 99 })).toString('base64url')}.${s}`;
    expect(codeOf(() => verifyEntry('registration', tampered, root))).toBe('E_KEY_DIRECTORY_INVALID');
    expect(messageOf(() => verifyEntry('registration', tampered, root))).toBe(
      'key directory entry registration: JWS signature does not verify under the operator root key',
    );
    const foreign = await signEntry(entry, other);
    expect(codeOf(() => verifyEntry('registration', foreign, root))).toBe('E_KEY_DIRECTORY_INVALID');
    expect(messageOf(() => verifyEntry('billing', jws, root))).toBe(
      'key directory entry billing: party: expected the KV key it is stored under',
    );
    const none = `${Buffer.from('{"alg":"none","typ":"phi-broker-keys+jwks"}').toString('base64url')}.${p}.`;
    expect(messageOf(() => verifyEntry('registration', none, root))).toBe(
      'key directory entry registration: JWS alg: expected EdDSA',
    );
    expect(codeOf(() => verifyEntry('registration', 'not a jws', root))).toBe('E_KEY_DIRECTORY_INVALID');
  });

  it('refuses a validly signed entry whose keys belong to another party or carry a private key', async () => {
    const entry = entryFromVersions('service', [generateServiceKeys('billing', 1)], T0);
    const misfiled = await signEntry({ ...entry, party: 'registration' }, root);
    expect(messageOf(() => verifyEntry('registration', misfiled, root))).toBe(
      'key directory entry registration: keys[0].kid: expected a key of registration',
    );
    const withD = await signEntry(
      { ...entry, keys: entry.keys.map((k, i) => (i === 0 ? { ...k, jwk: { ...k.jwk, d: 'AAAA' } } : k)) },
      root,
    );
    expect(messageOf(() => verifyEntry('billing', withD, root))).toContain('keys[0].d');
  });

  it("a partner's client keys (clientKeys) round-trip, stay out of the keyring, revoke by kid; malformed ones are refused", async () => {
    const v1 = generateServiceKeys('partner-payer', 1);
    const client = { kty: 'EC', crv: 'P-384', x: 'eA', y: 'eQ', kid: 'payer-2026', alg: 'ES384' };
    const entry = addClientKeys(entryFromVersions('partner', [v1], T0), [client], T0 + 1);
    if (entry === undefined) throw new Error('expected a new key');
    expect(addClientKeys(entry, [client], T0 + 2)).toBeUndefined();
    const read = verifyEntry('partner-payer', await signEntry(entry, root), root);
    expect(read.clientKeys).toEqual([{ jwk: client, status: 'active', created: new Date(T0 + 1).toISOString() }]);
    const keyring = new Keyring(generateServiceKeys('billing', 1), []);
    applyEntry(keyring, read);
    expect(() => keyring.signingPublicKey('payer-2026')).toThrow();
    const revoked = revokeInEntry(read, 'payer-2026', 'leaked', T0 + 3);
    expect(revoked?.clientKeys?.[0]).toMatchObject({ status: 'revoked', reason: 'leaked' });
    expect(revoked?.keys).toEqual(read.keys);
    // A rotation of the partner's own keys leaves its client keys as they were.
    expect(rotateEntry(read, generateServiceKeys('partner-payer', 2), T0 + 4, 1000).clientKeys).toEqual(
      read.clientKeys,
    );

    const signed = async (over: Record<string, unknown>, kind = 'partner') =>
      signEntry(
        { ...entry, kind, clientKeys: [{ ...read.clientKeys![0]!, jwk: { ...client, ...over } }] } as never,
        root,
      );
    for (const [over, message] of [
      [{ d: 'AA' }, 'clientKeys[0].d: not a member of a public EC signing key'],
      [{ crv: 'P-256' }, 'clientKeys[0].crv: expected P-384'],
      [{ alg: 'HS256' }, 'clientKeys[0].alg: expected ES384'],
      [{ kty: 'oct' }, 'clientKeys[0].kty: expected EC, RSA or OKP'],
    ] as const) {
      const jws = await signed(over);
      expect(messageOf(() => verifyEntry('partner-payer', jws, root))).toBe(
        `key directory entry partner-payer: ${message}`,
      );
    }
    const inService = await signed({}, 'service');
    expect(messageOf(() => verifyEntry('partner-payer', inService, root))).toBe(
      'key directory entry partner-payer: clientKeys: expected an array, in a partner entry only',
    );
  });
});

describe("the gateway entry's token keys", () => {
  const token = (kid: string) => ({ kty: 'EC', crv: 'P-384', x: 'eA', y: 'eQ', kid, alg: 'ES384', use: 'sig' });
  it('a rotation makes the new token key active and the previous retiring; a revoke by kid; only EC, only in gateway entries', async () => {
    const base = entryFromVersions('gateway', [generateServiceKeys('gateway', 1)], T0);
    const first = addListedKeys(base, 'tokenKeys', [token('t1')], T0);
    if (first === undefined) throw new Error('expected a new key');
    const rotated = addListedKeys(first, 'tokenKeys', [token('t2')], T0 + 10, 60_000);
    expect(rotated?.tokenKeys?.map((k) => [k.jwk.kid, k.status, k.notAfter])).toEqual([
      ['t1', 'retiring', new Date(T0 + 60_010).toISOString()],
      ['t2', 'active', undefined],
    ]);
    const read = verifyEntry('gateway', await signEntry(rotated!, root), root);
    expect(read.tokenKeys).toEqual(rotated?.tokenKeys);
    expect(revokeInEntry(read, 't1', 'drill', T0 + 20)?.tokenKeys?.[0]?.status).toBe('revoked');
    const rsa = await signEntry(
      { ...rotated!, tokenKeys: [{ ...rotated!.tokenKeys![0]!, jwk: { kty: 'RSA', n: 'n', e: 'AQAB', kid: 'r' } }] },
      root,
    );
    expect(messageOf(() => verifyEntry('gateway', rsa, root))).toBe(
      'key directory entry gateway: tokenKeys[0].kty: expected EC',
    );
    const misplaced = await signEntry({ ...rotated!, kind: 'service' }, root);
    expect(messageOf(() => verifyEntry('gateway', misplaced, root))).toBe(
      'key directory entry gateway: tokenKeys: expected an array, in a gateway entry only',
    );
  });
});

describe('lifecycle in a keyring', () => {
  it('rotation: the old version verifies and opens until notAfter, then is E_KEY_UNKNOWN; the new one signs', async () => {
    const v1 = generateServiceKeys('registration', 1);
    const v2 = generateServiceKeys('registration', 2);
    const broker = generateServiceKeys('broker', 1);
    const e1 = entryFromVersions('service', [v1], T0);
    const e2 = rotateEntry(e1, v2, T0 + 1000, 60_000);
    expect(e2.seq).toBe(2);
    expect(e2.keys.map((k) => [k.jwk.kid, k.status, k.notAfter])).toEqual([
      ['registration:sig:1', 'retiring', '2026-12-01T00:01:01.000Z'],
      ['registration:enc:1', 'retiring', '2026-12-01T00:01:01.000Z'],
      ['registration:sig:2', 'active', undefined],
      ['registration:enc:2', 'active', undefined],
    ]);
    const verified = verifyEntry('registration', await signEntry(e2, root), root);
    let clock = T0 + 2000;
    // The broker's view: registration is a peer.
    const ring = new Keyring(broker);
    ring.now = () => clock;
    expect(applyEntry(ring, verified).currentSigKid).toBe('registration:sig:2');
    expect(ring.signingPublicKey('registration:sig:1')).toEqual(v1.sign.publicKey);
    expect(ring.encryptionKeyOf('registration').kid).toBe('registration:enc:2');
    const oldKek = ring.kekForId(`broker:enc:1~registration:enc:1`);
    expect(oldKek.key.length).toBe(32);
    clock = T0 + 61_000;
    expect(codeOf(() => ring.signingPublicKey('registration:sig:1'))).toBe('E_KEY_UNKNOWN');
    // The cached KEK of the old version is refused too once the overlap ends.
    expect(codeOf(() => ring.kekForId(`broker:enc:1~registration:enc:1`))).toBe('E_KEY_UNKNOWN');
    expect(ring.signingPublicKey('registration:sig:2')).toEqual(v2.sign.publicKey);
    // The owner's view: v2 signs once loaded; v1 no longer does.
    const own = new Keyring(v1);
    applyEntry(own, verified);
    expect(own.hasOwn('registration:sig:2')).toBe(false);
    own.addOwn(v2);
    expect(own.signer().kid).toBe('registration:sig:2');
  });

  it('revocation: stored at or after revokedAt → E_KEY_REVOKED; stored before still verifies; never signs', async () => {
    const v1 = generateServiceKeys('registration', 1);
    const e1 = entryFromVersions('service', [v1], T0);
    const revoked = revokeInEntry(e1, 'registration:sig:1', 'laptop stolen', T0 + 5000);
    expect(revoked).toBeDefined();
    expect(revokeInEntry(e1, 'registration:sig:9', 'x', T0)).toBeUndefined();
    const verified = verifyEntry('registration', await signEntry(revoked!, root), root);
    expect(verified.keys[0]).toMatchObject({
      status: 'revoked',
      revokedAt: '2026-12-01T00:00:05.000Z',
      reason: 'laptop stolen',
    });
    const ring = new Keyring(v1);
    expect(applyEntry(ring, verified).newlyRevoked).toEqual(['registration:sig:1']);
    expect(applyEntry(ring, verified).newlyRevoked).toEqual([]);
    expect(ring.signingPublicKey('registration:sig:1', T0 + 4999)).toEqual(v1.sign.publicKey);
    expect(codeOf(() => ring.signingPublicKey('registration:sig:1', T0 + 5000))).toBe('E_KEY_REVOKED');
    expect(messageOf(() => ring.signingPublicKey('registration:sig:1'))).toBe(
      'key registration:sig:1 was revoked before this message was stored',
    );
    expect(codeOf(() => ring.signer())).toBe('E_KEY_UNKNOWN');
  });
});

describe('signatures made in the past (audit checkpoints)', () => {
  it('valid while active, before notAfter, before revokedAt, before the retired date even once destroyed', () => {
    const v1 = generateServiceKeys('broker', 1);
    const v2 = generateServiceKeys('broker', 2);
    const sig1 = (e: ReturnType<typeof entryFromVersions>) => e.keys.find((k) => k.jwk.kid === 'broker:sig:1')!;
    const e1 = entryFromVersions('broker', [v1], T0);
    expect(signedWhileValid(sig1(e1), T0 + 10 ** 9)).toEqual({ ok: true });
    const rotated = rotateEntry(e1, v2, T0 + 1000, 60_000); // notAfter T0 + 61 s
    expect(signedWhileValid(sig1(rotated), T0 + 60_999)).toEqual({ ok: true });
    expect(signedWhileValid(sig1(rotated), T0 + 61_000)).toEqual({ ok: false, code: 'E_KEY_UNKNOWN' });
    const destroyed = destroyInEntry(rotated, [1], T0 + 10 ** 9);
    expect(signedWhileValid(sig1(destroyed), T0 + 60_999)).toEqual({ ok: true });
    expect(signedWhileValid(sig1(destroyed), T0 + 61_000)).toEqual({ ok: false, code: 'E_KEY_UNKNOWN' });
    // Revoked while retiring, before its overlap ended: stored before revokedAt verifies, at or after it does not.
    const revoked = revokeInEntry(rotated, 'broker:sig:1', 'drill', T0 + 30_000)!;
    expect(signedWhileValid(sig1(revoked), T0 + 29_999)).toEqual({ ok: true });
    expect(signedWhileValid(sig1(revoked), T0 + 30_000)).toEqual({ ok: false, code: 'E_KEY_REVOKED' });
    // Revoked after its overlap ended: what it signed past notAfter was never valid.
    const late = revokeInEntry(rotated, 'broker:sig:1', 'drill', T0 + 90_000)!;
    expect(signedWhileValid(sig1(late), T0 + 70_000)).toEqual({ ok: false, code: 'E_KEY_UNKNOWN' });
  });
});

describe('epoch deletion', () => {
  it('prunable only once every key of a version stopped opening at least olderThan ago; never the active one', () => {
    const [v1, v2, v3] = [1, 2, 3].map((n) => generateServiceKeys('registration', n)) as [
      ReturnType<typeof generateServiceKeys>,
      ReturnType<typeof generateServiceKeys>,
      ReturnType<typeof generateServiceKeys>,
    ];
    const e2 = rotateEntry(entryFromVersions('service', [v1], T0), v2, T0 + 1000, 60_000);
    const e3 = rotateEntry(e2, v3, T0 + 2000, 60_000);
    // v1 retired (notAfter) at T0 + 61 000 — the second rotation leaves it as it was; v2 at T0 + 62 000.
    const older = 10_000;
    expect(prunableVersions(e3, older, T0 + 61_000 + older - 1)).toEqual([]);
    expect(prunableVersions(e3, older, T0 + 61_000 + older)).toEqual([1]);
    expect(prunableVersions(e3, older, T0 + 10_000_000)).toEqual([1, 2]);
    // A version with one key still active is not prunable.
    const revokedSigOnly = revokeInEntry(entryFromVersions('service', [v1], T0), 'registration:sig:1', 'x', T0)!;
    expect(prunableVersions(revokedSigOnly, 0, T0 + 10_000_000)).toEqual([]);

    const destroyed = destroyInEntry(e3, [1], T0 + 100_000);
    expect(destroyed.seq).toBe(e3.seq + 1);
    expect(destroyed.keys.slice(0, 2)).toMatchObject([
      { status: 'retired', retired: '2026-12-01T00:01:01.000Z', destroyedAt: '2026-12-01T00:01:40.000Z' },
      { status: 'retired', retired: '2026-12-01T00:01:01.000Z', destroyedAt: '2026-12-01T00:01:40.000Z' },
    ]);
    expect(destroyed.keys.slice(2).every((k) => k.destroyedAt === undefined)).toBe(true);
    // Already destroyed versions are not offered again.
    expect(prunableVersions(destroyed, older, T0 + 10_000_000)).toEqual([2]);
  });

  it('a destroyed kid survives the JWS round trip; a keyring refuses it E_KEY_DESTROYED; destroyedAt only on retired', async () => {
    const root = rootFromSeed(7);
    const [v1, v2] = [1, 2].map((n) => generateServiceKeys('registration', n)) as [
      ReturnType<typeof generateServiceKeys>,
      ReturnType<typeof generateServiceKeys>,
    ];
    const e2 = rotateEntry(entryFromVersions('service', [v1], T0), v2, T0, 1000);
    const destroyed = verifyEntry('registration', await signEntry(destroyInEntry(e2, [1], T0 + 5000), root), root);
    expect(destroyed.keys[1]).toMatchObject({ status: 'retired', destroyedAt: '2026-12-01T00:00:05.000Z' });

    const ring = new Keyring([v2, v1]);
    const peer = generateServiceKeys('billing', 1);
    for (const r of publicRecords(peer)) ring.addPeer(r);
    expect(ring.kekForId(`billing:enc:1~registration:enc:1`).id).toBe('billing:enc:1~registration:enc:1');
    expect(applyEntry(ring, destroyed).newlyDestroyed).toEqual(['registration:sig:1', 'registration:enc:1']);
    expect(applyEntry(ring, destroyed).newlyDestroyed).toEqual([]);
    expect(codeOf(() => ring.kekForId('billing:enc:1~registration:enc:1'))).toBe('E_KEY_DESTROYED');
    expect(codeOf(() => ring.signingPublicKey('registration:sig:1'))).toBe('E_KEY_DESTROYED');
    expect(ring.kekForId('billing:enc:1~registration:enc:2').id).toBe('billing:enc:1~registration:enc:2');

    const forged = {
      ...e2,
      seq: e2.seq + 1,
      keys: e2.keys.map((k) => ({ ...k, destroyedAt: '2026-12-01T00:00:05.000Z' })),
    };
    const bad = await signEntry(forged, root);
    expect(codeOf(() => verifyEntry('registration', bad, root))).toBe('E_KEY_DIRECTORY_INVALID');
    expect(messageOf(() => verifyEntry('registration', bad, root))).toContain(
      'keys[0].destroyedAt: only a retired key can be destroyed',
    );
  });
});
