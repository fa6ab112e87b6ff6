// The one Ed25519 verification rule every phi-broker verifier applies (docs/wire-format.md "Signature
// strictness"): libsodium's crypto_sign_verify_detached — A canonical and not of small order, R not of small order,
// S < L, the cofactorless equation over R's exact bytes — through the backend in use (native or WebAssembly libsodium,
// the same rule in both: test/vectors checks the speccheck cases under each).
import { cryptoBackend } from './sodium.js';

const SIGNATURE_BYTES = 64;
const PUBLIC_BYTES = 32;

/** Ed25519 (RFC 8032 PureEdDSA) verification under the strict rule. Never throws for bad input bytes. */
export function verifyEd25519Strict(bytes: Uint8Array, sig: Uint8Array, publicKey: Uint8Array): boolean {
  if (sig.length !== SIGNATURE_BYTES || publicKey.length !== PUBLIC_BYTES) return false;
  return cryptoBackend().verify(sig, bytes, publicKey);
}
