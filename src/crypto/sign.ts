// Ed25519 detached signatures (RFC 8032 section 5.1, PureEdDSA): over the exact bytes sent, never a re-serialisation.
// Two interchangeable backends give bit-identical signatures (Ed25519 is deterministic): node:crypto (OpenSSL,
// native, ~30 % faster, used by default) and libsodium's crypto_sign_detached / crypto_sign_verify_detached (the
// portable reference; test/vectors checks both against the same vectors). Key objects are cached per key array.
import { createPrivateKey, createPublicKey, sign as nodeSign, verify as nodeVerify, type KeyObject } from 'node:crypto';
import { getSodium } from './sodium.js';

export const SIGNATURE_BYTES = 64;
export const SIGN_PUBLIC_BYTES = 32;
/** libsodium form: 32-byte seed || 32-byte public key. */
export const SIGN_SECRET_BYTES = 64;

// DER prefixes of PKCS#8 / SPKI for Ed25519 (RFC 8410 section 7, 10.3): the raw 32-byte key follows.
const PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');
const SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

const privateCache = new WeakMap<Uint8Array, KeyObject>();
const publicCache = new WeakMap<Uint8Array, KeyObject>();

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

function publicKeyObject(publicKey: Uint8Array): KeyObject | undefined {
  let key = publicCache.get(publicKey);
  if (key === undefined) {
    if (publicKey.length !== SIGN_PUBLIC_BYTES)
      throw new TypeError(`Ed25519 public key must be ${SIGN_PUBLIC_BYTES} bytes`);
    try {
      key = createPublicKey({ key: Buffer.concat([SPKI_PREFIX, publicKey]), format: 'der', type: 'spki' });
    } catch {
      return undefined; // not a point on the curve: nothing verifies under it
    }
    publicCache.set(publicKey, key);
  }
  return key;
}

/** Ed25519 signature (64 bytes) of `bytes`. Note: the secret key array is cached by identity; do not mutate it. */
export function signDetached(bytes: Uint8Array, secretKey: Uint8Array): Uint8Array {
  const sig = nodeSign(null, bytes, privateKeyObject(secretKey));
  return new Uint8Array(sig.buffer, sig.byteOffset, sig.byteLength);
}

/** True when `sig` is a valid Ed25519 signature of `bytes` under `publicKey`. Never throws for bad input bytes. */
export function verifyDetached(bytes: Uint8Array, sig: Uint8Array, publicKey: Uint8Array): boolean {
  if (sig.length !== SIGNATURE_BYTES) return false;
  const key = publicKeyObject(publicKey);
  return key !== undefined && nodeVerify(null, bytes, key, sig);
}

/** The libsodium backend, same contract (used by the vector tests to keep the two honest). */
export const sodiumEd25519 = {
  sign(bytes: Uint8Array, secretKey: Uint8Array): Uint8Array {
    return getSodium().crypto_sign_detached(bytes, secretKey);
  },
  verify(bytes: Uint8Array, sig: Uint8Array, publicKey: Uint8Array): boolean {
    if (sig.length !== SIGNATURE_BYTES || publicKey.length !== SIGN_PUBLIC_BYTES) return false;
    return getSodium().crypto_sign_verify_detached(sig, bytes, publicKey);
  },
};
