// Sealed key files (src/crypto/key-envelope.ts, docs/keys-at-rest.md): a random DEK seals the bytes with
// XChaCha20-Poly1305, the passphrase (Argon2id) or key-file provider wraps the DEK, and the header is the AAD. Each
// test opens what it sealed, or shows which coded error a wrong secret or an altered byte gives.
import { randomBytes } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  KEY_FILE_FORMAT,
  isProtectedKeyFile,
  keyFileProvider,
  openKeyFile,
  passphraseProvider,
  sealKeyFile,
  type KeyProvider,
} from '../../src/crypto/key-envelope.js';
import { PWHASH_LIMITS, deriveKeyArgon2id, pwhashLimitsAllowed } from '../../src/crypto/pwhash.js';
import { initCrypto } from '../../src/crypto/sodium.js';
import { BrokerError } from '../../src/wire/errors.js';

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const PLAIN = enc('{"keys":[{"kty":"OKP","crv":"Ed25519","d":"c2VjcmV0LWtleS1ieXRlcy1mb3ItdGhlLXRlc3Qtb25seQ"}]}');

async function codeOf(work: Promise<unknown>): Promise<string> {
  try {
    await work;
  } catch (e) {
    if (e instanceof BrokerError) return e.code;
    throw e;
  }
  throw new Error('expected a BrokerError');
}

beforeAll(async () => {
  await initCrypto();
});

describe('Argon2id (pwhash.ts)', () => {
  it('is deterministic per passphrase and salt, and differs for another passphrase or salt', () => {
    const salt = new Uint8Array(16).fill(7);
    const a = deriveKeyArgon2id(enc('correct horse battery'), salt, PWHASH_LIMITS.interactive);
    const b = deriveKeyArgon2id(enc('correct horse battery'), salt, PWHASH_LIMITS.interactive);
    const c = deriveKeyArgon2id(enc('correct horse batterz'), salt, PWHASH_LIMITS.interactive);
    const d = deriveKeyArgon2id(enc('correct horse battery'), new Uint8Array(16).fill(8), PWHASH_LIMITS.interactive);
    expect(a).toHaveLength(32);
    expect(Buffer.from(a).equals(Buffer.from(b))).toBe(true);
    expect(Buffer.from(a).equals(Buffer.from(c))).toBe(false);
    expect(Buffer.from(a).equals(Buffer.from(d))).toBe(false);
  });

  it('accepts limits from interactive to sensitive only', () => {
    expect(pwhashLimitsAllowed(PWHASH_LIMITS.interactive)).toBe(true);
    expect(pwhashLimitsAllowed(PWHASH_LIMITS.sensitive)).toBe(true);
    expect(pwhashLimitsAllowed({ opslimit: 1, memlimit: PWHASH_LIMITS.interactive.memlimit })).toBe(false);
    expect(pwhashLimitsAllowed({ opslimit: 2, memlimit: 8192 })).toBe(false);
    expect(pwhashLimitsAllowed({ opslimit: 2, memlimit: 2 * PWHASH_LIMITS.sensitive.memlimit })).toBe(false);
  });
});

describe('sealed key file, passphrase provider', () => {
  const provider = passphraseProvider(enc('a long enough passphrase'), 'interactive');
  let text: string;
  beforeAll(async () => {
    text = await sealKeyFile(PLAIN, provider);
  });

  it('is the documented JSON format and holds no plaintext byte sequence', () => {
    const json = JSON.parse(text) as Record<string, unknown>;
    expect(Object.keys(json).sort()).toEqual(['alg', 'ciphertext', 'format', 'kek', 'v', 'wrappedKey']);
    expect(json).toMatchObject({
      format: KEY_FILE_FORMAT,
      v: 1,
      alg: 'XChaCha20-Poly1305',
      kek: {
        provider: 'passphrase',
        kdf: 'argon2id13',
        opslimit: PWHASH_LIMITS.interactive.opslimit,
        memlimit: PWHASH_LIMITS.interactive.memlimit,
      },
    });
    expect((json['kek'] as { salt: string }).salt).toMatch(/^[A-Za-z0-9_-]{22}$/);
    expect(isProtectedKeyFile(json)).toBe(true);
    expect(text).not.toContain('c2VjcmV0LWtleS1ieXRlcy1mb3ItdGhlLXRlc3Qtb25seQ');
    expect(text).not.toContain('Ed25519');
  });

  it('opens with the same passphrase (another provider instance: a new process)', async () => {
    const again = passphraseProvider(enc('a long enough passphrase'), 'moderate');
    const opened = await openKeyFile('f.json', JSON.parse(text), again);
    expect(new TextDecoder().decode(opened)).toBe(new TextDecoder().decode(PLAIN));
  });

  it('a wrong passphrase is E_KEY_UNLOCK', async () => {
    const wrong = passphraseProvider(enc('a long enough passphrasE'), 'interactive');
    expect(await codeOf(openKeyFile('f.json', JSON.parse(text), wrong))).toBe('E_KEY_UNLOCK');
  });

  it('one altered ciphertext byte is E_KEY_FILE_INVALID; an altered wrapped key is E_KEY_UNLOCK', async () => {
    const flip = (b64: string, at: number): string => {
      const bytes = Buffer.from(b64, 'base64url');
      bytes[at] = (bytes[at] as number) ^ 1;
      return bytes.toString('base64url');
    };
    const json = JSON.parse(text) as { ciphertext: string; wrappedKey: string };
    for (const at of [0, 30, Buffer.from(json.ciphertext, 'base64url').length - 1]) {
      const bad = { ...json, ciphertext: flip(json.ciphertext, at) };
      expect(await codeOf(openKeyFile('f.json', bad, provider))).toBe('E_KEY_FILE_INVALID');
    }
    expect(await codeOf(openKeyFile('f.json', { ...json, wrappedKey: flip(json.wrappedKey, 30) }, provider))).toBe(
      'E_KEY_UNLOCK',
    );
  });

  it('an altered header member fails: salt or limits (E_KEY_UNLOCK, E_KEY_FILE_INVALID), alg, unknown member', async () => {
    const json = JSON.parse(text) as { kek: Record<string, unknown> };
    const salt = Buffer.from(json.kek['salt'] as string, 'base64url');
    salt[0] = (salt[0] as number) ^ 1;
    const otherSalt = { ...json, kek: { ...json.kek, salt: salt.toString('base64url') } };
    expect(await codeOf(openKeyFile('f.json', otherSalt, provider))).toBe('E_KEY_UNLOCK');
    const weaker = { ...json, kek: { ...json.kek, opslimit: 1 } };
    expect(await codeOf(openKeyFile('f.json', weaker, provider))).toBe('E_KEY_FILE_INVALID');
    expect(await codeOf(openKeyFile('f.json', { ...json, alg: 'A256GCM' }, provider))).toBe('E_KEY_FILE_INVALID');
    expect(await codeOf(openKeyFile('f.json', { ...json, extra: 1 }, provider))).toBe('E_KEY_FILE_INVALID');
    expect(await codeOf(openKeyFile('f.json', { ...json, v: 2 }, provider))).toBe('E_KEY_FILE_INVALID');
  });

  it('one salt and one derivation serve every file a provider seals', async () => {
    const second = JSON.parse(await sealKeyFile(PLAIN, provider)) as { kek: { salt: string }; wrappedKey: string };
    const first = JSON.parse(text) as { kek: { salt: string }; wrappedKey: string };
    expect(second.kek.salt).toBe(first.kek.salt);
    expect(second.wrappedKey).not.toBe(first.wrappedKey); // a fresh DEK and nonce per file
  });
});

describe('sealed key file, keyfile provider', () => {
  const key = new Uint8Array(randomBytes(32));
  const provider = keyFileProvider(key);

  it('opens with the same key; another key or the passphrase provider is refused with a code', async () => {
    const json = JSON.parse(await sealKeyFile(PLAIN, provider)) as { kek: Record<string, unknown> };
    expect(json.kek['provider']).toBe('keyfile');
    expect(json.kek['fingerprint']).toMatch(/^[A-Za-z0-9_-]{22}$/);
    expect(new TextDecoder().decode(await openKeyFile('f.json', json, keyFileProvider(key.slice())))).toBe(
      new TextDecoder().decode(PLAIN),
    );
    expect(await codeOf(openKeyFile('f.json', json, keyFileProvider(new Uint8Array(randomBytes(32)))))).toBe(
      'E_KEY_UNLOCK',
    );
    const pass: KeyProvider = passphraseProvider(enc('a long enough passphrase'), 'interactive');
    expect(await codeOf(openKeyFile('f.json', json, pass))).toBe('E_KEY_PROTECTION');
  });

  it('a forged fingerprint does not help: the wrapped key still does not open', async () => {
    const json = JSON.parse(await sealKeyFile(PLAIN, provider)) as { kek: Record<string, unknown> };
    const other = keyFileProvider(new Uint8Array(randomBytes(32)));
    const theirs = JSON.parse(await sealKeyFile(PLAIN, other)) as { kek: Record<string, unknown> };
    const forged = { ...json, kek: theirs.kek };
    expect(await codeOf(openKeyFile('f.json', forged, other))).toBe('E_KEY_UNLOCK');
  });
});
