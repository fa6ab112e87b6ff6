// Password hashing for keys at rest: Argon2id (RFC 9106) as libsodium's crypto_pwhash with
// crypto_pwhash_ALG_ARGON2ID13, through sodium-native (libsodium-wrappers' WebAssembly build leaves pwhash out).
// Derives a 32-byte key-encryption key from a passphrase and a 16-byte salt; the limits travel in the file header.
import { createRequire } from 'node:module';

interface SodiumPwhash {
  crypto_pwhash(out: Buffer, passwd: Buffer, salt: Buffer, opslimit: number, memlimit: number, alg: number): void;
  readonly crypto_pwhash_ALG_ARGON2ID13: number;
  readonly crypto_pwhash_SALTBYTES: number;
  readonly crypto_pwhash_OPSLIMIT_INTERACTIVE: number;
  readonly crypto_pwhash_MEMLIMIT_INTERACTIVE: number;
  readonly crypto_pwhash_OPSLIMIT_MODERATE: number;
  readonly crypto_pwhash_MEMLIMIT_MODERATE: number;
  readonly crypto_pwhash_OPSLIMIT_SENSITIVE: number;
  readonly crypto_pwhash_MEMLIMIT_SENSITIVE: number;
}

const native = createRequire(import.meta.url)('sodium-native') as SodiumPwhash;

export const PWHASH_ALG = 'argon2id13';
export const PWHASH_SALT_BYTES: number = native.crypto_pwhash_SALTBYTES;
export const PWHASH_KEY_BYTES = 32;

export interface PwhashLimits {
  readonly opslimit: number;
  readonly memlimit: number;
}

/** libsodium's named cost levels (interactive 64 MiB, moderate 256 MiB, sensitive 1 GiB of memory). */
export const PWHASH_LIMITS = Object.freeze({
  interactive: Object.freeze({
    opslimit: native.crypto_pwhash_OPSLIMIT_INTERACTIVE,
    memlimit: native.crypto_pwhash_MEMLIMIT_INTERACTIVE,
  }),
  moderate: Object.freeze({
    opslimit: native.crypto_pwhash_OPSLIMIT_MODERATE,
    memlimit: native.crypto_pwhash_MEMLIMIT_MODERATE,
  }),
  sensitive: Object.freeze({
    opslimit: native.crypto_pwhash_OPSLIMIT_SENSITIVE,
    memlimit: native.crypto_pwhash_MEMLIMIT_SENSITIVE,
  }),
}) satisfies Record<string, PwhashLimits>;

export type PwhashStrength = keyof typeof PWHASH_LIMITS;

/** True when `limits` lie between interactive and sensitive: a header may not weaken or inflate the derivation. */
export function pwhashLimitsAllowed(limits: PwhashLimits): boolean {
  const lo = PWHASH_LIMITS.interactive;
  const hi = PWHASH_LIMITS.sensitive;
  return (
    Number.isSafeInteger(limits.opslimit) &&
    Number.isSafeInteger(limits.memlimit) &&
    limits.opslimit >= lo.opslimit &&
    limits.opslimit <= hi.opslimit &&
    limits.memlimit >= lo.memlimit &&
    limits.memlimit <= hi.memlimit
  );
}

/** Argon2id(passphrase, salt) → 32 bytes. Blocks for the derivation (once per salt per process). */
export function deriveKeyArgon2id(passphrase: Uint8Array, salt: Uint8Array, limits: PwhashLimits): Uint8Array {
  if (salt.length !== PWHASH_SALT_BYTES) throw new TypeError(`pwhash salt must be ${PWHASH_SALT_BYTES} bytes`);
  if (!pwhashLimitsAllowed(limits)) throw new TypeError('pwhash limits outside interactive..sensitive');
  const out = Buffer.alloc(PWHASH_KEY_BYTES);
  const pw = Buffer.from(passphrase);
  try {
    native.crypto_pwhash(
      out,
      pw,
      Buffer.from(salt),
      limits.opslimit,
      limits.memlimit,
      native.crypto_pwhash_ALG_ARGON2ID13,
    );
    return new Uint8Array(out);
  } finally {
    pw.fill(0);
    out.fill(0);
  }
}
