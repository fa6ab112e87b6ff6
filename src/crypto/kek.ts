// Key-encryption keys (KEKs): one symmetric key per pair of encryption keys, derived once by X25519 key agreement
// (RFC 7748 section 6.1, libsodium crypto_scalarmult) and hashed with BLAKE2b-256 (RFC 7693, crypto_generichash):
//   KEK = BLAKE2b-256("phi-broker/kek/v1" || shared || pk_first || pk_second)
// where first/second order the two keys by kid (JS string order), so both parties derive the same key, and
//   KEK id = kid_first + "~" + kid_second.
// The raw X25519 output is never used as a key on its own (RFC 7748 section 6.1 advises hashing it with the public keys).
import { BrokerError } from '../wire/errors.js';
import { parseKid, type EncryptionKeyPair, type PublicKeyRecord } from './keypairs.js';
import { cryptoBackend } from './sodium.js';

export const KEK_LABEL = 'phi-broker/kek/v1';
const LABEL_BYTES = new TextEncoder().encode(KEK_LABEL);

export interface Kek {
  readonly id: string;
  readonly key: Uint8Array;
}

/** `kidA~kidB` with the two kids sorted. */
export function kekId(kidA: string, kidB: string): string {
  return kidA <= kidB ? `${kidA}~${kidB}` : `${kidB}~${kidA}`;
}

/** Splits a KEK id into its two kids; undefined when it is not `<kid>~<kid>` in sorted order. */
export function splitKekId(id: string): [string, string] | undefined {
  const parts = id.split('~');
  if (parts.length !== 2) return undefined;
  const [a, b] = parts as [string, string];
  return a <= b ? [a, b] : undefined;
}

/**
 * `check`, with the ids it accepted remembered: its verdict depends on the id alone, so a remembered yes cannot go
 * stale. Only yeses are kept (ids a sender made up do not fill it); bounded, cleared when full.
 */
function rememberAccepted(check: (id: string) => boolean): (id: string) => boolean {
  const accepted = new Set<string>();
  return (id) => {
    if (accepted.has(id)) return true;
    if (!check(id)) return false;
    if (accepted.size >= 1024) accepted.clear();
    accepted.add(id);
    return true;
  };
}

/** splitKekId(id) !== undefined, remembered (sealing checks every recipient's KEK id of every message). */
export const isKekId = rememberAccepted((id) => splitKekId(id) !== undefined);

/**
 * Whether `id` is a KEK id of two encryption keys, `<enc kid>~<enc kid>` in sorted order — what an envelope's
 * `keys[].kek` must be — remembered.
 */
export const isEncKekId = rememberAccepted((id) => {
  const kids = splitKekId(id);
  return kids !== undefined && parseKid(kids[0])?.use === 'enc' && parseKid(kids[1])?.use === 'enc';
});

/** Derives the KEK shared by `own` and `peer` (an asymmetric operation: callers cache the result, see Keyring). */
export function deriveKek(own: EncryptionKeyPair, peer: Pick<PublicKeyRecord, 'kid' | 'publicKey'>): Kek {
  const sodium = cryptoBackend();
  let shared: Uint8Array;
  try {
    shared = sodium.scalarmult(own.secretKey, peer.publicKey);
  } catch (cause) {
    // libsodium refuses an all-zero result: the peer key is a low-order point (RFC 7748 section 6.1).
    throw new BrokerError('E_KEY_UNKNOWN', `encryption key ${peer.kid} is not a usable X25519 public key`, { cause });
  }
  const ownFirst = own.kid <= peer.kid;
  const first = ownFirst ? own.publicKey : peer.publicKey;
  const second = ownFirst ? peer.publicKey : own.publicKey;
  const input = new Uint8Array(LABEL_BYTES.length + 96);
  input.set(LABEL_BYTES, 0);
  input.set(shared, LABEL_BYTES.length);
  input.set(first, LABEL_BYTES.length + 32);
  input.set(second, LABEL_BYTES.length + 64);
  const key = sodium.generichash(32, input);
  shared.fill(0);
  input.fill(0);
  return Object.freeze({ id: kekId(own.kid, peer.kid), key });
}
