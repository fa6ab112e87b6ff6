// Key files protected at rest (src/runtime/key-protection.ts, docs/keys-at-rest.md), on real files in temp dirs:
// keys created sealed open only with the right passphrase or key file; plain and sealed files are never mixed up;
// `protectKeysDir` leaves no private key byte sequence anywhere on disk and zeroes the plain file it replaces.
import {
  chmodSync,
  existsSync,
  linkSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initCrypto } from '../../src/crypto/sodium.js';
import { TokenSigner, tokenKeyFile } from '../../src/gateway/token-signer.js';
import {
  ensureBrokerSecrets,
  openBrokerSecrets,
  pruneQuarantineKeys,
  rotateQuarantineKey,
  secretsFile,
} from '../../src/runtime/broker-secrets.js';
import {
  dropKeyVersions,
  ensureDevKeys,
  ensureKeys,
  openServiceKeyVersions,
  openServiceKeys,
  rotateKeys,
  privateKeyFile,
  readServiceKeys,
} from '../../src/runtime/key-files.js';
import {
  PLAIN_KEYS,
  keyFileStore,
  keyProtection,
  privateKeyFiles,
  protectKeysDir,
  writeKeyFile,
  type KeyProtection,
} from '../../src/runtime/key-protection.js';
import { BrokerError } from '../../src/wire/errors.js';
import { findNeedles, privateNeedles } from '../helpers/key-scan.js';

const root = mkdtempSync(join(tmpdir(), 'phi-keys-at-rest-'));
let n = 0;
const freshDir = (): string => join(root, `d${++n}`);
const PASS = 'correct horse battery staple';
const cfg = { keyKdf: 'interactive' as const };
const passphrase = (value = PASS): KeyProtection =>
  keyProtection('passphrase', cfg, { PHI_BROKER_KEY_PASSPHRASE: value });

async function codeOf(work: () => unknown): Promise<string> {
  try {
    await work();
  } catch (e) {
    if (e instanceof BrokerError) return e.code;
    throw e;
  }
  throw new Error('expected a BrokerError');
}

beforeAll(async () => {
  await initCrypto();
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('keys created under a provider', () => {
  it('are sealed on disk, open with the right passphrase, not with a wrong one or in plain mode', async () => {
    const dir = freshDir();
    const made = await ensureKeys(dir, ['broker', 'registration'], passphrase());
    expect(made.created).toEqual(['broker', 'registration']);
    const text = readFileSync(privateKeyFile(dir, 'registration'), 'utf8');
    expect(JSON.parse(text)).toMatchObject({ format: 'phi-broker-key-file', kek: { provider: 'passphrase' } });
    expect(statSync(privateKeyFile(dir, 'registration')).mode & 0o777).toBe(0o600);
    const created = made.keys.get('registration')?.[0];
    const opened = await openServiceKeys(dir, 'registration', passphrase());
    expect(Buffer.from(opened.sign.secretKey).equals(Buffer.from(created?.sign.secretKey ?? []))).toBe(true);
    expect(Buffer.from(opened.enc.secretKey).equals(Buffer.from(created?.enc.secretKey ?? []))).toBe(true);
    // A second ensure keeps the sealed keys (opens them, creates nothing).
    expect((await ensureKeys(dir, ['broker', 'registration'], passphrase())).created).toEqual([]);

    expect(await codeOf(() => openServiceKeys(dir, 'registration', passphrase(`${PASS}!`)))).toBe('E_KEY_UNLOCK');
    expect(await codeOf(() => openServiceKeys(dir, 'registration', PLAIN_KEYS))).toBe('E_KEY_PROTECTION');
    expect(await codeOf(() => readServiceKeys(dir, 'registration'))).toBe('E_KEY_PROTECTION');
    // No private value in any file: the needles come from the keys as opened.
    const needles = [opened.sign.secretKey.subarray(0, 32), opened.enc.secretKey].flatMap((d) => [
      { what: 'd (raw)', bytes: Buffer.from(d) },
      { what: 'd (base64url)', bytes: Buffer.from(Buffer.from(d).toString('base64url')) },
    ]);
    expect(findNeedles(dir, needles)).toEqual([]);
  });

  it('keys prune rewrites a sealed file without the destroyed version, still sealed; the current one is kept', async () => {
    const dir = freshDir();
    await ensureKeys(dir, ['registration'], passphrase());
    const [v1] = await openServiceKeyVersions(dir, 'registration', passphrase());
    await rotateKeys(dir, 'registration', passphrase());
    expect(await dropKeyVersions(dir, 'registration', [1, 2], passphrase())).toEqual([1]);
    expect(JSON.parse(readFileSync(privateKeyFile(dir, 'registration'), 'utf8'))).toMatchObject({
      format: 'phi-broker-key-file',
    });
    const left = await openServiceKeyVersions(dir, 'registration', passphrase());
    expect(left.map((v) => v.enc.kid)).toEqual(['registration:enc:2']);
    expect(left.some((v) => Buffer.from(v.enc.secretKey).equals(Buffer.from(v1?.enc.secretKey ?? [])))).toBe(false);
    expect(readFileSync(join(dir, 'jwks.json'), 'utf8')).not.toContain('registration:enc:1');
    expect(await dropKeyVersions(dir, 'registration', [2], passphrase())).toEqual([]);
  });

  it('an error names the file, never a key or the passphrase', async () => {
    const dir = freshDir();
    await ensureKeys(dir, ['registration'], passphrase());
    const err = await openServiceKeys(dir, 'registration', passphrase('wrong passphrase here')).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(BrokerError);
    expect((err as BrokerError).path).toBe(privateKeyFile(dir, 'registration'));
    expect((err as BrokerError).message).toContain(privateKeyFile(dir, 'registration'));
    expect((err as BrokerError).message).not.toContain('wrong passphrase here');
  });

  it('a provider refuses a plain key file (E_KEY_PROTECTION)', async () => {
    const dir = freshDir();
    ensureDevKeys(dir, ['registration']);
    expect(await codeOf(() => openServiceKeys(dir, 'registration', passphrase()))).toBe('E_KEY_PROTECTION');
    expect(await codeOf(() => ensureKeys(dir, ['registration'], passphrase()))).toBe('E_KEY_PROTECTION');
  });

  it('broker secrets and the gateway token key are sealed too, and open again', async () => {
    const dir = freshDir();
    const p = passphrase();
    const secrets = await openBrokerSecrets(dir, p, true);
    expect(JSON.parse(readFileSync(secretsFile(dir), 'utf8'))).toMatchObject({ format: 'phi-broker-key-file' });
    const again = await openBrokerSecrets(dir, passphrase(), false);
    expect(Buffer.from(again?.pseudonymKey ?? []).equals(Buffer.from(secrets?.pseudonymKey ?? []))).toBe(true);
    expect(await codeOf(() => ensureBrokerSecrets(dir))).toBe('E_KEY_PROTECTION');

    const signer = await TokenSigner.open(dir, keyFileStore(p));
    expect(JSON.parse(readFileSync(tokenKeyFile(dir), 'utf8'))).toMatchObject({ format: 'phi-broker-key-file' });
    const reopened = await TokenSigner.open(dir, keyFileStore(passphrase()));
    expect(reopened.publicJwk.kid).toBe(signer.publicJwk.kid);
    expect(await codeOf(() => TokenSigner.open(dir, keyFileStore(passphrase('not the passphrase!!'))))).toBe(
      'E_KEY_UNLOCK',
    );
  });

  it('a sealed v1 secrets file is upgraded in place sealed; a quarantine key rotation and prune keep it sealed', async () => {
    const dir = freshDir();
    mkdirSync(dir, { recursive: true });
    const q = randomBytes(32).toString('base64url');
    const v1 = JSON.stringify({ v: 1, quarantineKey: q, pseudonymKey: randomBytes(32).toString('base64url') });
    await writeKeyFile(secretsFile(dir), new TextEncoder().encode(v1), passphrase());
    const sealed = (): unknown => JSON.parse(readFileSync(secretsFile(dir), 'utf8'));
    expect(sealed()).toMatchObject({ format: 'phi-broker-key-file' });
    const upgraded = await openBrokerSecrets(dir, passphrase(), true);
    expect(Buffer.from(upgraded.quarantineKey).toString('base64url')).toBe(q);
    expect(sealed()).toMatchObject({ format: 'phi-broker-key-file' });
    expect(await rotateQuarantineKey(dir, passphrase())).toBe(2);
    expect(await pruneQuarantineKeys(dir, passphrase(), 0)).toEqual([1]);
    expect(sealed()).toMatchObject({ format: 'phi-broker-key-file' });
    expect(readFileSync(secretsFile(dir), 'utf8')).not.toContain(q);
    const opened = await openBrokerSecrets(dir, passphrase(), false);
    expect(opened?.quarantineKeys.map((k) => [k.version, k.key !== undefined])).toEqual([
      [2, true],
      [1, false],
    ]);
  });
});

describe('keys protect (protectKeysDir)', () => {
  it("seals every private file, leaves no private byte sequence on disk, zeroes the plain files it replaces and wipes an interrupted run's leftovers", async () => {
    const dir = freshDir();
    ensureDevKeys(dir, ['broker', 'registration', 'notification']);
    ensureBrokerSecrets(dir);
    await TokenSigner.open(dir);
    const needles = privateNeedles(dir);
    expect(needles.length).toBe(2 * (3 * 2 + 2 + 1)); // 3 services × sig+enc, 2 secrets, 1 token key; text + raw
    expect(findNeedles(dir, needles).length).toBeGreaterThan(0); // the scan finds them while plain
    // A second name for the plain inode shows what becomes of its blocks.
    const witness = join(root, `witness-${n}`);
    linkSync(privateKeyFile(dir, 'registration'), witness);
    const before = readFileSync(witness).length;
    // What an interrupted run leaves: a plain copy under the wipe name, wiped by the next run.
    const leftover = join(dir, '.notification.private.jwk.json.plain-wipe');
    writeFileSync(leftover, readFileSync(privateKeyFile(dir, 'notification')), { mode: 0o600 });

    const key = new Uint8Array(randomBytes(32));
    const p = keyProtection('keyfile', { ...cfg, keyProviderFile: writeKey(key) }, {});
    const result = await protectKeysDir(dir, p.provider as NonNullable<KeyProtection['provider']>);
    expect(result.protected.map((f) => f.slice(dir.length + 1))).toEqual([
      'broker.private.jwk.json',
      'broker.secrets.json',
      'gateway.token-signing.jwk.json',
      'notification.private.jwk.json',
      'registration.private.jwk.json',
    ]);
    expect(privateKeyFiles(dir)).toEqual(result.protected);
    expect(findNeedles(dir, needles)).toEqual([]);
    expect(existsSync(leftover)).toBe(false);
    const old = readFileSync(witness);
    expect(old.length).toBe(before);
    expect(old.every((b) => b === 0)).toBe(true);

    expect((await openServiceKeys(dir, 'registration', p)).sign.kid).toBe('registration:sig:1');
    const again = await protectKeysDir(dir, p.provider as NonNullable<KeyProtection['provider']>);
    expect(again.protected).toEqual([]);
    expect(again.already).toHaveLength(5);
    // A run with another key file refuses, before it writes anything.
    const other = keyProtection('keyfile', { ...cfg, keyProviderFile: writeKey(new Uint8Array(randomBytes(32))) }, {});
    expect(await codeOf(() => protectKeysDir(dir, other.provider as NonNullable<KeyProtection['provider']>))).toBe(
      'E_KEY_UNLOCK',
    );
  });
});

function writeKey(key: Uint8Array, mode = 0o600): string {
  const file = join(root, `kek-${++n}`);
  writeFileSync(file, key, { mode });
  chmodSync(file, mode);
  return file;
}

describe('provider set-up', () => {
  it('passphrase: from the variable or its _FILE (one trailing newline dropped), removed from the environment', async () => {
    const dir = freshDir();
    await ensureKeys(dir, ['registration'], passphrase());
    const env: NodeJS.ProcessEnv = { PHI_BROKER_KEY_PASSPHRASE: PASS };
    const fromVar = keyProtection('passphrase', cfg, env);
    expect(env['PHI_BROKER_KEY_PASSPHRASE']).toBeUndefined();
    const file = join(root, `pass-${++n}`);
    writeFileSync(file, `${PASS}\n`, { mode: 0o600 });
    const fromFile = keyProtection('passphrase', cfg, { PHI_BROKER_KEY_PASSPHRASE_FILE: file });
    for (const p of [fromVar, fromFile])
      expect((await openServiceKeys(dir, 'registration', p)).sign.kid).toBe('registration:sig:1');
  });

  it('passphrase: unset, both set, or shorter than 12 characters is E_KEY_PROTECTION', async () => {
    expect(await codeOf(() => keyProtection('passphrase', cfg, {}))).toBe('E_KEY_PROTECTION');
    expect(await codeOf(() => keyProtection('passphrase', cfg, { PHI_BROKER_KEY_PASSPHRASE: 'short' }))).toBe(
      'E_KEY_PROTECTION',
    );
    expect(
      await codeOf(() =>
        keyProtection('passphrase', cfg, {
          PHI_BROKER_KEY_PASSPHRASE: PASS,
          PHI_BROKER_KEY_PASSPHRASE_FILE: '/nonexistent',
        }),
      ),
    ).toBe('E_KEY_PROTECTION');
  });

  it('keyfile: 32 raw bytes or base64url text; missing, wrong size or mode 0644 is E_KEY_PROTECTION', async () => {
    const key = new Uint8Array(randomBytes(32));
    const dir = freshDir();
    await ensureKeys(dir, ['registration'], keyProtection('keyfile', { ...cfg, keyProviderFile: writeKey(key) }, {}));
    const asText = join(root, `kek-text-${++n}`);
    writeFileSync(asText, `${Buffer.from(key).toString('base64url')}\n`, { mode: 0o600 });
    const p = keyProtection('keyfile', { ...cfg, keyProviderFile: asText }, {});
    expect((await openServiceKeys(dir, 'registration', p)).enc.kid).toBe('registration:enc:1');
    expect(await codeOf(() => keyProtection('keyfile', cfg, {}))).toBe('E_KEY_PROTECTION');
    expect(await codeOf(() => keyProtection('keyfile', { ...cfg, keyProviderFile: join(root, 'none') }, {}))).toBe(
      'E_KEY_PROTECTION',
    );
    expect(
      await codeOf(() => keyProtection('keyfile', { ...cfg, keyProviderFile: writeKey(key.subarray(0, 31)) }, {})),
    ).toBe('E_KEY_PROTECTION');
    expect(await codeOf(() => keyProtection('keyfile', { ...cfg, keyProviderFile: writeKey(key, 0o644) }, {}))).toBe(
      'E_KEY_PROTECTION',
    );
  });
});
