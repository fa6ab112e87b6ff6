// Service key pairs and key ids. Every service has an Ed25519 signing key (RFC 8032) and an X25519 encryption key
// (RFC 7748), each versioned: `<service>:sig:<n>` and `<service>:enc:<n>` (n = 1, 2, …). Secret keys never reach a
// log: key objects carry toJSON and util.inspect hooks that show only the kid and the public key.
import { inspect } from 'node:util';
import { SERVICE_ID_PATTERN } from '../wire/ids.js';
import { toBase64url } from './base64url.js';
import { randomBytes, type RandomSource } from './random.js';
import { cryptoBackend } from './sodium.js';

export type KeyUse = 'sig' | 'enc';

export interface SigningKeyPair {
  readonly kid: string;
  /** Ed25519 public key, 32 bytes. */
  readonly publicKey: Uint8Array;
  /** libsodium form, 64 bytes: seed || public key. */
  readonly secretKey: Uint8Array;
}

export interface EncryptionKeyPair {
  readonly kid: string;
  /** X25519 public key, 32 bytes. */
  readonly publicKey: Uint8Array;
  /** X25519 private scalar, 32 bytes. */
  readonly secretKey: Uint8Array;
}

/** One version of a service's keys: kids `<service>:sig:<n>` and `<service>:enc:<n>` with the same n. */
export interface ServiceKeys {
  readonly service: string;
  readonly sign: SigningKeyPair;
  readonly enc: EncryptionKeyPair;
}

export interface PublicKeyRecord {
  readonly kid: string;
  readonly service: string;
  readonly use: KeyUse;
  readonly publicKey: Uint8Array;
}

const KID_PATTERN = /^([a-z][a-z0-9-]{0,62}):(sig|enc):([1-9][0-9]{0,8})$/;

export interface ParsedKid {
  readonly service: string;
  readonly use: KeyUse;
  readonly version: number;
}

/** Splits a kid; undefined when it is not `<service>:<sig|enc>:<n>`. */
export function parseKid(kid: string): ParsedKid | undefined {
  const m = KID_PATTERN.exec(kid);
  if (m === null) return undefined;
  return { service: m[1] as string, use: m[2] as KeyUse, version: Number(m[3]) };
}

export function makeKid(service: string, use: KeyUse, version: number): string {
  if (!SERVICE_ID_PATTERN.test(service)) throw new TypeError('service id must match SERVICE_ID_PATTERN');
  if (!Number.isSafeInteger(version) || version < 1 || version > 999_999_999)
    throw new TypeError('key version must be an integer from 1');
  return `${service}:${use}:${version}`;
}

/** Attaches toJSON and inspect hooks that hide the secret key (non-enumerable, so spreading a key drops them). */
function redacted<T extends { kid: string; publicKey: Uint8Array; secretKey: Uint8Array }>(pair: T): T {
  const shown = (): { kid: string; publicKey: string; secretKey: '[redacted]' } => ({
    kid: pair.kid,
    publicKey: toBase64url(pair.publicKey),
    secretKey: '[redacted]',
  });
  Object.defineProperty(pair, 'toJSON', { value: shown, enumerable: false });
  Object.defineProperty(pair, inspect.custom, { value: () => `KeyPair ${JSON.stringify(shown())}`, enumerable: false });
  return Object.freeze(pair);
}

/** Ed25519 key pair from a 32-byte seed (RFC 8032 section 5.1.5). */
export function signingKeyFromSeed(kid: string, seed: Uint8Array): SigningKeyPair {
  if (seed.length !== 32) throw new TypeError('Ed25519 seed must be 32 bytes');
  const kp = cryptoBackend().signSeedKeypair(seed);
  return redacted({ kid, publicKey: kp.publicKey, secretKey: kp.privateKey });
}

/** X25519 key pair from a 32-byte private scalar (RFC 7748 section 6.1; clamping happens inside scalarmult). */
export function encryptionKeyFromSecret(kid: string, secret: Uint8Array): EncryptionKeyPair {
  if (secret.length !== 32) throw new TypeError('X25519 private key must be 32 bytes');
  const secretKey = Uint8Array.from(secret);
  return redacted({ kid, publicKey: cryptoBackend().scalarmultBase(secretKey), secretKey });
}

/** Fresh keys for one service version (random from node:crypto unless injected). */
export function generateServiceKeys(serviceId: string, version = 1, random: RandomSource = randomBytes): ServiceKeys {
  const sign = signingKeyFromSeed(makeKid(serviceId, 'sig', version), Uint8Array.from(random(32)));
  const enc = encryptionKeyFromSecret(makeKid(serviceId, 'enc', version), random(32));
  return Object.freeze({ service: serviceId, sign, enc });
}

/** The version n of a ServiceKeys (from its signing kid). */
export function keysVersion(keys: ServiceKeys): number {
  const parsed = parseKid(keys.sign.kid);
  if (parsed === undefined) throw new TypeError('ServiceKeys with a malformed signing kid');
  return parsed.version;
}

/** The public half of a service's keys, as records for a keyring or a JWKS. */
export function publicRecords(keys: ServiceKeys): PublicKeyRecord[] {
  return [
    Object.freeze({ kid: keys.sign.kid, service: keys.service, use: 'sig' as const, publicKey: keys.sign.publicKey }),
    Object.freeze({ kid: keys.enc.kid, service: keys.service, use: 'enc' as const, publicKey: keys.enc.publicKey }),
  ];
}
