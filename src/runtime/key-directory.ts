// The key directory's operations (docs/keys.md): the operator root key file, publishing every party's keys from the
// key files, rotation, revocation and epoch deletion (`keys prune`). Private halves are written only through
// key-files.ts, the one write path for private keys. Readers (broker, SDK, gateway) load the pinned root key with `directoryRootKey`.
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { NatsConnection } from 'nats';
import type { Catalog } from '../catalog/types.js';
import type { BrokerConfig } from '../config/config.js';
import { fromBase64url, toBase64url } from '../crypto/base64url.js';
import {
  addClientKeys,
  addListedKeys,
  clientJwk,
  effectiveStatus,
  entryFromVersions,
  kindOf,
  operatorRootKey,
  partyOfKid,
  pinnedRootKey,
  destroyInEntry,
  prunableTokenKids,
  prunableVersions,
  revokeInEntry,
  rotateEntry,
  type ClientJwk,
  type DirectoryEntry,
  type KeyStatus,
  type OperatorRootKey,
} from '../crypto/key-directory.js';
import { parseKid } from '../crypto/keypairs.js';
import { randomBytes } from '../crypto/random.js';
import { getSodium } from '../crypto/sodium.js';
import { ensureKeyDirectoryBucket, openKeyDirectoryBucket, putEntry, readDirectory } from '../nats/key-directory.js';
import { BrokerError } from '../wire/errors.js';
import { BROKER_ID, GATEWAY_AUDIT_ID, OPERATOR_AUDIT_ID } from '../wire/ids.js';
import { pruneQuarantineKeys, rotateQuarantineKey } from './broker-secrets.js';
import { dropKeyVersions, openJson, openServiceKeyVersions, rotateKeys } from './key-files.js';
import { keyFileStore, PLAIN_KEYS, readKeyFile, writeKeyFile, type KeyProtection } from './key-protection.js';
import { prunedTokenKeyFile, readTokenKeys, rotatedTokenKeyFile, tokenKeyFile } from '../gateway/token-signer.js';

/** `<keys dir>/operator-root.private.jwk.json`: the development operator root key (Ed25519 JWK, RFC 8037; mode 0600). */
export function operatorRootFile(keysDir: string): string {
  return join(keysDir, 'operator-root.private.jwk.json');
}

/**
 * Reads the operator root key (private) from the keys dir, through `protection` (sealed like the other private key
 * files, or plain); E_SETUP_MISSING when there is none.
 */
export async function readOperatorRootKey(
  keysDir: string,
  protection: KeyProtection = PLAIN_KEYS,
): Promise<OperatorRootKey> {
  const file = operatorRootFile(keysDir);
  const json = existsSync(file) ? await openJson(file, protection) : undefined;
  if (json === undefined)
    throw new BrokerError(
      'E_SETUP_MISSING',
      `no operator root key in ${keysDir} (\`phi-broker up\` creates one for development)`,
      { path: file },
    );
  const jwk = (typeof json === 'object' && json !== null ? json : {}) as Record<string, unknown>;
  const x = typeof jwk['x'] === 'string' ? fromBase64url(jwk['x']) : undefined;
  const d = typeof jwk['d'] === 'string' ? fromBase64url(jwk['d']) : undefined;
  if (jwk['kty'] !== 'OKP' || jwk['crv'] !== 'Ed25519' || x?.length !== 32 || d?.length !== 32)
    throw new BrokerError('E_CONFIG_INVALID', `${file}: expected an Ed25519 private JWK (kty OKP, crv Ed25519, x, d)`, {
      path: file,
    });
  try {
    return operatorRootKey(x, d);
  } catch {
    throw new BrokerError('E_CONFIG_INVALID', `${file}: d does not yield x`, { path: file });
  }
}

/** Creates the development operator root key when missing. Returns whether it was created. */
export async function ensureOperatorRootKey(
  keysDir: string,
  protection: KeyProtection = PLAIN_KEYS,
): Promise<{ root: OperatorRootKey; created: boolean }> {
  if (existsSync(operatorRootFile(keysDir)))
    return { root: await readOperatorRootKey(keysDir, protection), created: false };
  const seed = Uint8Array.from(randomBytes(32));
  const publicKey = getSodium().crypto_sign_seed_keypair(seed).publicKey;
  const jwk = { kty: 'OKP', crv: 'Ed25519', alg: 'EdDSA', use: 'sig', x: toBase64url(publicKey), d: toBase64url(seed) };
  const bytes = new TextEncoder().encode(`${JSON.stringify(jwk, null, 2)}\n`);
  mkdirSync(keysDir, { recursive: true, mode: 0o700 });
  try {
    await writeKeyFile(operatorRootFile(keysDir), bytes, protection);
  } finally {
    bytes.fill(0);
    seed.fill(0);
  }
  return { root: await readOperatorRootKey(keysDir, protection), created: true };
}

/**
 * The root key readers verify under: the catalog's pinned `keyDirectory.operatorRootKey`, else (development) the
 * public half of the data dir's operator root key, with `pinned: false` so the caller says so.
 */
export async function directoryRootKey(
  catalog: Catalog,
  keysDir: string,
  protection: KeyProtection = PLAIN_KEYS,
): Promise<{ root: OperatorRootKey; pinned: boolean }> {
  const pinned = catalog.keyDirectory?.operatorRootKey.x;
  if (pinned !== undefined) return { root: pinnedRootKey(pinned), pinned: true };
  const dev = await readOperatorRootKey(keysDir, protection);
  return { root: operatorRootKey(publicBytes(dev)), pinned: false };
}

function publicBytes(root: OperatorRootKey): Uint8Array {
  const x = root.publicKey.export({ format: 'jwk' }).x;
  const bytes = x === undefined ? undefined : fromBase64url(x);
  if (bytes === undefined) throw new TypeError('operator root key without x');
  return bytes;
}

/** The signing root: the data dir's private key, which must match the catalog's pin when there is one. */
export async function signingRootKey(
  catalog: Catalog,
  keysDir: string,
  protection: KeyProtection = PLAIN_KEYS,
): Promise<OperatorRootKey> {
  const root = await readOperatorRootKey(keysDir, protection);
  const pinned = catalog.keyDirectory?.operatorRootKey.x;
  if (pinned !== undefined && pinned !== toBase64url(publicBytes(root)))
    throw new BrokerError(
      'E_KEY_DIRECTORY_INVALID',
      `the operator root key in ${keysDir} is not the one the catalog pins (keyDirectory.operatorRootKey)`,
      { path: 'keyDirectory.operatorRootKey' },
    );
  return root;
}

/** The parties whose keys the data dir may hold: the broker, the gateways' own party, the operator audit key, catalog services. */
function keyFileParties(catalog: Catalog): string[] {
  return [BROKER_ID, GATEWAY_AUDIT_ID, OPERATOR_AUDIT_ID, ...catalog.services.keys()];
}

/**
 * Publishes every party's keys from the key files (broker, gateway, operator audit key and catalog services with a key file): a party without
 * an entry gets one; a party whose key files hold versions the entry lacks gets them added. Returns the parties written.
 */
export async function publishDirectory(
  nc: NatsConnection,
  catalog: Catalog,
  keysDir: string,
  root: OperatorRootKey,
  opts: { readonly create?: boolean; readonly nowMs?: number; readonly protection?: KeyProtection } = {},
): Promise<string[]> {
  // Provisioning (the admin identity) creates the bucket; the operator only binds to it.
  const kv = opts.create === true ? await ensureKeyDirectoryBucket(nc) : await openKeyDirectoryBucket(nc);
  const nowMs = opts.nowMs ?? Date.now();
  const current = await readDirectory(kv, root);
  const written: string[] = [];
  for (const party of keyFileParties(catalog)) {
    let versions;
    try {
      versions = await openServiceKeyVersions(keysDir, party, opts.protection ?? PLAIN_KEYS);
    } catch (err) {
      if (err instanceof BrokerError && err.code === 'E_KEY_UNKNOWN') continue; // no key file: held elsewhere
      throw err;
    }
    const stored = current.get(party);
    const listed = new Set(stored?.entry.keys.map((k) => k.jwk.kid));
    if (stored !== undefined && versions.every((v) => listed.has(v.sign.kid) && listed.has(v.enc.kid))) continue;
    const isPartner = catalog.services.get(party)?.partner !== undefined;
    const kind = kindOf(
      party,
      { broker: BROKER_ID, gateway: GATEWAY_AUDIT_ID, operator: OPERATOR_AUDIT_ID },
      isPartner,
    );
    const entry = entryFromVersions(kind, versions, nowMs, stored?.entry);
    await putEntry(kv, root, entry, stored?.revision ?? 0);
    written.push(party);
  }
  if (await publishTokenKeys(kv, root, keysDir, nowMs, opts.protection ?? PLAIN_KEYS))
    if (!written.includes(GATEWAY_AUDIT_ID)) written.push(GATEWAY_AUDIT_ID);
  return written;
}

/** The gateways' token keys of `gateway.token-signing.jwk.json` (when a gateway made it) added to the gateway entry. */
async function publishTokenKeys(
  kv: Awaited<ReturnType<typeof openKeyDirectoryBucket>>,
  root: OperatorRootKey,
  keysDir: string,
  nowMs: number,
  protection: KeyProtection,
): Promise<boolean> {
  const file = tokenKeyFile(keysDir);
  if (!existsSync(file)) return false;
  const stored = (await readDirectory(kv, root)).get(GATEWAY_AUDIT_ID);
  if (stored === undefined) return false; // no gateway key file here: its entry is published where it is
  const held = await readTokenKeys(file, keyFileStore(protection));
  const next = addListedKeys(stored.entry, 'tokenKeys', held.map((k) => k.publicJwk as ClientJwk).reverse(), nowMs);
  if (next === undefined) return false;
  await putEntry(kv, root, next, stored.revision);
  return true;
}

/**
 * `keys rotate --gateway`, the token key: a new ES384 version first in `gateway.token-signing.jwk.json`, active in the
 * gateway entry's `tokenKeys`, the ones active before retiring for `overlapMs`. Undefined when no gateway made the file.
 */
async function rotateTokenKey(
  nc: NatsConnection,
  keysDir: string,
  root: OperatorRootKey,
  overlapMs: number,
  nowMs: number,
  protection: KeyProtection,
): Promise<string | undefined> {
  const file = tokenKeyFile(keysDir);
  const existing = await readKeyFile(file, protection);
  if (existing === undefined) return undefined;
  let rotated: { json: string; kid: string };
  try {
    rotated = await rotatedTokenKeyFile(file, existing);
  } finally {
    existing.fill(0);
  }
  const bytes = new TextEncoder().encode(rotated.json);
  try {
    await writeKeyFile(file, bytes, protection);
  } finally {
    bytes.fill(0);
  }
  const { entry, revision, kv } = await storedEntry(nc, root, GATEWAY_AUDIT_ID);
  const held = await readTokenKeys(file, keyFileStore(protection));
  const jwks = held.map((k) => k.publicJwk as ClientJwk).reverse();
  // Versions the entry never listed first (active), then the rotation (the new one active, the others retiring).
  const listed = addListedKeys(entry, 'tokenKeys', jwks.slice(0, -1), nowMs) ?? entry;
  const next = addListedKeys(listed, 'tokenKeys', jwks.slice(-1), nowMs, overlapMs);
  if (next !== undefined) await putEntry(kv, root, next, revision);
  return rotated.kid;
}

async function storedEntry(
  nc: NatsConnection,
  root: OperatorRootKey,
  party: string,
): Promise<{ entry: DirectoryEntry; revision: number; kv: Awaited<ReturnType<typeof openKeyDirectoryBucket>> }> {
  const kv = await openKeyDirectoryBucket(nc);
  const stored = (await readDirectory(kv, root)).get(party);
  if (stored === undefined)
    throw new BrokerError(
      'E_KEY_UNKNOWN',
      `the key directory has no entry for ${party} (run \`phi-broker keys publish\`)`,
      {
        path: party,
      },
    );
  return { ...stored, kv };
}

/**
 * Rotation: a new key version of `party` becomes current (private half written beside its others), the versions
 * active before are retiring for `overlapMs`. Returns the new signing kid and the end of the overlap.
 */
export async function rotateParty(
  nc: NatsConnection,
  keysDir: string,
  root: OperatorRootKey,
  party: string,
  overlapMs: number,
  nowMs: number = Date.now(),
  protection: KeyProtection = PLAIN_KEYS,
): Promise<{ kid: string; encKid: string; notAfter: string; tokenKid?: string; quarantineVersion?: number }> {
  const { entry, revision, kv } = await storedEntry(nc, root, party);
  const next = await rotateKeys(keysDir, party, protection);
  // The broker's quarantine key follows its epoch; written before the entry, which is what a running broker watches.
  const quarantineVersion = party === BROKER_ID ? await rotateQuarantineKey(keysDir, protection, nowMs) : undefined;
  await putEntry(kv, root, rotateEntry(entry, next, nowMs, overlapMs), revision);
  const tokenKid =
    party === GATEWAY_AUDIT_ID ? await rotateTokenKey(nc, keysDir, root, overlapMs, nowMs, protection) : undefined;
  return {
    kid: next.sign.kid,
    encKid: next.enc.kid,
    notAfter: new Date(nowMs + overlapMs).toISOString(),
    ...(tokenKid === undefined ? {} : { tokenKid }),
    ...(quarantineVersion === undefined ? {} : { quarantineVersion }),
  };
}

/** The parties whose private key file is in `keysDir`: broker, gateway, operator audit key, catalog services (others are held elsewhere). */
export async function localParties(catalog: Catalog, keysDir: string, protection: KeyProtection): Promise<string[]> {
  const out: string[] = [];
  for (const party of keyFileParties(catalog))
    try {
      await openServiceKeyVersions(keysDir, party, protection);
      out.push(party);
    } catch (err) {
      if (!(err instanceof BrokerError && err.code === 'E_KEY_UNKNOWN')) throw err;
    }
  return out;
}

/**
 * The longest a message sealed to a key version can stay stored after the version stops being sealed to: PHI_DELIVER
 * and PHI_QUARANTINE by age, PHI_INGEST by the replay window (an older backlog is rejected into quarantine).
 */
export function ciphertextRetentionMs(config: BrokerConfig): number {
  return Math.max(config.deliverMaxAgeMs, config.quarantineMaxAgeMs, config.replayWindowMs);
}

export interface PruneOptions {
  /** Destroy versions retired at least this long ago. */
  readonly olderThanMs: number;
  /** The longest retention of ciphertext sealed to these keys: a shorter olderThanMs is refused unless `force`. */
  readonly retentionMs: number;
  readonly force?: boolean;
  readonly nowMs?: number;
  readonly protection?: KeyProtection;
}

/**
 * Epoch deletion (docs/keys.md "Bounded exposure"): destroys the private halves of versions retired `olderThanMs` ago
 * and marks them `destroyedAt`; E_USAGE below `retentionMs` unless forced. Returns the kids destroyed, per party.
 */
export async function pruneParties(
  nc: NatsConnection,
  keysDir: string,
  root: OperatorRootKey,
  parties: readonly string[],
  opts: PruneOptions,
): Promise<Map<string, string[]>> {
  if (opts.olderThanMs < opts.retentionMs && opts.force !== true)
    throw new BrokerError(
      'E_USAGE',
      `--older-than: shorter than the ${opts.retentionMs} ms retention of ciphertext in PHI_INGEST, PHI_DELIVER and PHI_QUARANTINE (--force to destroy anyway)`,
      { path: '--older-than' },
    );
  const nowMs = opts.nowMs ?? Date.now();
  const protection = opts.protection ?? PLAIN_KEYS;
  const out = new Map<string, string[]>();
  for (const party of parties) {
    const { entry, revision, kv } = await storedEntry(nc, root, party);
    // The broker's quarantine key versions (broker secrets) by the same rule: no longer sealing for olderThanMs.
    const quarantine =
      party === BROKER_ID
        ? (await pruneQuarantineKeys(keysDir, protection, opts.olderThanMs, nowMs)).map(
            (v) => `${BROKER_ID}:quarantine:${v}`,
          )
        : [];
    const versions = prunableVersions(entry, opts.olderThanMs, nowMs);
    const prunable = party === GATEWAY_AUDIT_ID ? prunableTokenKids(entry, opts.olderThanMs, nowMs) : [];
    // The key files first: a crash between the two leaves keys deleted but listed as retired, never the reverse.
    const keptTokens = prunable.length === 0 ? [] : await dropTokenKeys(keysDir, prunable, protection);
    const tokenKids = prunable.filter((kid) => !keptTokens.includes(kid));
    if (versions.length > 0 || tokenKids.length > 0) {
      if (versions.length > 0) await dropKeyVersions(keysDir, party, versions, protection);
      await putEntry(kv, root, destroyInEntry(entry, versions, nowMs, tokenKids), revision);
    }
    const kids = entry.keys.map((k) => k.jwk.kid).filter((kid) => versions.includes(parseKid(kid)?.version ?? 0));
    if (kids.length + tokenKids.length + quarantine.length > 0) out.set(party, [...kids, ...tokenKids, ...quarantine]);
  }
  return out;
}

/**
 * Deletes the token keys `kids` from the gateways' token key file, when this data dir has one, except its newest
 * (it signs until the next rotation); resolves with the kids the file keeps.
 */
async function dropTokenKeys(keysDir: string, kids: readonly string[], protection: KeyProtection): Promise<string[]> {
  const file = tokenKeyFile(keysDir);
  const existing = await readKeyFile(file, protection);
  if (existing === undefined) return [];
  let pruned: { json: string; dropped: string[]; kept: string[] };
  try {
    pruned = await prunedTokenKeyFile(file, existing, kids);
  } finally {
    existing.fill(0);
  }
  if (pruned.dropped.length === 0) return pruned.kept;
  const bytes = new TextEncoder().encode(pruned.json);
  try {
    await writeKeyFile(file, bytes, protection);
  } finally {
    bytes.fill(0);
  }
  return pruned.kept;
}

/**
 * Revokes one kid at once: a party key (`<party>:<sig|enc>:<n>`) in its party's entry, or a partner's client key
 * (a kid the partner chose) in whichever entry lists it.
 */
export async function revokeKey(
  nc: NatsConnection,
  root: OperatorRootKey,
  kid: string,
  reason: string,
  nowMs: number = Date.now(),
): Promise<{ revokedAt: string; party: string }> {
  const kv = await openKeyDirectoryBucket(nc);
  const directory = await readDirectory(kv, root);
  const byKid = partyOfKid(kid);
  const owner =
    (byKid === undefined ? undefined : directory.get(byKid)) ??
    [...directory.values()].find((s) =>
      [...(s.entry.clientKeys ?? []), ...(s.entry.tokenKeys ?? [])].some((k) => k.jwk.kid === kid),
    );
  const next = owner === undefined ? undefined : revokeInEntry(owner.entry, kid, reason, nowMs);
  if (owner === undefined || next === undefined)
    throw new BrokerError(
      'E_KEY_UNKNOWN',
      byKid === undefined
        ? `no key directory entry holds a key ${kid}`
        : `the key directory entry of ${byKid} holds no key ${kid}`,
      { path: 'kid' },
    );
  await putEntry(kv, root, next, owner.revision);
  return { revokedAt: new Date(nowMs).toISOString(), party: owner.entry.party };
}

/**
 * Adds a partner's client-assertion public keys to its entry (`keys publish --partner`); `jwks` is the JSON of a JWK
 * Set file, checked key by key (E_CONFIG_INVALID naming `file` and the member). Returns the kids added.
 */
export async function publishPartnerKeys(
  nc: NatsConnection,
  catalog: Catalog,
  root: OperatorRootKey,
  partner: string,
  file: string,
  jwks: unknown,
  nowMs: number = Date.now(),
): Promise<string[]> {
  if (catalog.services.get(partner)?.partner === undefined)
    throw new BrokerError('E_USAGE', `--partner: ${partner} is not a partner in the catalog`, { path: '--partner' });
  const keys = (typeof jwks === 'object' && jwks !== null ? (jwks as { keys?: unknown }).keys : undefined) as unknown;
  if (!Array.isArray(keys) || keys.length === 0)
    throw new BrokerError('E_CONFIG_INVALID', `${file}: keys: expected a JWK Set with at least one key`, {
      path: file,
    });
  const fail = (detail: string): BrokerError =>
    new BrokerError('E_CONFIG_INVALID', `${file}: ${detail}`, { path: file });
  const parsed: ClientJwk[] = keys.map((k, i) => {
    if (typeof k !== 'object' || k === null) throw fail(`keys[${i}]: expected an object`);
    return clientJwk(partner, `keys[${i}]`, k as Record<string, unknown>, fail);
  });
  if (new Set(parsed.map((k) => k.kid)).size !== parsed.length) throw fail('keys: a kid is listed twice');
  const kv = await openKeyDirectoryBucket(nc);
  const stored = (await readDirectory(kv, root)).get(partner);
  const previous: DirectoryEntry = stored?.entry ?? {
    party: partner,
    kind: 'partner',
    seq: 0,
    issuedAt: new Date(nowMs).toISOString(),
    keys: [],
  };
  const next = addClientKeys(previous, parsed, nowMs);
  if (next === undefined) return [];
  await putEntry(kv, root, next, stored?.revision ?? 0);
  const before = new Set(previous.clientKeys?.map((k) => k.jwk.kid));
  return parsed.map((k) => k.kid).filter((kid) => !before.has(kid));
}

export interface ListedKey {
  readonly party: string;
  readonly kind: string;
  readonly kid: string;
  readonly use: string;
  readonly status: KeyStatus;
  readonly created: string;
  readonly notAfter?: string;
  readonly retired?: string;
  readonly revokedAt?: string;
  readonly reason?: string;
  readonly destroyedAt?: string;
}

/** Every party's keys with their status at `nowMs` (a retiring key past its notAfter shows as retired). */
export async function listDirectory(
  nc: NatsConnection,
  root: OperatorRootKey,
  nowMs: number = Date.now(),
): Promise<ListedKey[]> {
  const kv = await openKeyDirectoryBucket(nc);
  const out: ListedKey[] = [];
  for (const { entry } of (await readDirectory(kv, root)).values())
    for (const k of [...entry.keys, ...(entry.clientKeys ?? []), ...(entry.tokenKeys ?? [])]) {
      const status = effectiveStatus(k, nowMs);
      out.push({
        party: entry.party,
        kind: entry.kind,
        kid: k.jwk.kid,
        use: k.jwk.use ?? 'sig',
        status,
        created: k.created,
        ...(k.notAfter === undefined ? {} : { notAfter: k.notAfter }),
        ...(status === 'retired' && k.status === 'retiring' ? { retired: k.notAfter as string } : {}),
        ...(k.retired === undefined ? {} : { retired: k.retired }),
        ...(k.revokedAt === undefined ? {} : { revokedAt: k.revokedAt }),
        ...(k.reason === undefined ? {} : { reason: k.reason }),
        ...(k.destroyedAt === undefined ? {} : { destroyedAt: k.destroyedAt }),
      });
    }
  return out;
}
