// The one Ed25519 verification rule every phi-broker verifier applies (docs/wire-format.md "Signature
// strictness"): libsodium's crypto_sign_verify_detached rule. Encoding checks here, then RFC 8032's cofactorless
// equation [S]B = R + [k]A by OpenSSL, which also requires S < L and R's bytes to equal the computed R's encoding.
import { createPublicKey, verify as nodeVerify, type KeyObject } from 'node:crypto';

const SIGNATURE_BYTES = 64;
const PUBLIC_BYTES = 32;
// DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410 section 4): the raw 32-byte key follows.
const SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

// Encodings of the points of order 1, 2, 4 and 8 (as y, ignoring the sign bit), and of y = p and y = p + 1: the
// list libsodium's ge25519_has_small_order compares against.
const SMALL_ORDER = [
  '0000000000000000000000000000000000000000000000000000000000000000',
  '0100000000000000000000000000000000000000000000000000000000000000',
  '26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05',
  'c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a',
  'ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
  'edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
  'eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
].map((h) => Buffer.from(h, 'hex'));

/** True when the 32-byte point encoding, sign bit cleared, is one of SMALL_ORDER. */
function hasSmallOrder(p: Uint8Array): boolean {
  return SMALL_ORDER.some((s) => {
    for (let i = 0; i < 31; i++) if (p[i] !== s[i]) return false;
    return ((p[31] as number) & 0x7f) === s[31];
  });
}

/** True when the encoded y (sign bit cleared) is below p = 2^255 - 19 (libsodium ge25519_is_canonical). */
function isCanonicalPoint(p: Uint8Array): boolean {
  if (((p[31] as number) & 0x7f) !== 0x7f) return true;
  for (let i = 30; i > 0; i--) if (p[i] !== 0xff) return true;
  return (p[0] as number) < 0xed;
}

const publicCache = new WeakMap<Uint8Array, KeyObject | null>();

function publicKeyObject(publicKey: Uint8Array): KeyObject | null {
  let key = publicCache.get(publicKey);
  if (key === undefined) {
    try {
      key = createPublicKey({ key: Buffer.concat([SPKI_PREFIX, publicKey]), format: 'der', type: 'spki' });
    } catch {
      key = null; // not a point on the curve: nothing verifies under it
    }
    publicCache.set(publicKey, key);
  }
  return key;
}

/**
 * Ed25519 (RFC 8032 PureEdDSA) verification under the strict rule: A canonical and not of small order, R not of
 * small order, S < L, cofactorless equation over R's exact bytes. Never throws for bad input bytes. The public key
 * array is cached by identity: do not mutate it.
 */
export function verifyEd25519Strict(bytes: Uint8Array, sig: Uint8Array, publicKey: Uint8Array): boolean {
  if (sig.length !== SIGNATURE_BYTES || publicKey.length !== PUBLIC_BYTES) return false;
  if (!isCanonicalPoint(publicKey) || hasSmallOrder(publicKey) || hasSmallOrder(sig.subarray(0, 32))) return false;
  const key = publicKeyObject(publicKey);
  return key !== null && nodeVerify(null, bytes, key, sig);
}
