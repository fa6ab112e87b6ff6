// Ed25519 detached signatures (RFC 8032 section 5.1, PureEdDSA): over the exact bytes sent, never a re-serialisation.
// Two interchangeable backends give bit-identical signatures (Ed25519 is deterministic): node:crypto (OpenSSL,
// native, ~30 % faster, used by default) and libsodium's crypto_sign_detached (the portable reference; test/vectors
// checks both against the same vectors). Every verification applies one rule, verify-strict.ts.
import { createPrivateKey, sign as nodeSign, type KeyObject } from 'node:crypto';
import { getSodium } from './sodium.js';
import { verifyEd25519Strict } from './verify-strict.js';

export const SIGNATURE_BYTES = 64;
export const SIGN_PUBLIC_BYTES = 32;
/** libsodium form: 32-byte seed || 32-byte public key. */
export const SIGN_SECRET_BYTES = 64;

// DER prefix of PKCS#8 for Ed25519 (RFC 8410 section 7): the raw 32-byte seed follows.
const PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');

const privateCache = new WeakMap<Uint8Array, KeyObject>();

function privateKeyObject(secretKey: Uint8Array): KeyObject {
  let key = privateCache.get(secretKey);
  if (key === undefined) {
    if (secretKey.length !== SIGN_SECRET_BYTES)
      throw new TypeError(`Ed25519 secret key must be ${SIGN_SECRET_BYTES} bytes (seed || public key)`);
    key = createPrivateKey({
      key: Buffer.concat([PKCS8_PREFIX, secretKey.subarray(0, 32)]),
      format: 'der',
      type: 'pkcs8',
    });
    privateCache.set(secretKey, key);
  }
  return key;
}

/** Ed25519 signature (64 bytes) of `bytes`. Note: the secret key array is cached by identity; do not mutate it. */
export function signDetached(bytes: Uint8Array, secretKey: Uint8Array): Uint8Array {
  const sig = nodeSign(null, bytes, privateKeyObject(secretKey));
  return new Uint8Array(sig.buffer, sig.byteOffset, sig.byteLength);
}

/**
 * True when `sig` is a valid Ed25519 signature of `bytes` under `publicKey` by the strict rule (verify-strict.ts).
 * Throws a TypeError for a public key that is not 32 bytes (a programming mistake); never for bad signature bytes.
 */
export function verifyDetached(bytes: Uint8Array, sig: Uint8Array, publicKey: Uint8Array): boolean {
  if (publicKey.length !== SIGN_PUBLIC_BYTES)
    throw new TypeError(`Ed25519 public key must be ${SIGN_PUBLIC_BYTES} bytes`);
  return verifyEd25519Strict(bytes, sig, publicKey);
}

/** The libsodium backend (used by the vector tests to keep the two honest; its verify is the strict rule's reference). */
export const sodiumEd25519 = {
  sign(bytes: Uint8Array, secretKey: Uint8Array): Uint8Array {
    return getSodium().crypto_sign_detached(bytes, secretKey);
  },
  verify(bytes: Uint8Array, sig: Uint8Array, publicKey: Uint8Array): boolean {
    if (sig.length !== SIGNATURE_BYTES || publicKey.length !== SIGN_PUBLIC_BYTES) return false;
    return getSodium().crypto_sign_verify_detached(sig, bytes, publicKey);
  },
};
