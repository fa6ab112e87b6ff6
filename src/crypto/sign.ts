// Ed25519 detached signatures (RFC 8032 section 5.1, PureEdDSA): over the exact bytes sent, never a re-serialisation.
// libsodium's crypto_sign_detached through the backend in use (src/crypto/backend.ts); every verification applies
// the one strict rule of verify-strict.ts. Ed25519 is deterministic, so both backends give the same signature bytes.
import { cryptoBackend, getSodium } from './sodium.js';
import { verifyEd25519Strict } from './verify-strict.js';

export const SIGNATURE_BYTES = 64;
export const SIGN_PUBLIC_BYTES = 32;
/** libsodium form: 32-byte seed || 32-byte public key. */
export const SIGN_SECRET_BYTES = 64;

/** Ed25519 signature (64 bytes) of `bytes`. */
export function signDetached(bytes: Uint8Array, secretKey: Uint8Array): Uint8Array {
  if (secretKey.length !== SIGN_SECRET_BYTES)
    throw new TypeError(`Ed25519 secret key must be ${SIGN_SECRET_BYTES} bytes (seed || public key)`);
  return cryptoBackend().sign(bytes, secretKey);
}

/** True when `sig` is a valid Ed25519 signature of `bytes` under `publicKey`. Never throws for bad input bytes. */
export function verifyDetached(bytes: Uint8Array, sig: Uint8Array, publicKey: Uint8Array): boolean {
  if (publicKey.length !== SIGN_PUBLIC_BYTES)
    throw new TypeError(`Ed25519 public key must be ${SIGN_PUBLIC_BYTES} bytes`);
  return verifyEd25519Strict(bytes, sig, publicKey);
}

/** libsodium-wrappers (WebAssembly) alone, same contract, whichever backend is in use (vector tests). */
export const sodiumEd25519 = {
  sign(bytes: Uint8Array, secretKey: Uint8Array): Uint8Array {
    return getSodium().crypto_sign_detached(bytes, secretKey);
  },
  verify(bytes: Uint8Array, sig: Uint8Array, publicKey: Uint8Array): boolean {
    if (sig.length !== SIGNATURE_BYTES || publicKey.length !== SIGN_PUBLIC_BYTES) return false;
    return getSodium().crypto_sign_verify_detached(sig, bytes, publicKey);
  },
};
