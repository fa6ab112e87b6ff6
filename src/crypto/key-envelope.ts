// Key files protected at rest (docs/keys-at-rest.md): envelope encryption. A fresh random data-encryption key (DEK)
// seals the file's bytes with XChaCha20-Poly1305 (aead.ts); a KeyProvider wraps the DEK under its key-encryption key
// (KEK). The JSON header (format version, AEAD, the provider's KEK descriptor, the wrapped DEK) is the AAD of the
// ciphertext, so no header member can be altered without the file failing to open. Pure: the providers' secrets
// (passphrase, key file bytes) are read by src/runtime/key-protection.ts.
import { createHash, timingSafeEqual } from 'node:crypto';
import { BrokerError } from '../wire/errors.js';
import { openBlob, sealBlob, KEY_BYTES, NONCE_BYTES, TAG_BYTES } from './aead.js';
import { fromBase64url, toBase64url } from './base64url.js';
import {
  PWHASH_ALG,
  PWHASH_LIMITS,
  PWHASH_SALT_BYTES,
  deriveKeyArgon2id,
  pwhashLimitsAllowed,
  type PwhashStrength,
} from './pwhash.js';
import { randomBytes } from './random.js';

/** The format marker and version of a protected key file. */
export const KEY_FILE_FORMAT = 'phi-broker-key-file';
export const KEY_FILE_VERSION = 1;
export const KEY_FILE_AEAD = 'XChaCha20-Poly1305';

/** How a provider wrapped the DEK: its name plus what it needs to unwrap it again (never a secret). */
export type KekDescriptor = { readonly provider: string } & Readonly<Record<string, string | number>>;

/**
 * Wraps and unwraps data-encryption keys. The built-in providers are `passphrase` and `keyfile`; a KMS or HSM
 * provider implements the same two calls (docs/keys-at-rest.md has an example). unwrapKey throws BrokerError
 * E_KEY_UNLOCK when the wrapped key does not open, E_KEY_PROTECTION when the descriptor is another provider's.
 */
export interface KeyProvider {
  readonly name: string;
  wrapKey(dek: Uint8Array): Promise<{ kek: KekDescriptor; wrappedKey: Uint8Array }>;
  unwrapKey(kek: KekDescriptor, wrappedKey: Uint8Array): Promise<Uint8Array>;
}

export interface ProtectedKeyFile {
  readonly format: typeof KEY_FILE_FORMAT;
  readonly v: typeof KEY_FILE_VERSION;
  readonly alg: typeof KEY_FILE_AEAD;
  readonly kek: KekDescriptor;
  /** base64url: the provider's wrapping of the DEK. */
  readonly wrappedKey: string;
  /** base64url: nonce || ciphertext || tag of the file's bytes under the DEK. */
  readonly ciphertext: string;
}

/** Whether parsed JSON claims to be a protected key file (then it must parse as one, or it is E_KEY_FILE_INVALID). */
export function isProtectedKeyFile(json: unknown): boolean {
  return typeof json === 'object' && json !== null && (json as { format?: unknown }).format === KEY_FILE_FORMAT;
}

/** A stable text of a flat object, keys sorted: the AAD must not depend on member order in the file. */
function stableText(value: Readonly<Record<string, string | number>>): string {
  return JSON.stringify(Object.fromEntries(Object.entries(value).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))));
}

function headerAad(kek: KekDescriptor, wrappedKey: string): Uint8Array {
  return new TextEncoder().encode(
    `${KEY_FILE_FORMAT}|v${KEY_FILE_VERSION}|${KEY_FILE_AEAD}|${stableText(kek)}|${wrappedKey}`,
  );
}

/** The AAD a built-in provider binds its wrapping to: the KEK descriptor. */
function kekAad(kek: KekDescriptor): Uint8Array {
  return new TextEncoder().encode(`${KEY_FILE_FORMAT}|kek|${stableText(kek)}`);
}

/** Seals `plaintext` under a fresh DEK wrapped by `provider`; returns the file's JSON text. */
export async function sealKeyFile(plaintext: Uint8Array, provider: KeyProvider): Promise<string> {
  const dek = randomBytes(KEY_BYTES).slice();
  try {
    const { kek, wrappedKey } = await provider.wrapKey(dek);
    const wrapped = toBase64url(wrappedKey);
    const file: ProtectedKeyFile = {
      format: KEY_FILE_FORMAT,
      v: KEY_FILE_VERSION,
      alg: KEY_FILE_AEAD,
      kek,
      wrappedKey: wrapped,
      ciphertext: toBase64url(sealBlob(dek, plaintext, headerAad(kek, wrapped))),
    };
    return `${JSON.stringify(file, null, 2)}\n`;
  } finally {
    dek.fill(0);
  }
}

function invalid(file: string, path: string, expected: string): BrokerError {
  return new BrokerError('E_KEY_FILE_INVALID', `${file}: ${path}: expected ${expected}`, { path: file });
}

function parseHeader(file: string, json: unknown): ProtectedKeyFile {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw invalid(file, '$', 'a JSON object');
  const o = json as Record<string, unknown>;
  const allowed = new Set(['format', 'v', 'alg', 'kek', 'wrappedKey', 'ciphertext']);
  for (const k of Object.keys(o)) if (!allowed.has(k)) throw invalid(file, k, 'no such member');
  if (o['format'] !== KEY_FILE_FORMAT) throw invalid(file, 'format', `"${KEY_FILE_FORMAT}"`);
  if (o['v'] !== KEY_FILE_VERSION) throw invalid(file, 'v', `${KEY_FILE_VERSION}`);
  if (o['alg'] !== KEY_FILE_AEAD) throw invalid(file, 'alg', `"${KEY_FILE_AEAD}"`);
  const kek = o['kek'];
  if (
    typeof kek !== 'object' ||
    kek === null ||
    Array.isArray(kek) ||
    typeof (kek as { provider?: unknown }).provider !== 'string'
  )
    throw invalid(file, 'kek', 'an object with a string provider');
  for (const [k, v] of Object.entries(kek))
    if (typeof v !== 'string' && typeof v !== 'number') throw invalid(file, `kek.${k}`, 'a string or number');
  for (const member of ['wrappedKey', 'ciphertext'] as const) {
    const v = o[member];
    if (typeof v !== 'string' || fromBase64url(v) === undefined) throw invalid(file, member, 'base64url');
  }
  return o as unknown as ProtectedKeyFile;
}

/**
 * Opens a protected key file's parsed JSON with `provider`. E_KEY_FILE_INVALID when the header is not the format or
 * the ciphertext does not authenticate under the unwrapped DEK (altered); the provider's E_KEY_UNLOCK or
 * E_KEY_PROTECTION when it cannot unwrap the DEK.
 */
export async function openKeyFile(file: string, json: unknown, provider: KeyProvider): Promise<Uint8Array> {
  const header = parseHeader(file, json);
  const dek = await provider.unwrapKey(header.kek, fromBase64url(header.wrappedKey) as Uint8Array);
  try {
    if (dek.length !== KEY_BYTES) throw invalid(file, 'wrappedKey', `a ${KEY_BYTES}-byte data key`);
    try {
      return openBlob(dek, fromBase64url(header.ciphertext) as Uint8Array, headerAad(header.kek, header.wrappedKey));
    } catch {
      throw new BrokerError(
        'E_KEY_FILE_INVALID',
        `${file}: ciphertext: does not authenticate under its data key (the file was altered)`,
        { path: file },
      );
    }
  } finally {
    dek.fill(0);
  }
}

function otherProvider(name: string, kek: KekDescriptor): BrokerError {
  return new BrokerError(
    'E_KEY_PROTECTION',
    `the key file is protected by the ${JSON.stringify(kek.provider)} key provider, not ${JSON.stringify(name)}: start with --key-provider ${kek.provider}`,
  );
}

function unlockFailed(what: string): BrokerError {
  return new BrokerError('E_KEY_UNLOCK', `the data key does not unwrap: ${what}`);
}

/** Wraps with a 32-byte KEK and binds the descriptor; null when it does not open. */
function wrapUnder(kekKey: Uint8Array, dek: Uint8Array, kek: KekDescriptor): Uint8Array {
  return sealBlob(kekKey, dek, kekAad(kek));
}

function unwrapUnder(kekKey: Uint8Array, wrapped: Uint8Array, kek: KekDescriptor): Uint8Array | null {
  if (wrapped.length !== NONCE_BYTES + KEY_BYTES + TAG_BYTES) return null;
  try {
    return openBlob(kekKey, wrapped, kekAad(kek));
  } catch {
    return null;
  }
}

/**
 * The `passphrase` provider: KEK = Argon2id(passphrase, salt) with the salt and limits in the descriptor. One salt
 * per provider instance for the files it seals, and each derived KEK is cached by salt and limits, so a start pays one
 * derivation whatever the number of files.
 */
export function passphraseProvider(passphrase: Uint8Array, strength: PwhashStrength = 'moderate'): KeyProvider {
  const secret = passphrase.slice();
  const limits = PWHASH_LIMITS[strength];
  const cache = new Map<string, Uint8Array>();
  let own: KekDescriptor | undefined;
  const kekFor = (salt: Uint8Array, opslimit: number, memlimit: number): Uint8Array => {
    const id = `${toBase64url(salt)}|${opslimit}|${memlimit}`;
    let key = cache.get(id);
    if (key === undefined) {
      key = deriveKeyArgon2id(secret, salt, { opslimit, memlimit });
      cache.set(id, key);
    }
    return key;
  };
  return {
    name: 'passphrase',
    wrapKey(dek) {
      own ??= {
        provider: 'passphrase',
        kdf: PWHASH_ALG,
        opslimit: limits.opslimit,
        memlimit: limits.memlimit,
        salt: toBase64url(randomBytes(PWHASH_SALT_BYTES)),
      };
      const kek = own;
      const key = kekFor(fromBase64url(kek['salt'] as string) as Uint8Array, limits.opslimit, limits.memlimit);
      return Promise.resolve({ kek, wrappedKey: wrapUnder(key, dek, kek) });
    },
    unwrapKey(kek, wrapped) {
      if (kek.provider !== 'passphrase') return Promise.reject(otherProvider('passphrase', kek));
      const salt = typeof kek['salt'] === 'string' ? fromBase64url(kek['salt']) : undefined;
      const opslimit = kek['opslimit'];
      const memlimit = kek['memlimit'];
      if (
        kek['kdf'] !== PWHASH_ALG ||
        salt === undefined ||
        salt.length !== PWHASH_SALT_BYTES ||
        typeof opslimit !== 'number' ||
        typeof memlimit !== 'number' ||
        !pwhashLimitsAllowed({ opslimit, memlimit })
      )
        return Promise.reject(
          new BrokerError(
            'E_KEY_FILE_INVALID',
            `kek: expected kdf "${PWHASH_ALG}", a ${PWHASH_SALT_BYTES}-byte salt and limits between interactive and sensitive`,
          ),
        );
      const dek = unwrapUnder(kekFor(salt, opslimit, memlimit), wrapped, kek);
      if (dek === null) return Promise.reject(unlockFailed('wrong passphrase, or the wrapped key was altered'));
      return Promise.resolve(dek);
    },
  };
}

/** A key's public fingerprint: lets an error say which key file sealed a file, without revealing the key. */
export function keyFingerprint(key: Uint8Array): string {
  return createHash('sha256').update('phi-broker kek fingerprint|').update(key).digest('base64url').slice(0, 22);
}

/** The `keyfile` provider: KEK = the 32 bytes of a key file; the descriptor names its fingerprint. */
export function keyFileProvider(key: Uint8Array): KeyProvider {
  if (key.length !== KEY_BYTES) throw new TypeError(`a key file holds ${KEY_BYTES} bytes`);
  const secret = key.slice();
  const fingerprint = keyFingerprint(secret);
  const own: KekDescriptor = { provider: 'keyfile', fingerprint };
  return {
    name: 'keyfile',
    wrapKey(dek) {
      return Promise.resolve({ kek: own, wrappedKey: wrapUnder(secret, dek, own) });
    },
    unwrapKey(kek, wrapped) {
      if (kek.provider !== 'keyfile') return Promise.reject(otherProvider('keyfile', kek));
      const theirs = typeof kek['fingerprint'] === 'string' ? Buffer.from(kek['fingerprint']) : Buffer.alloc(0);
      const ours = Buffer.from(fingerprint);
      if (theirs.length !== ours.length || !timingSafeEqual(theirs, ours))
        return Promise.reject(unlockFailed('the file was sealed with another key file (its fingerprint differs)'));
      const dek = unwrapUnder(secret, wrapped, kek);
      if (dek === null) return Promise.reject(unlockFailed('the wrapped key was altered'));
      return Promise.resolve(dek);
    },
  };
}

/** Private key files as the code that owns one (the gateway's token key) reads and creates it, protected or plain. */
export interface KeyFileStore {
  /** The file's bytes, opened; undefined when it does not exist. */
  read(file: string): Promise<Uint8Array | undefined>;
  /** Creates the file unless one exists (then false): two racing creators keep one. */
  create(file: string, bytes: Uint8Array): Promise<boolean>;
}
