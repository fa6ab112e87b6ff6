// Service keys (kids, versions, redaction), KEK derivation, the keyring and the development key files (JWK, JWKS).
import { PLAIN_KEYS } from '../../src/runtime/key-protection.js';
import { diffieHellman, createPrivateKey, createPublicKey } from 'node:crypto';
import { mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import { toBase64url } from '../../src/crypto/base64url.js';
import { KEK_LABEL } from '../../src/crypto/kek.js';
import { Keyring } from '../../src/crypto/keyring.js';
import { generateServiceKeys, parseKid, publicRecords } from '../../src/crypto/keys.js';
import {
  ensureDevKeys,
  privateKeyFile,
  readJwks,
  readServiceKeyVersions,
  readServiceKeys,
  rotateKeys,
  writeJwks,
  writeServiceKeys,
} from '../../src/runtime/key-files.js';
import { getSodium, initCrypto } from '../../src/crypto/sodium.js';
import { streamRandom } from '../envelope/parties.js';

beforeAll(async () => {
  await initCrypto();
});

const tmp = (): string => mkdtempSync(join(tmpdir(), 'phi-keys-'));

describe('service keys', () => {
  it('have versioned kids and 32-byte public keys', () => {
    const k = generateServiceKeys('billing', 3);
    expect([
      k.sign.kid,
      k.enc.kid,
      k.sign.publicKey.length,
      k.enc.publicKey.length,
      k.sign.secretKey.length,
    ]).toStrictEqual(['billing:sig:3', 'billing:enc:3', 32, 32, 64]);
    expect(parseKid('billing:enc:3')).toStrictEqual({ service: 'billing', use: 'enc', version: 3 });
    expect([parseKid('billing:enc:0'), parseKid('Billing:sig:1'), parseKid('billing:key:1')]).toStrictEqual([
      undefined,
      undefined,
      undefined,
    ]);
    expect(() => generateServiceKeys('Not A Service')).toThrow(TypeError);
  });

  it('never show the secret key in JSON or util.inspect', () => {
    const k = generateServiceKeys('billing', 1, streamRandom('redact'));
    const secrets = [
      toBase64url(k.sign.secretKey.subarray(0, 32)),
      toBase64url(k.enc.secretKey),
      Buffer.from(k.enc.secretKey).toString('hex'),
    ];
    const shown = [JSON.stringify(k), inspect(k, { depth: 5 }), inspect(k.sign), JSON.stringify({ key: k.enc })];
    for (const text of shown) for (const s of secrets) expect(text).not.toContain(s);
    expect(JSON.stringify(k.enc)).toContain(toBase64url(k.enc.publicKey));
    expect(inspect(k.sign)).toContain('[redacted]');
    expect(inspect(k.sign)).not.toMatch(/\d+, \d+, \d+/); // no byte dump either
  });
});

describe('KEK derivation and the keyring', () => {
  const a = () => generateServiceKeys('registration', 1, streamRandom('a'));
  const b = () => generateServiceKeys('broker', 1, streamRandom('b'));

  it('both sides derive the same KEK = BLAKE2b-256(label || X25519 || pk_first || pk_second), id sorted', () => {
    const [ka, kb] = [a(), b()];
    const ra = new Keyring(ka, publicRecords(kb));
    const rb = new Keyring(kb, publicRecords(ka));
    const k1 = ra.kekFor('broker:enc:1');
    const k2 = rb.kekFor('registration:enc:1');
    expect(k1.id).toBe('broker:enc:1~registration:enc:1');
    expect(k2.id).toBe(k1.id);
    expect(Buffer.from(k1.key).equals(Buffer.from(k2.key))).toBe(true);
    // independent computation: X25519 through node:crypto (OpenSSL), BLAKE2b-256 through libsodium
    const pkcs8 = (d: Uint8Array) =>
      createPrivateKey({
        key: Buffer.concat([Buffer.from('302e020100300506032b656e04220420', 'hex'), d]),
        format: 'der',
        type: 'pkcs8',
      });
    const spki = (x: Uint8Array) =>
      createPublicKey({
        key: Buffer.concat([Buffer.from('302a300506032b656e032100', 'hex'), x]),
        format: 'der',
        type: 'spki',
      });
    const shared = diffieHellman({ privateKey: pkcs8(ka.enc.secretKey), publicKey: spki(kb.enc.publicKey) });
    const input = Buffer.concat([Buffer.from(KEK_LABEL), shared, kb.enc.publicKey, ka.enc.publicKey]); // broker:… sorts first
    expect(Buffer.from(getSodium().crypto_generichash(32, input, null)).equals(Buffer.from(k1.key))).toBe(true);
  });

  it('caches KEKs (the same object, no second key agreement) and resolves envelope KEK ids', () => {
    const ra = new Keyring(a(), publicRecords(b()));
    const k = ra.kekFor('broker:enc:1');
    expect(ra.kekFor('broker:enc:1')).toBe(k);
    expect(ra.kekForId('broker:enc:1~registration:enc:1')).toBe(k);
    expect(() => ra.kekForId('registration:enc:1~broker:enc:1')).toThrow(
      expect.objectContaining({ code: 'E_KEY_UNKNOWN', message: 'KEK id is not <kid>~<kid> in sorted order' }),
    );
    expect(() => ra.kekForId('billing:enc:1~broker:enc:1')).toThrow(
      expect.objectContaining({
        code: 'E_KEY_UNKNOWN',
        message: 'KEK billing:enc:1~broker:enc:1 uses none of the encryption keys of registration',
      }),
    );
  });

  it('answers kid questions and says E_KEY_UNKNOWN for what it does not hold', () => {
    const [ka, kb] = [a(), b()];
    const r = new Keyring(ka, publicRecords(kb));
    expect(r.ownerOf('broker:sig:1')).toBe('broker');
    expect(Buffer.from(r.signingPublicKey('broker:sig:1')).equals(Buffer.from(kb.sign.publicKey))).toBe(true);
    expect(r.encryptionKeyOf('broker').kid).toBe('broker:enc:1');
    for (const f of [
      () => r.signingPublicKey('billing:sig:1'),
      () => r.ownerOf('broker:sig:2'),
      () => r.signingPublicKey('broker:enc:1'),
      () => r.encryptionKeyOf('billing'),
      () => r.kekFor('broker:sig:1'),
    ]) {
      expect(f).toThrow(
        expect.objectContaining({ code: 'E_KEY_UNKNOWN', message: expect.stringMatching(/^key \S+ is not held/) }),
      );
    }
  });

  it('rotation: the newest version is current; retired kids stay retired even when re-added', () => {
    const [ka, kb] = [a(), b()];
    const kb2 = generateServiceKeys('broker', 2, streamRandom('b2'));
    const r = new Keyring(ka, [...publicRecords(kb), ...publicRecords(kb2)]);
    expect(r.encryptionKeyOf('broker').kid).toBe('broker:enc:2');
    const old = r.kekFor('broker:enc:1');
    r.retire('broker:enc:2');
    expect(r.encryptionKeyOf('broker').kid).toBe('broker:enc:1');
    expect(r.kekFor('broker:enc:1')).toBe(old);
    r.retire('broker:enc:1');
    expect(() => r.kekFor('broker:enc:1')).toThrow(expect.objectContaining({ code: 'E_KEY_UNKNOWN' }));
    r.addPeer(publicRecords(kb)[1]!);
    expect(r.isRetired('broker:enc:1')).toBe(true);
    expect(() => r.encryptionKeyOf('broker')).toThrow(
      expect.objectContaining({
        code: 'E_KEY_UNKNOWN',
        message: 'key broker:enc:* is not held (never issued, or retired)',
      }),
    );
  });

  it('own rotation: signer and encryption key follow the newest version, old ones open until retired', () => {
    const ka2 = generateServiceKeys('registration', 2, streamRandom('a2'));
    const r = new Keyring([ka2, a()], publicRecords(b()));
    expect([r.signer().kid, r.ownEncryptionKey().kid]).toStrictEqual(['registration:sig:2', 'registration:enc:2']);
    expect(r.kekForId('broker:enc:1~registration:enc:1').id).toBe('broker:enc:1~registration:enc:1');
    r.retire('registration:sig:2');
    expect(r.signer().kid).toBe('registration:sig:1');
  });

  it("own encryption key past its overlap opens what was sealed to it (the broker's retained ingest) until destroyed", () => {
    const [kb1, kb2, ka] = [b(), generateServiceKeys('broker', 2, streamRandom('b2')), a()];
    const broker = new Keyring([kb2, kb1], publicRecords(ka));
    const sender = new Keyring(ka, publicRecords(kb1));
    let now = 1_000;
    broker.now = () => now;
    const id = 'broker:enc:1~registration:enc:1';
    const sealed = sender.kekFor('broker:enc:1');
    broker.retireAt('broker:enc:1', 2_000);
    broker.retireAt('broker:sig:1', 2_000);
    now = 5_000; // past the overlap
    expect(broker.isRetired('broker:enc:1')).toBe(true);
    expect(broker.kekForId(id).key).toStrictEqual(sealed.key);
    // Never sealed to or signed with again.
    expect([broker.ownEncryptionKey().kid, broker.signer().kid]).toStrictEqual(['broker:enc:2', 'broker:sig:2']);
    // The peer's half past its own overlap is refused: retirement stops accepting others' keys.
    broker.retireAt('registration:enc:1', 3_000);
    expect(() => broker.kekForId(id)).toThrow(expect.objectContaining({ code: 'E_KEY_UNKNOWN' }));
    // Destroyed (keys prune): E_KEY_DESTROYED.
    const fresh = new Keyring([kb2, kb1], publicRecords(ka));
    fresh.destroy('broker:enc:1');
    expect(() => fresh.kekForId(id)).toThrow(expect.objectContaining({ code: 'E_KEY_DESTROYED' }));
  });
});

describe('signerInOverlap: the audit signer of a process whose key file lacks the new version', () => {
  it('signs with the current key, else the newest still in its overlap; never a revoked or expired one', () => {
    const [k1, k2] = [
      generateServiceKeys('gateway', 1, streamRandom('g1')),
      generateServiceKeys('gateway', 2, streamRandom('g2')),
    ];
    const ring = new Keyring(k1, publicRecords(k2));
    let now = 1_000;
    ring.now = () => now;
    // The directory named gateway:sig:2 current; this process holds only version 1.
    ring.retireAt('gateway:sig:1', 2_000);
    expect(() => ring.signer()).toThrow(expect.objectContaining({ code: 'E_KEY_UNKNOWN' }));
    expect(ring.signerInOverlap().kid).toBe('gateway:sig:1');
    now = 2_000; // the overlap ended
    expect(() => ring.signerInOverlap()).toThrow(expect.objectContaining({ code: 'E_KEY_UNKNOWN' }));
    const revoked = new Keyring(k1);
    revoked.revoke('gateway:sig:1', 1_000);
    expect(() => revoked.signerInOverlap()).toThrow(expect.objectContaining({ code: 'E_KEY_UNKNOWN' }));
    // Once the new version is loaded, it signs.
    ring.addOwn(k2);
    expect(ring.signerInOverlap().kid).toBe('gateway:sig:2');
  });
});

describe('development key files (RFC 8037 JWK, RFC 7517 JWKS)', () => {
  it('writes the private file with mode 0600 and reads back the same keys', () => {
    const dir = tmp();
    const k = generateServiceKeys('billing');
    writeServiceKeys(dir, k);
    expect(statSync(privateKeyFile(dir, 'billing')).mode & 0o777).toBe(0o600);
    const jwks = JSON.parse(readFileSync(privateKeyFile(dir, 'billing'), 'utf8')) as { keys: Record<string, string>[] };
    expect(jwks.keys.map((j) => [j['kty'], j['crv'], j['use'], j['kid']])).toStrictEqual([
      ['OKP', 'Ed25519', 'sig', 'billing:sig:1'],
      ['OKP', 'X25519', 'enc', 'billing:enc:1'],
    ]);
    const back = readServiceKeys(dir, 'billing');
    expect(Buffer.from(back.sign.secretKey).equals(Buffer.from(k.sign.secretKey))).toBe(true);
    expect(Buffer.from(back.enc.secretKey).equals(Buffer.from(k.enc.secretKey))).toBe(true);
  });

  it('ensureDevKeys creates what is missing, keeps what exists, and writes a public-only JWKS', () => {
    const dir = tmp();
    const first = ensureDevKeys(dir, ['broker', 'billing']);
    expect(first.created).toStrictEqual(['broker', 'billing']);
    const second = ensureDevKeys(dir, ['broker', 'billing', 'research']);
    expect(second.created).toStrictEqual(['research']);
    expect(
      Buffer.from(readServiceKeys(dir, 'broker').sign.publicKey).equals(
        Buffer.from(first.keys.get('broker')![0]!.sign.publicKey),
      ),
    ).toBe(true);
    const text = readFileSync(join(dir, 'jwks.json'), 'utf8');
    expect(text).not.toContain('"d"');
    expect(
      readJwks(dir)
        .map((r) => r.kid)
        .sort(),
    ).toStrictEqual([
      'billing:enc:1',
      'billing:sig:1',
      'broker:enc:1',
      'broker:sig:1',
      'research:enc:1',
      'research:sig:1',
    ]);
  });

  it('rotateKeys adds version 2 first, keeps version 1, and publishes both', async () => {
    const dir = tmp();
    ensureDevKeys(dir, ['billing']);
    const v2 = await rotateKeys(dir, 'billing', PLAIN_KEYS);
    expect(v2.sign.kid).toBe('billing:sig:2');
    expect(readServiceKeyVersions(dir, 'billing').map((k) => k.enc.kid)).toStrictEqual([
      'billing:enc:2',
      'billing:enc:1',
    ]);
    expect(readJwks(dir).map((r) => r.kid)).toStrictEqual([
      'billing:enc:1',
      'billing:enc:2',
      'billing:sig:1',
      'billing:sig:2',
    ]);
  });

  it('refuses a private key whose x is not its d, a JWKS holding a private key, and a missing file', () => {
    const dir = tmp();
    writeServiceKeys(dir, generateServiceKeys('billing'));
    const file = privateKeyFile(dir, 'billing');
    const jwks = JSON.parse(readFileSync(file, 'utf8')) as { keys: Record<string, string>[] };
    jwks.keys[1]!['x'] = toBase64url(new Uint8Array(32).fill(1));
    writeFileSync(file, JSON.stringify(jwks));
    expect(() => readServiceKeys(dir, 'billing')).toThrow(
      expect.objectContaining({
        code: 'E_CONFIG_INVALID',
        message: `${file}: keys[1].x: expected the public key of d`,
      }),
    );
    writeFileSync(join(dir, 'jwks.json'), JSON.stringify(jwks));
    expect(() => readJwks(dir)).toThrow(
      expect.objectContaining({
        code: 'E_CONFIG_INVALID',
        message: expect.stringContaining('keys[0].d: expected no private key'),
      }),
    );
    expect(() => readServiceKeys(dir, 'research')).toThrow(
      expect.objectContaining({ code: 'E_KEY_UNKNOWN', message: 'no private key file for service research' }),
    );
  });

  it('writeJwks writes only public members', () => {
    const dir = tmp();
    writeJwks(dir, publicRecords(generateServiceKeys('broker')));
    const json = JSON.parse(readFileSync(join(dir, 'jwks.json'), 'utf8')) as { keys: Record<string, string>[] };
    expect(json.keys.map((k) => Object.keys(k).sort())).toStrictEqual([
      ['crv', 'kid', 'kty', 'use', 'x'],
      ['alg', 'crv', 'kid', 'kty', 'use', 'x'],
    ]);
  });
});
