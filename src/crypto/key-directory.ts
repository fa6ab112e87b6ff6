// The key directory's entry format (docs/keys.md): one entry per party, a JWK Set (RFC 7517 section 5) of its public
// keys with extra members per key (status, dates; RFC 7517 section 4 allows them) and per set (party, kind, seq,
// issuedAt), carried as a JWS Compact Serialization (RFC 7515 section 7.1) signed by the operator root key with
// EdDSA/Ed25519 (RFC 8037). Pure: building, signing, verifying, and what an entry means for a keyring at a time.
import { verifyEd25519Strict } from './verify-strict.js';
import { createHash, createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import { CompactSign } from 'jose';
import { BrokerError } from '../wire/errors.js';
import { SERVICE_ID_PATTERN } from '../wire/ids.js';
import { fromBase64url, toBase64url } from './base64url.js';
import { publicJwk, recordsFromJwks, type OkpJwk } from './jwk.js';
import type { Keyring } from './keyring.js';
import { parseKid, publicRecords, type PublicKeyRecord, type ServiceKeys } from './keypairs.js';

export const KEY_STATUSES = ['active', 'retiring', 'retired', 'revoked'] as const;
export type KeyStatus = (typeof KEY_STATUSES)[number];
/** `gateway`: the partner gateways' own keys; `operator`: the key that signs the CLI's operator audit chains (never the operator root key). */
export type PartyKind = 'service' | 'broker' | 'gateway' | 'partner' | 'operator';
const PARTY_KINDS: readonly PartyKind[] = ['service', 'broker', 'gateway', 'partner', 'operator'];

/**
 * A partner's client-assertion public key (SMART Backend Services): ES384 (EC P-384), RS384 (RSA) or EdDSA (OKP
 * Ed25519), its kid chosen by the partner. String members only, as the catalog's inline `jwks`.
 */
export type ClientJwk = Readonly<Record<string, string>> & { readonly kid: string; readonly kty: string };

/** One public key with its lifecycle (ISO 8601 instants). */
export interface DirectoryKey<J = OkpJwk> {
  readonly jwk: J;
  readonly status: KeyStatus;
  readonly created: string;
  /** `retiring`: the end of the overlap; past it the key counts as retired. */
  readonly notAfter?: string;
  readonly retired?: string;
  readonly revokedAt?: string;
  readonly reason?: string;
  /** When the private half was deleted (`keys prune`): nothing sealed to the key opens any more. */
  readonly destroyedAt?: string;
}

export interface DirectoryEntry {
  readonly party: string;
  readonly kind: PartyKind;
  /** Strictly increasing per party: a watcher refuses an entry whose seq is not above the one in force (rollback). */
  readonly seq: number;
  readonly issuedAt: string;
  readonly keys: readonly DirectoryKey[];
  /** A partner's client-assertion keys (member `clientKeys` beside `keys`); absent for other parties. */
  readonly clientKeys?: readonly DirectoryKey<ClientJwk>[];
  /** The gateways' ES384 access-token and notification keys (member `tokenKeys`), in the `gateway` entry only. */
  readonly tokenKeys?: readonly DirectoryKey<ClientJwk>[];
}

/** The members of an entry that list keys chosen outside phi-broker's kid scheme, and the kind each belongs to. */
export type ListedKeysMember = 'clientKeys' | 'tokenKeys';
const LISTED_KEYS_KIND: Readonly<Record<ListedKeysMember, PartyKind>> = { clientKeys: 'partner', tokenKeys: 'gateway' };

/** The JWS `typ` of a directory entry (RFC 7515 section 4.1.9). */
export const ENTRY_TYP = 'phi-broker-keys+jwks';

/** The operator root key: Ed25519, as node:crypto key objects (jose signs and verifies with them). */
export interface OperatorRootKey {
  readonly kid: string;
  readonly publicKey: KeyObject;
  readonly privateKey?: KeyObject;
}

function invalid(party: string, detail: string): BrokerError {
  return new BrokerError('E_KEY_DIRECTORY_INVALID', `key directory entry ${party}: ${detail}`, { path: party });
}

/** The root key from its raw Ed25519 public key (32 bytes) and, to sign, its 32-byte seed. kid = RFC 7638 thumbprint. */
export function operatorRootKey(publicKey: Uint8Array, seed?: Uint8Array): OperatorRootKey {
  if (publicKey.length !== 32) throw new TypeError('Ed25519 public key must be 32 bytes');
  const x = toBase64url(publicKey);
  const pub = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x }, format: 'jwk' });
  // RFC 7638 section 3.2: SHA-256 over the required members in lexicographic order, no whitespace.
  const kid = createHash('sha256').update(`{"crv":"Ed25519","kty":"OKP","x":"${x}"}`).digest('base64url');
  if (seed === undefined) return Object.freeze({ kid, publicKey: pub });
  const priv = createPrivateKey({ key: { kty: 'OKP', crv: 'Ed25519', x, d: toBase64url(seed) }, format: 'jwk' });
  const derived = createPublicKey(priv).export({ format: 'jwk' }).x;
  if (derived !== x) throw new TypeError('the operator root seed does not yield its public key');
  return Object.freeze({ kid, publicKey: pub, privateKey: priv });
}

/** The pinned root key from the catalog's `keyDirectory.operatorRootKey.x`. */
export function pinnedRootKey(x: string): OperatorRootKey {
  const bytes = fromBase64url(x);
  if (bytes?.length !== 32)
    throw new BrokerError('E_KEY_DIRECTORY_INVALID', 'keyDirectory.operatorRootKey.x: expected 32 bytes', {
      path: 'keyDirectory.operatorRootKey',
    });
  return operatorRootKey(bytes);
}

/** Signs an entry as a JWS (EdDSA). */
export async function signEntry(entry: DirectoryEntry, root: OperatorRootKey): Promise<string> {
  if (root.privateKey === undefined) throw new TypeError('signEntry needs the operator root private key');
  const payload = new TextEncoder().encode(JSON.stringify(entryJson(entry)));
  return new CompactSign(payload)
    .setProtectedHeader({ alg: 'EdDSA', typ: ENTRY_TYP, kid: root.kid })
    .sign(root.privateKey);
}

function entryJson(entry: DirectoryEntry): Record<string, unknown> {
  const keyJson = (k: DirectoryKey<OkpJwk | ClientJwk>): Record<string, unknown> => ({
    ...k.jwk,
    status: k.status,
    created: k.created,
    ...(k.notAfter === undefined ? {} : { notAfter: k.notAfter }),
    ...(k.retired === undefined ? {} : { retired: k.retired }),
    ...(k.revokedAt === undefined ? {} : { revokedAt: k.revokedAt }),
    ...(k.reason === undefined ? {} : { reason: k.reason }),
    ...(k.destroyedAt === undefined ? {} : { destroyedAt: k.destroyedAt }),
  });
  return {
    party: entry.party,
    kind: entry.kind,
    seq: entry.seq,
    issuedAt: entry.issuedAt,
    keys: entry.keys.map(keyJson),
    ...(entry.clientKeys === undefined ? {} : { clientKeys: entry.clientKeys.map(keyJson) }),
    ...(entry.tokenKeys === undefined ? {} : { tokenKeys: entry.tokenKeys.map(keyJson) }),
  };
}

const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,3})?Z$/;

function instant(party: string, path: string, value: unknown, required: boolean): string | undefined {
  if (value === undefined && !required) return undefined;
  if (typeof value !== 'string' || !ISO.test(value) || Number.isNaN(Date.parse(value)))
    throw invalid(party, `${path}: expected an ISO 8601 UTC instant`);
  return value;
}

/**
 * Verifies an entry read under KV key `party` against the pinned root key and parses it: RFC 7515 section 5.2 for
 * the compact form, alg EdDSA only (RFC 8037 section 3.1), no `crit`. Synchronous (verify-strict.ts), so a
 * watcher applies entries in order. Any failure is E_KEY_DIRECTORY_INVALID naming the party and the field.
 */
export function verifyEntry(party: string, jws: string, root: OperatorRootKey): DirectoryEntry {
  const parts = jws.split('.');
  if (parts.length !== 3) throw invalid(party, 'not a JWS in compact serialization');
  const [h, p, sig] = parts as [string, string, string];
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(Buffer.from(h, 'base64url').toString('utf8')) as Record<string, unknown>;
  } catch {
    throw invalid(party, 'JWS protected header is not JSON');
  }
  if (header['alg'] !== 'EdDSA') throw invalid(party, 'JWS alg: expected EdDSA');
  if (header['typ'] !== ENTRY_TYP) throw invalid(party, `JWS typ: expected ${ENTRY_TYP}`);
  if ('crit' in header) throw invalid(party, 'JWS crit: no critical extensions are understood');
  const signature = fromBase64url(sig);
  const x = root.publicKey.export({ format: 'jwk' }).x;
  const publicKey = x === undefined ? undefined : fromBase64url(x);
  // The one Ed25519 rule of docs/wire-format.md "Signature strictness" (libsodium's), as every other verifier.
  if (
    signature?.length !== 64 ||
    publicKey?.length !== 32 ||
    !verifyEd25519Strict(new TextEncoder().encode(`${h}.${p}`), signature, publicKey)
  )
    throw invalid(party, 'JWS signature does not verify under the operator root key');
  let json: unknown;
  try {
    json = JSON.parse(Buffer.from(p, 'base64url').toString('utf8'));
  } catch {
    throw invalid(party, 'payload is not JSON');
  }
  return parseEntry(party, json);
}

function parseEntry(party: string, json: unknown): DirectoryEntry {
  if (typeof json !== 'object' || json === null || Array.isArray(json))
    throw invalid(party, 'payload: expected an object');
  const o = json as Record<string, unknown>;
  if (o['party'] !== party) throw invalid(party, 'party: expected the KV key it is stored under');
  const kind = o['kind'];
  if (typeof kind !== 'string' || !(PARTY_KINDS as readonly string[]).includes(kind))
    throw invalid(party, `kind: expected one of ${PARTY_KINDS.join(', ')}`);
  const seq = o['seq'];
  if (typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq < 1)
    throw invalid(party, 'seq: expected a positive integer');
  const issuedAt = instant(party, 'issuedAt', o['issuedAt'], true) as string;
  if (!Array.isArray(o['keys'])) throw invalid(party, 'keys: expected an array');
  const raw = o['keys'] as unknown[];
  // The JWK members alone through the strict RFC 8037 parser (kid form, curve, 32-byte x, no d).
  const jwkOnly = raw.map((k, i) => {
    if (typeof k !== 'object' || k === null) throw invalid(party, `keys[${i}]: expected an object`);
    const {
      status: _s,
      created: _c,
      notAfter: _n,
      retired: _r,
      revokedAt: _v,
      reason: _e,
      destroyedAt: _d,
      ...jwk
    } = k as Record<string, unknown>;
    return jwk;
  });
  let records: PublicKeyRecord[];
  try {
    records = recordsFromJwks(`key directory entry ${party}`, { keys: jwkOnly });
  } catch (err) {
    throw invalid(party, err instanceof Error ? err.message.replace(/^.*?: /, '') : 'keys: malformed');
  }
  const keys = raw.map((k, i): DirectoryKey => {
    const m = k as Record<string, unknown>;
    const record = records[i] as PublicKeyRecord;
    if (record.service !== party) throw invalid(party, `keys[${i}].kid: expected a key of ${party}`);
    return lifecycle(party, `keys[${i}]`, publicJwk(record), m);
  });
  const listed = (member: ListedKeysMember): DirectoryKey<ClientJwk>[] | undefined => {
    const value = o[member];
    if (value === undefined) return undefined;
    if (kind !== LISTED_KEYS_KIND[member] || !Array.isArray(value))
      throw invalid(party, `${member}: expected an array, in a ${LISTED_KEYS_KIND[member]} entry only`);
    const out = (value as unknown[]).map((k, i) => {
      if (typeof k !== 'object' || k === null) throw invalid(party, `${member}[${i}]: expected an object`);
      const m = k as Record<string, unknown>;
      if (member === 'tokenKeys' && m['kty'] !== 'EC') throw invalid(party, `${member}[${i}].kty: expected EC`);
      return lifecycle(party, `${member}[${i}]`, clientJwk(party, `${member}[${i}]`, m), m);
    });
    if (new Set(out.map((c) => c.jwk.kid)).size !== out.length)
      throw invalid(party, `${member}: a kid is listed twice`);
    return out;
  };
  const clients = listed('clientKeys');
  const tokens = listed('tokenKeys');
  return Object.freeze({
    party,
    kind: kind as PartyKind,
    seq,
    issuedAt,
    keys: Object.freeze(keys),
    ...(clients === undefined ? {} : { clientKeys: Object.freeze(clients) }),
    ...(tokens === undefined ? {} : { tokenKeys: Object.freeze(tokens) }),
  });
}

/** A key's lifecycle members (status, dates, reason) beside its JWK, checked. */
function lifecycle<J>(party: string, at: string, jwk: J, m: Record<string, unknown>): DirectoryKey<J> {
  const status = m['status'];
  if (typeof status !== 'string' || !(KEY_STATUSES as readonly string[]).includes(status))
    throw invalid(party, `${at}.status: expected one of ${KEY_STATUSES.join(', ')}`);
  const notAfter = instant(party, `${at}.notAfter`, m['notAfter'], status === 'retiring');
  const revokedAt = instant(party, `${at}.revokedAt`, m['revokedAt'], status === 'revoked');
  const retired = instant(party, `${at}.retired`, m['retired'], false);
  const destroyedAt = instant(party, `${at}.destroyedAt`, m['destroyedAt'], false);
  if (destroyedAt !== undefined && status !== 'retired')
    throw invalid(party, `${at}.destroyedAt: only a retired key can be destroyed`);
  const reason = m['reason'];
  if (reason !== undefined && (typeof reason !== 'string' || reason.length > 500))
    throw invalid(party, `${at}.reason: expected a string of at most 500 characters`);
  return Object.freeze({
    jwk,
    status: status as KeyStatus,
    created: instant(party, `${at}.created`, m['created'], true) as string,
    ...(notAfter === undefined ? {} : { notAfter }),
    ...(retired === undefined ? {} : { retired }),
    ...(revokedAt === undefined ? {} : { revokedAt }),
    ...(typeof reason === 'string' ? { reason } : {}),
    ...(destroyedAt === undefined ? {} : { destroyedAt }),
  });
}

/** The JWK members a client key may carry per kty (RFC 7518 section 6; RFC 8037 section 2); never a private one. */
const CLIENT_JWK_MEMBERS: Readonly<Record<string, readonly string[]>> = {
  EC: ['kty', 'crv', 'x', 'y'],
  RSA: ['kty', 'n', 'e'],
  OKP: ['kty', 'crv', 'x'],
};
const CLIENT_JWK_CURVES: Readonly<Record<string, string | undefined>> = { EC: 'P-384', OKP: 'Ed25519' };
const CLIENT_JWK_ALGS: Readonly<Record<string, string>> = { EC: 'ES384', RSA: 'RS384', OKP: 'EdDSA' };
const LIFECYCLE_MEMBERS = ['status', 'created', 'notAfter', 'retired', 'revokedAt', 'reason', 'destroyedAt'];

/** A client-assertion public key: the shapes the catalog's inline `jwks` accepts (ES384, RS384, EdDSA). */
export function clientJwk(
  party: string,
  at: string,
  m: Record<string, unknown>,
  fail: (detail: string) => Error = (detail) => invalid(party, detail),
): ClientJwk {
  const kty = m['kty'];
  const required = typeof kty === 'string' ? CLIENT_JWK_MEMBERS[kty] : undefined;
  if (required === undefined) throw fail(`${at}.kty: expected EC, RSA or OKP`);
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(m)) {
    if (LIFECYCLE_MEMBERS.includes(name)) continue;
    if (!required.includes(name) && !['kid', 'alg', 'use'].includes(name))
      throw fail(`${at}.${name}: not a member of a public ${kty} signing key`);
    if (typeof value !== 'string' || value === '' || value.length > 4096)
      throw fail(`${at}.${name}: expected a non-empty string`);
    out[name] = value;
  }
  for (const name of [...required, 'kid']) if (out[name] === undefined) throw fail(`${at}.${name}: missing`);
  const crv = CLIENT_JWK_CURVES[kty as string];
  if (crv !== undefined && out['crv'] !== crv) throw fail(`${at}.crv: expected ${crv}`);
  if (out['alg'] !== undefined && out['alg'] !== CLIENT_JWK_ALGS[kty as string])
    throw fail(`${at}.alg: expected ${CLIENT_JWK_ALGS[kty as string]}`);
  if (out['use'] !== undefined && out['use'] !== 'sig') throw fail(`${at}.use: expected sig`);
  if ((out['kid'] as string).length > 256) throw fail(`${at}.kid: at most 256 characters`);
  return Object.freeze(out) as ClientJwk;
}

/** What a key's status means at `nowMs`: a retiring key past its notAfter is retired. */
export function effectiveStatus(key: DirectoryKey<OkpJwk | ClientJwk>, nowMs: number): KeyStatus {
  if (key.status === 'retiring' && key.notAfter !== undefined && Date.parse(key.notAfter) <= nowMs) return 'retired';
  return key.status;
}

/** The kind of a party: the broker, the gateways' own party, the operator audit key, a catalog partner or a service. */
export function kindOf(
  party: string,
  ids: { readonly broker: string; readonly gateway?: string; readonly operator?: string },
  isPartner = false,
): PartyKind {
  if (party === ids.broker) return 'broker';
  if (party === ids.gateway) return 'gateway';
  if (party === ids.operator) return 'operator';
  return isPartner ? 'partner' : 'service';
}

/**
 * Whether a signature made at `atMs` (when JetStream stored it) is vouched for by `key` (docs/keys.md "Signatures
 * made in the past"): active; retiring or retired before its notAfter (or retired date); revoked before its revokedAt.
 * Destroying the private half does not withdraw what the key signed while it was valid.
 */
export function signedWhileValid(
  key: DirectoryKey,
  atMs: number,
): { readonly ok: true } | { readonly ok: false; readonly code: 'E_KEY_REVOKED' | 'E_KEY_UNKNOWN' } {
  const until = (iso: string | undefined): boolean => iso !== undefined && atMs < Date.parse(iso);
  switch (key.status) {
    case 'active':
      return { ok: true };
    case 'retiring':
      return until(key.notAfter) ? { ok: true } : { ok: false, code: 'E_KEY_UNKNOWN' };
    case 'retired':
      return until(key.retired ?? key.notAfter) ? { ok: true } : { ok: false, code: 'E_KEY_UNKNOWN' };
    case 'revoked':
      // A key revoked while retiring: its overlap ended first or its revocation did.
      if (!until(key.revokedAt)) return { ok: false, code: 'E_KEY_REVOKED' };
      return key.notAfter === undefined || until(key.notAfter) ? { ok: true } : { ok: false, code: 'E_KEY_UNKNOWN' };
  }
}

/** A fresh entry from a party's key versions (highest first): the highest active, the others active too. */
export function entryFromVersions(
  kind: PartyKind,
  versions: readonly ServiceKeys[],
  nowMs: number,
  previous?: DirectoryEntry,
): DirectoryEntry {
  const first = versions[0];
  if (first === undefined) throw new TypeError('entryFromVersions: at least one key version');
  if (!SERVICE_ID_PATTERN.test(first.service)) throw new TypeError('party id must match SERVICE_ID_PATTERN');
  const at = new Date(nowMs).toISOString();
  const known = new Map((previous?.keys ?? []).map((k) => [k.jwk.kid, k]));
  const keys: DirectoryKey[] = [];
  for (const v of versions)
    for (const r of publicRecords(v))
      keys.push(known.get(r.kid) ?? { jwk: publicJwk(r), status: 'active', created: at });
  // Keys the directory had that the key files no longer hold stay listed (their status is history).
  for (const k of previous?.keys ?? []) if (!keys.some((x) => x.jwk.kid === k.jwk.kid)) keys.push(k);
  return Object.freeze({
    party: first.service,
    kind,
    seq: (previous?.seq ?? 0) + 1,
    issuedAt: at,
    keys,
    ...(previous?.clientKeys === undefined ? {} : { clientKeys: previous.clientKeys }),
    ...(previous?.tokenKeys === undefined ? {} : { tokenKeys: previous.tokenKeys }),
  });
}

/**
 * Keys added to an entry's `clientKeys` (`keys publish --partner`) or `tokenKeys` (`keys publish`): each kid not listed
 * yet becomes active; listed ones keep their status (a revoked kid stays revoked). With `overlapMs` (a rotation), the
 * keys active before are retiring until now + overlap. Undefined when nothing is new.
 */
export function addListedKeys(
  previous: DirectoryEntry,
  member: ListedKeysMember,
  jwks: readonly ClientJwk[],
  nowMs: number,
  overlapMs?: number,
): DirectoryEntry | undefined {
  const at = new Date(nowMs).toISOString();
  const held = previous[member] ?? [];
  const fresh = jwks
    .filter((j) => !held.some((k) => k.jwk.kid === j.kid))
    .map((jwk): DirectoryKey<ClientJwk> => ({ jwk, status: 'active', created: at }));
  if (fresh.length === 0) return undefined;
  const notAfter = overlapMs === undefined ? undefined : new Date(nowMs + overlapMs).toISOString();
  const kept = held.map((k): DirectoryKey<ClientJwk> =>
    notAfter !== undefined && k.status === 'active' ? { ...k, status: 'retiring', notAfter } : k,
  );
  return Object.freeze({
    ...previous,
    kind: LISTED_KEYS_KIND[member],
    seq: previous.seq + 1,
    issuedAt: at,
    [member]: Object.freeze([...kept, ...fresh]),
  });
}

/** `addListedKeys` for a partner's client-assertion keys. */
export function addClientKeys(
  previous: DirectoryEntry,
  jwks: readonly ClientJwk[],
  nowMs: number,
): DirectoryEntry | undefined {
  return addListedKeys(previous, 'clientKeys', jwks, nowMs);
}

/** Rotation: `next`'s keys become active; the keys active before are retiring until now + overlap. */
export function rotateEntry(
  previous: DirectoryEntry,
  next: ServiceKeys,
  nowMs: number,
  overlapMs: number,
): DirectoryEntry {
  const at = new Date(nowMs).toISOString();
  const notAfter = new Date(nowMs + overlapMs).toISOString();
  const keys: DirectoryKey[] = previous.keys.map((k) =>
    k.status === 'active' ? { ...k, status: 'retiring', notAfter } : k,
  );
  for (const r of publicRecords(next)) keys.push({ jwk: publicJwk(r), status: 'active', created: at });
  return Object.freeze({ ...previous, seq: previous.seq + 1, issuedAt: at, keys });
}

/** Revocation of one kid, effective at `nowMs`. Undefined when the entry holds no such kid. */
export function revokeInEntry(
  previous: DirectoryEntry,
  kid: string,
  reason: string,
  nowMs: number,
): DirectoryEntry | undefined {
  const others = [...(previous.clientKeys ?? []), ...(previous.tokenKeys ?? [])];
  if (!previous.keys.some((k) => k.jwk.kid === kid) && !others.some((k) => k.jwk.kid === kid)) return undefined;
  const at = new Date(nowMs).toISOString();
  const revoke = <J extends { kid: string }>(k: DirectoryKey<J>): DirectoryKey<J> =>
    k.jwk.kid === kid ? { ...k, status: 'revoked', revokedAt: at, reason } : k;
  return Object.freeze({
    ...previous,
    seq: previous.seq + 1,
    issuedAt: at,
    keys: previous.keys.map(revoke),
    ...(previous.clientKeys === undefined ? {} : { clientKeys: previous.clientKeys.map(revoke) }),
    ...(previous.tokenKeys === undefined ? {} : { tokenKeys: previous.tokenKeys.map(revoke) }),
  });
}

/** The party a kid belongs to (`<party>:<use>:<n>`), or undefined for a malformed kid. */
export function partyOfKid(kid: string): string | undefined {
  return parseKid(kid)?.service;
}

/** When a key stopped opening and verifying: its notAfter (retiring), retired date, or revokedAt; undefined while active. */
function retiredAt(key: DirectoryKey<OkpJwk | ClientJwk>): number | undefined {
  const at =
    key.status === 'retiring'
      ? key.notAfter
      : key.status === 'retired'
        ? (key.retired ?? key.notAfter ?? key.revokedAt)
        : key.status === 'revoked'
          ? key.revokedAt
          : undefined;
  return at === undefined ? undefined : Date.parse(at);
}

/**
 * Key versions of an entry whose private halves may be destroyed at `nowMs` (docs/keys.md "Bounded exposure"): both
 * keys of the version stopped opening and verifying at least `olderThanMs` before, and neither is destroyed yet.
 * Versions, ascending.
 */
export function prunableVersions(entry: DirectoryEntry, olderThanMs: number, nowMs: number): number[] {
  const byVersion = new Map<number, DirectoryKey[]>();
  for (const k of entry.keys) {
    const version = parseKid(k.jwk.kid)?.version;
    if (version !== undefined) byVersion.set(version, [...(byVersion.get(version) ?? []), k]);
  }
  const out: number[] = [];
  for (const [version, keys] of byVersion) {
    const ok = keys.every((k) => {
      const at = retiredAt(k);
      return k.destroyedAt === undefined && at !== undefined && at <= nowMs - olderThanMs;
    });
    if (ok) out.push(version);
  }
  return out.sort((a, b) => a - b);
}

/**
 * The gateway entry's token kids whose private halves may be destroyed at `nowMs`: stopped verifying at least
 * `olderThanMs` before (retired, or revoked) and not destroyed yet. Tokens they signed expired long before.
 */
export function prunableTokenKids(entry: DirectoryEntry, olderThanMs: number, nowMs: number): string[] {
  return (entry.tokenKeys ?? [])
    .filter((k) => {
      const at = retiredAt(k);
      return k.destroyedAt === undefined && at !== undefined && at <= nowMs - olderThanMs;
    })
    .map((k) => k.jwk.kid);
}

/**
 * Marks every key of `versions`, and the token keys `tokenKids`, `retired` with `destroyedAt` = now (their private
 * halves are deleted).
 */
export function destroyInEntry(
  previous: DirectoryEntry,
  versions: readonly number[],
  nowMs: number,
  tokenKids: readonly string[] = [],
): DirectoryEntry {
  const at = new Date(nowMs).toISOString();
  const destroyed = <K extends DirectoryKey<OkpJwk | ClientJwk>>(k: K): K => {
    const retired = new Date(retiredAt(k) ?? nowMs).toISOString();
    return { ...k, status: 'retired', retired, destroyedAt: at };
  };
  const keys = previous.keys.map((k): DirectoryKey => {
    const version = parseKid(k.jwk.kid)?.version;
    return version === undefined || !versions.includes(version) ? k : destroyed(k);
  });
  const tokenKeys = previous.tokenKeys?.map((k) => (tokenKids.includes(k.jwk.kid) ? destroyed(k) : k));
  return Object.freeze({
    ...previous,
    seq: previous.seq + 1,
    issuedAt: at,
    keys,
    ...(tokenKeys === undefined ? {} : { tokenKeys }),
  });
}

export interface AppliedEntry {
  /** Kids this entry revoked that the keyring had not known as revoked. */
  readonly newlyRevoked: readonly string[];
  /** Kids this entry marks destroyed that the keyring had not known as destroyed. */
  readonly newlyDestroyed: readonly string[];
  /** The party's current signing kid (highest active version), if any. */
  readonly currentSigKid: string | undefined;
}

/** The party's current signing kid in an entry: its highest active `sig` version, if any. */
export function currentSigKid(entry: DirectoryEntry): string | undefined {
  let current: { kid: string; version: number } | undefined;
  for (const k of entry.keys) {
    if (k.status !== 'active' || k.jwk.use !== 'sig') continue;
    const version = parseKid(k.jwk.kid)?.version ?? 0;
    if (current === undefined || version > current.version) current = { kid: k.jwk.kid, version };
  }
  return current?.kid;
}

/** Puts an entry's keys and their status into a keyring: active as held, retiring until notAfter, retired, revoked. */
export function applyEntry(keyring: Keyring, entry: DirectoryEntry): AppliedEntry {
  const newlyRevoked: string[] = [];
  const newlyDestroyed: string[] = [];
  const records = recordsFromJwks(`key directory entry ${entry.party}`, { keys: entry.keys.map((k) => k.jwk) });
  entry.keys.forEach((k, i) => {
    const record = records[i] as PublicKeyRecord;
    keyring.addPeer(record);
    switch (k.status) {
      case 'active':
        break;
      case 'retiring':
        keyring.retireAt(record.kid, Date.parse(k.notAfter as string));
        break;
      case 'retired':
        keyring.retire(record.kid);
        if (k.destroyedAt !== undefined && !keyring.isDestroyed(record.kid)) {
          newlyDestroyed.push(record.kid);
          keyring.destroy(record.kid);
        }
        break;
      case 'revoked':
        if (keyring.revokedAt(record.kid) === undefined) newlyRevoked.push(record.kid);
        keyring.revoke(record.kid, Date.parse(k.revokedAt as string));
        break;
    }
  });
  return { newlyRevoked, newlyDestroyed, currentSigKid: currentSigKid(entry) };
}
