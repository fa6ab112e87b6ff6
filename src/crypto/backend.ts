// The libsodium primitives phi-broker uses, behind one interface with two implementations giving the same bytes:
// `native` (sodium-native: libsodium compiled for the platform, prebuilt binaries in its npm package, called
// through N-API on the caller's own memory) and `wasm` (libsodium-wrappers: libsodium compiled to WebAssembly, the
// fallback where the native module cannot load; each call copies its arguments into the WebAssembly heap).
// src/crypto/sodium.ts chooses one at initCrypto(); docs/configuration.md (PHI_BROKER_CRYPTO) says how.
import { createRequire } from 'node:module';
import sodium from 'libsodium-wrappers';

export type CryptoBackendName = 'native' | 'wasm';

export interface CryptoBackend {
  readonly name: CryptoBackendName;
  /** Which libsodium: libsodium-wrappers' sodium_version_string, or the sodium-native package version. */
  readonly libsodium: string;
  /** crypto_sign_detached (RFC 8032 Ed25519): the 64-byte signature of `m` under the 64-byte secret key. */
  sign(m: Uint8Array, sk: Uint8Array): Uint8Array;
  /** crypto_sign_verify_detached: libsodium's strict verification (canonical S, no small-order A or R). */
  verify(sig: Uint8Array, m: Uint8Array, pk: Uint8Array): boolean;
  /** crypto_aead_xchacha20poly1305_ietf_encrypt into `c` (m.length + 16 bytes). */
  aeadEncrypt(c: Uint8Array, m: Uint8Array, ad: Uint8Array, npub: Uint8Array, k: Uint8Array): void;
  /** crypto_aead_xchacha20poly1305_ietf_decrypt into `m` (c.length - 16 bytes); false when it does not authenticate. */
  aeadDecrypt(m: Uint8Array, c: Uint8Array, ad: Uint8Array, npub: Uint8Array, k: Uint8Array): boolean;
  /** crypto_scalarmult (RFC 7748 X25519); throws when the result is all zero (a low-order peer key). */
  scalarmult(n: Uint8Array, p: Uint8Array): Uint8Array;
  /** crypto_scalarmult_base: the X25519 public key of a secret key. */
  scalarmultBase(n: Uint8Array): Uint8Array;
  /** crypto_sign_seed_keypair: the Ed25519 key pair of a 32-byte seed (secret key = seed || public key). */
  signSeedKeypair(seed: Uint8Array): { publicKey: Uint8Array; privateKey: Uint8Array };
  /** crypto_generichash (RFC 7693 BLAKE2b) of `input`, unkeyed, `outLength` bytes. */
  generichash(outLength: number, input: Uint8Array): Uint8Array;
  /** randombytes_buf: fills `buf` from libsodium's CSPRNG (the OS source). */
  randomFill(buf: Uint8Array): void;
}

/** libsodium-wrappers (WebAssembly); usable once `sodium.ready` has resolved. */
export const wasmBackend: CryptoBackend = {
  name: 'wasm',
  get libsodium() {
    return sodium.sodium_version_string();
  },
  sign: (m, sk) => sodium.crypto_sign_detached(m, sk),
  verify: (sig, m, pk) => sodium.crypto_sign_verify_detached(sig, m, pk),
  aeadEncrypt(c, m, ad, npub, k) {
    c.set(sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(m, ad, null, npub, k));
  },
  aeadDecrypt(m, c, ad, npub, k) {
    let plain: Uint8Array;
    try {
      plain = sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(null, c, ad, npub, k);
    } catch {
      return false;
    }
    m.set(plain);
    plain.fill(0);
    return true;
  },
  scalarmult: (n, p) => sodium.crypto_scalarmult(n, p),
  scalarmultBase: (n) => sodium.crypto_scalarmult_base(n),
  signSeedKeypair(seed) {
    const kp = sodium.crypto_sign_seed_keypair(seed);
    return { publicKey: kp.publicKey, privateKey: kp.privateKey };
  },
  generichash: (outLength, input) => sodium.crypto_generichash(outLength, input, null),
  randomFill(buf) {
    buf.set(sodium.randombytes_buf(buf.length));
  },
};

/** The part of sodium-native's API used here (it ships no TypeScript types). */
interface SodiumNative {
  crypto_sign_detached(sig: Uint8Array, m: Uint8Array, sk: Uint8Array): void;
  crypto_sign_verify_detached(sig: Uint8Array, m: Uint8Array, pk: Uint8Array): boolean;
  crypto_aead_xchacha20poly1305_ietf_encrypt(
    c: Uint8Array,
    m: Uint8Array,
    ad: Uint8Array | null,
    nsec: null,
    npub: Uint8Array,
    k: Uint8Array,
  ): number;
  crypto_aead_xchacha20poly1305_ietf_decrypt(
    m: Uint8Array,
    nsec: null,
    c: Uint8Array,
    ad: Uint8Array | null,
    npub: Uint8Array,
    k: Uint8Array,
  ): number;
  crypto_scalarmult(q: Uint8Array, n: Uint8Array, p: Uint8Array): void;
  crypto_scalarmult_base(q: Uint8Array, n: Uint8Array): void;
  crypto_sign_seed_keypair(pk: Uint8Array, sk: Uint8Array, seed: Uint8Array): void;
  crypto_generichash(out: Uint8Array, input: Uint8Array, key?: Uint8Array): void;
  randombytes_buf(buf: Uint8Array): void;
}

function nativeFrom(s: SodiumNative, version: string): CryptoBackend {
  return {
    name: 'native',
    libsodium: version,
    sign(m, sk) {
      if (sk.length !== 64) throw new TypeError('Ed25519 secret key must be 64 bytes (seed || public key)');
      const sig = new Uint8Array(64);
      s.crypto_sign_detached(sig, m, sk);
      return sig;
    },
    verify: (sig, m, pk) => s.crypto_sign_verify_detached(sig, m, pk),
    aeadEncrypt(c, m, ad, npub, k) {
      s.crypto_aead_xchacha20poly1305_ietf_encrypt(c, m, ad, null, npub, k);
    },
    aeadDecrypt(m, c, ad, npub, k) {
      try {
        s.crypto_aead_xchacha20poly1305_ietf_decrypt(m, null, c, ad, npub, k);
        return true;
      } catch {
        return false; // sodium-native throws when the tag does not verify
      }
    },
    scalarmult(n, p) {
      const q = new Uint8Array(32);
      s.crypto_scalarmult(q, n, p);
      return q;
    },
    scalarmultBase(n) {
      const q = new Uint8Array(32);
      s.crypto_scalarmult_base(q, n);
      return q;
    },
    signSeedKeypair(seed) {
      const publicKey = new Uint8Array(32);
      const privateKey = new Uint8Array(64);
      s.crypto_sign_seed_keypair(publicKey, privateKey, seed);
      return { publicKey, privateKey };
    },
    generichash(outLength, input) {
      const out = new Uint8Array(outLength);
      s.crypto_generichash(out, input);
      return out;
    },
    randomFill: (buf) => s.randombytes_buf(buf),
  };
}

/**
 * The native backend, or the reason it cannot load (no prebuilt binary for this platform, a missing package, an
 * ABI mismatch). Loaded with require: sodium-native is a CommonJS add-on.
 */
export function loadNativeBackend(): CryptoBackend | Error {
  try {
    const require = createRequire(import.meta.url);
    const s = require('sodium-native') as SodiumNative;
    const version = (require('sodium-native/package.json') as { version: string }).version;
    return nativeFrom(s, `sodium-native ${version}`);
  } catch (cause) {
    return cause instanceof Error ? cause : new Error(String(cause));
  }
}
