// A service's view of keys: its own key versions (current first) and its peers' public keys, each with a kid
// `<service>:<sig|enc>:<n>`. Old versions stay usable for opening and verifying until retired; a retired or never
// issued kid is E_KEY_UNKNOWN, except that an own encryption key opens what was sealed to it until it is destroyed. KEKs (src/crypto/kek.ts) are derived once per key pair and cached, so sealing and
// opening a message do no asymmetric operation besides its one signature.
import { BrokerError } from '../wire/errors.js';
import { deriveKek, kekId, splitKekId, type Kek } from './kek.js';
import {
  parseKid,
  publicRecords,
  type EncryptionKeyPair,
  type PublicKeyRecord,
  type ServiceKeys,
  type SigningKeyPair,
} from './keypairs.js';

function unknownKey(kid: string): BrokerError {
  return new BrokerError('E_KEY_UNKNOWN', `key ${kid} is not held (never issued, or retired)`);
}

export class Keyring {
  readonly service: string;
  /** Own key versions, current (highest precedence) first. */
  #own: ServiceKeys[] = [];
  #records = new Map<string, PublicKeyRecord>();
  #ownEnc = new Map<string, EncryptionKeyPair>();
  #retired = new Set<string>();
  /** Kids whose private halves were destroyed (`keys prune`): what is sealed to them is E_KEY_DESTROYED. */
  #destroyed = new Set<string>();
  /** Retiring kids (key directory, docs/keys.md): usable until this instant, then as retired. */
  #notAfter = new Map<string, number>();
  /** Revoked signing kids: nothing stored at or after this instant verifies. */
  #revoked = new Map<string, number>();
  #keks = new Map<string, Kek>();
  /** The clock notAfter is checked against (injected by tests). */
  now: () => number = Date.now;

  constructor(own: ServiceKeys | readonly ServiceKeys[], peers: readonly PublicKeyRecord[] = []) {
    const list = Array.isArray(own) ? (own as readonly ServiceKeys[]) : [own as ServiceKeys];
    const first = list[0];
    if (first === undefined) throw new TypeError('Keyring needs at least one own key version');
    this.service = first.service;
    for (const record of peers) this.addPeer(record);
    for (let i = list.length - 1; i >= 0; i--) this.addOwn(list[i] as ServiceKeys);
  }

  /** Adds a key version of this service and makes it current (rotation). */
  addOwn(keys: ServiceKeys): void {
    if (keys.service !== this.service) throw new TypeError('own keys of another service');
    for (const r of publicRecords(keys)) this.#addRecord(r);
    this.#ownEnc.set(keys.enc.kid, keys.enc);
    this.#own = [keys, ...this.#own.filter((k) => k.sign.kid !== keys.sign.kid)];
  }

  /** Adds or replaces a peer's public key. */
  addPeer(record: PublicKeyRecord): void {
    this.#addRecord(record);
  }

  #addRecord(record: PublicKeyRecord): void {
    const parsed = parseKid(record.kid);
    if (parsed === undefined || parsed.service !== record.service || parsed.use !== record.use) {
      throw new TypeError('public key record whose kid is not <service>:<use>:<n> for its service and use');
    }
    if (record.publicKey.length !== 32) throw new TypeError('public keys are 32 bytes');
    const previous = this.#records.get(record.kid);
    if (previous !== undefined && !bytesEqual(previous.publicKey, record.publicKey)) this.#dropKeks(record.kid);
    this.#records.set(record.kid, Object.freeze({ ...record }));
  }

  /**
   * Retires a kid (own or peer): it no longer verifies or seals, nor opens a peer's; cached KEKs that use it are
   * dropped. An own encryption kid still opens what was sealed to it until destroyed.
   * Retirement is final for this keyring: adding the same kid again (e.g. reloading a JWKS) does not revive it.
   */
  retire(kid: string): void {
    if (!this.#records.has(kid)) throw unknownKey(kid);
    this.#retired.add(kid);
    this.#dropKeks(kid);
  }

  /**
   * A destroyed kid (docs/keys.md "Bounded exposure"): retired, its private half (if own) dropped, and a message
   * signed with it or sealed under a KEK that uses it is E_KEY_DESTROYED rather than E_KEY_UNKNOWN, so a receiver
   * stops retrying what can never be opened.
   */
  destroy(kid: string): void {
    this.retire(kid);
    this.#destroyed.add(kid);
    this.#ownEnc.delete(kid);
    this.#own = this.#own.filter((k) => k.enc.kid !== kid && k.sign.kid !== kid);
  }

  isDestroyed(kid: string): boolean {
    return this.#destroyed.has(kid);
  }

  #refuseDestroyed(kids: readonly string[], path: string): void {
    const kid = kids.find((k) => this.#destroyed.has(k));
    if (kid !== undefined)
      throw new BrokerError(
        'E_KEY_DESTROYED',
        `key ${kid} was destroyed; what is sealed or signed under it is refused`,
        { path },
      );
  }

  isRetired(kid: string): boolean {
    return this.#retired.has(kid) || this.#pastNotAfter(kid);
  }

  /** A retiring kid: it keeps verifying and opening until `notAfterMs`, and is never chosen to sign or seal. */
  retireAt(kid: string, notAfterMs: number): void {
    if (!this.#records.has(kid)) throw unknownKey(kid);
    this.#notAfter.set(kid, notAfterMs);
  }

  /** A revoked kid: messages stored at or after `revokedAtMs` under it are E_KEY_REVOKED; it never signs or seals. */
  revoke(kid: string, revokedAtMs: number): void {
    if (!this.#records.has(kid)) throw unknownKey(kid);
    const before = this.#revoked.get(kid);
    this.#revoked.set(kid, before === undefined ? revokedAtMs : Math.min(before, revokedAtMs));
    this.#dropKeks(kid);
  }

  /** When `kid` was revoked, or undefined. */
  revokedAt(kid: string): number | undefined {
    return this.#revoked.get(kid);
  }

  /** A cached KEK one of whose keys has passed its notAfter: dropped, so the look-up refuses it. */
  #overlapEnded(id: string): boolean {
    if (this.#notAfter.size === 0) return false;
    const ended = id.split('~').some((kid) => this.#pastNotAfter(kid));
    if (ended) this.#keks.delete(id);
    return ended;
  }

  #pastNotAfter(kid: string): boolean {
    const notAfter = this.#notAfter.get(kid);
    return notAfter !== undefined && this.now() >= notAfter;
  }

  /** Not retired, not past its overlap, not revoked: may sign or be sealed to. */
  #current(kid: string): boolean {
    return !this.#retired.has(kid) && !this.#notAfter.has(kid) && !this.#revoked.has(kid);
  }

  /** The first own version whose key (`kidOf`) is current, else the first still in its overlap. */
  #ownInOverlap(kidOf: (k: ServiceKeys) => string): ServiceKeys | undefined {
    return (
      this.#own.find((k) => this.#current(kidOf(k))) ??
      this.#own.find((k) => {
        const kid = kidOf(k);
        return !this.#retired.has(kid) && !this.#revoked.has(kid) && !this.#pastNotAfter(kid);
      })
    );
  }

  #dropKeks(kid: string): void {
    for (const id of this.#keks.keys()) if (id.split('~').includes(kid)) this.#keks.delete(id);
  }

  #record(kid: string): PublicKeyRecord {
    this.#refuseDestroyed([kid], 'kid');
    const record = this.#records.get(kid);
    if (record === undefined || this.#retired.has(kid) || this.#pastNotAfter(kid)) throw unknownKey(kid);
    return record;
  }

  /** The current own signing key (the first own version whose signing key is neither retiring nor revoked). */
  signer(): SigningKeyPair {
    const keys = this.#own.find((k) => this.#current(k.sign.kid));
    if (keys === undefined) throw unknownKey(`${this.service}:sig:*`);
    return keys.sign;
  }

  /**
   * The current own signing key, else the newest own one still in its overlap: the directory named a new version whose
   * private half this process does not hold yet (its key file not copied here), and the previous one stays valid.
   */
  signerInOverlap(): SigningKeyPair {
    const keys = this.#ownInOverlap((k) => k.sign.kid);
    if (keys === undefined) throw unknownKey(`${this.service}:sig:*`);
    return keys.sign;
  }

  /**
   * The current own encryption key, else the newest own one still in its overlap (as `signerInOverlap`: the directory
   * named a version this process does not hold yet, and the previous one stays valid to seal with until its notAfter).
   */
  ownEncryptionKey(): EncryptionKeyPair {
    const keys = this.#ownInOverlap((k) => k.enc.kid);
    if (keys === undefined) throw unknownKey(`${this.service}:enc:*`);
    return keys.enc;
  }

  /**
   * Ed25519 public key for a signing kid (own or peer). With `storedAtMs` (when JetStream stored the message), a kid
   * revoked at or before that instant is E_KEY_REVOKED; without it, any revoked kid is.
   */
  signingPublicKey(kid: string, storedAtMs?: number): Uint8Array {
    const record = this.#record(kid);
    if (record.use !== 'sig') throw unknownKey(kid);
    const revokedAt = this.#revoked.get(kid);
    if (revokedAt !== undefined && (storedAtMs === undefined || storedAtMs >= revokedAt))
      throw new BrokerError('E_KEY_REVOKED', `key ${kid} was revoked before this message was stored`, { path: 'kid' });
    return record.publicKey;
  }

  /**
   * The public half of a signing kid this keyring has seen, whatever its status now: for what it signed in the past
   * (audit checkpoints), judged by the caller.
   */
  heldSigningKey(kid: string): Uint8Array | undefined {
    const record = this.#records.get(kid);
    return record?.use === 'sig' ? record.publicKey : undefined;
  }

  /** The service that owns a kid. */
  ownerOf(kid: string): string {
    return this.#record(kid).service;
  }

  /** The current (highest version, not retired) encryption key of a service (peer or self). */
  encryptionKeyOf(service: string): PublicKeyRecord {
    let best: PublicKeyRecord | undefined;
    let bestVersion = 0;
    for (const record of this.#records.values()) {
      if (record.service !== service || record.use !== 'enc' || !this.#current(record.kid)) continue;
      const version = parseKid(record.kid)?.version ?? 0;
      if (version > bestVersion) [best, bestVersion] = [record, version];
    }
    if (best === undefined) throw unknownKey(`${service}:enc:*`);
    return best;
  }

  /** The KEK shared with a peer encryption key, from our current (or the named) encryption key. Cached. */
  kekFor(peerEncKid: string, ownEncKid?: string): Kek {
    const own = ownEncKid === undefined ? this.ownEncryptionKey() : this.#ownEncKey(ownEncKid);
    const id = kekId(own.kid, peerEncKid);
    const cached = this.#keks.get(id);
    if (cached !== undefined && !this.#overlapEnded(id)) return cached;
    const peer = this.#record(peerEncKid);
    if (peer.use !== 'enc') throw unknownKey(peerEncKid);
    const kek = deriveKek(own, peer);
    this.#keks.set(id, kek);
    return kek;
  }

  /**
   * The KEK named by an envelope's `keys[].kek` (`kidA~kidB`, one of them ours), to open it. Cached. Our own half may
   * be past its overlap: retirement stops sealing to it, not its holder opening what was sealed to it before; only
   * its destruction (`keys prune`) does. The peer's half must still be in force.
   */
  kekForId(id: string): Kek {
    const kids = splitKekId(id);
    if (kids === undefined) throw new BrokerError('E_KEY_UNKNOWN', 'KEK id is not <kid>~<kid> in sorted order');
    this.#refuseDestroyed(kids, 'keys');
    const [a, b] = kids;
    const ownKid = this.#ownEnc.has(a) ? a : this.#ownEnc.has(b) ? b : undefined;
    if (ownKid === undefined)
      throw new BrokerError('E_KEY_UNKNOWN', `KEK ${id} uses none of the encryption keys of ${this.service}`);
    const peerKid = ownKid === a ? b : a;
    const cached = this.#keks.get(id);
    if (cached !== undefined && !this.#pastNotAfter(peerKid)) return cached;
    this.#keks.delete(id);
    const peer = this.#record(peerKid);
    if (peer.use !== 'enc') throw unknownKey(peerKid);
    const kek = deriveKek(this.#ownEnc.get(ownKid) as EncryptionKeyPair, peer);
    this.#keks.set(id, kek);
    return kek;
  }

  #ownEncKey(kid: string): EncryptionKeyPair {
    const key = this.#ownEnc.get(kid);
    if (key === undefined || this.isRetired(kid)) throw unknownKey(kid);
    return key;
  }

  /** Every public key held and not retired (own and peers), e.g. to write a JWKS. */
  publicKeys(): PublicKeyRecord[] {
    return [...this.#records.values()].filter((r) => !this.isRetired(r.kid));
  }

  /** Whether an own key version is held privately (a rotation's new version is loaded once). */
  hasOwn(signKid: string): boolean {
    return this.#own.some((k) => k.sign.kid === signKid);
  }
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}
