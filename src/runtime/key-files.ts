// Key files (I/O edge of src/crypto): one private JWK Set per service, `<dir>/<service>.private.jwk.json`, mode 0600,
// and one public JWK Set of every service, `<dir>/jwks.json` (RFC 7517 section 5, RFC 8037 OKP keys). The synchronous
// functions read and write plain (development) files; the `open*`/`ensureKeys` ones go through a KeyProtection
// (key-protection.ts), which seals private files at rest. They run once at start-up, before any message.
import { chmodSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { SERVICE_ID_PATTERN } from '../wire/ids.js';
import { BrokerError } from '../wire/errors.js';
import { isProtectedKeyFile } from '../crypto/key-envelope.js';
import { readKeyFile, writeKeyFile, type KeyProtection } from './key-protection.js';
import { privateJwks, publicJwk, recordsFromJwks, serviceKeysFromJwks } from '../crypto/jwk.js';
import {
  generateServiceKeys,
  keysVersion,
  publicRecords,
  type PublicKeyRecord,
  type ServiceKeys,
} from '../crypto/keypairs.js';

export function privateKeyFile(dir: string, serviceId: string): string {
  if (!SERVICE_ID_PATTERN.test(serviceId)) throw new TypeError('service id must match SERVICE_ID_PATTERN');
  return join(dir, `${serviceId}.private.jwk.json`);
}

export function jwksFile(dir: string): string {
  return join(dir, 'jwks.json');
}

function writeAtomic(file: string, text: string, mode: number): void {
  const tmp = `${file}.${process.pid}.${Date.now()}.tmp`;
  writeFileSync(tmp, text, { mode, flag: 'wx' });
  chmodSync(tmp, mode);
  renameSync(tmp, file);
}

function readJson(file: string): unknown {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
  const json = parseJson(file, text);
  if (isProtectedKeyFile(json))
    throw new BrokerError(
      'E_KEY_PROTECTION',
      `${file} is encrypted at rest: open it through its key provider (--key-provider, docs/keys-at-rest.md)`,
      { path: file },
    );
  return json;
}

function parseJson(file: string, text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new BrokerError('E_CONFIG_INVALID', `${file}: not well-formed JSON`, { path: file });
  }
}

/** A private key file's JSON through `protection`; undefined when it does not exist. */
export async function openJson(file: string, protection: KeyProtection): Promise<unknown> {
  const bytes = await readKeyFile(file, protection);
  if (bytes === undefined) return undefined;
  try {
    return parseJson(file, new TextDecoder().decode(bytes));
  } finally {
    bytes.fill(0);
  }
}

/** Writes a plain (development) private key file as JSON (mode 0600). */
export function writePlainKeyFile(file: string, json: unknown): void {
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  writeAtomic(file, `${JSON.stringify(json, null, 2)}\n`, 0o600);
}

/** Writes a service's private key file (mode 0600); several versions are written current first. */
export function writeServiceKeys(dir: string, keys: ServiceKeys | readonly ServiceKeys[]): void {
  const list = Array.isArray(keys) ? (keys as readonly ServiceKeys[]) : [keys as ServiceKeys];
  const first = list[0];
  if (first === undefined || list.some((k) => k.service !== first.service))
    throw new TypeError('writeServiceKeys: one or more versions of one service');
  writePlainKeyFile(privateKeyFile(dir, first.service), privateJwks(list));
}

/** Every key version of a service, highest first; E_KEY_UNKNOWN when the file does not exist. */
export function readServiceKeyVersions(dir: string, serviceId: string): ServiceKeys[] {
  const file = privateKeyFile(dir, serviceId);
  const json = readJson(file);
  if (json === undefined)
    throw new BrokerError('E_KEY_UNKNOWN', `no private key file for service ${serviceId}`, { path: file });
  return serviceKeysFromJwks(file, serviceId, json);
}

/** The current (highest) key version of a service. */
export function readServiceKeys(dir: string, serviceId: string): ServiceKeys {
  return readServiceKeyVersions(dir, serviceId)[0] as ServiceKeys;
}

export function writeJwks(dir: string, records: readonly PublicKeyRecord[]): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const sorted = [...records].sort((a, b) => (a.kid < b.kid ? -1 : a.kid > b.kid ? 1 : 0));
  writeAtomic(jwksFile(dir), `${JSON.stringify({ keys: sorted.map(publicJwk) }, null, 2)}\n`, 0o644);
}

/** Public keys from `<dir>/jwks.json`; an empty list when the file does not exist. */
export function readJwks(dir: string): PublicKeyRecord[] {
  const file = jwksFile(dir);
  const json = readJson(file);
  return json === undefined ? [] : recordsFromJwks(file, json);
}

function mergeRecords(into: Map<string, PublicKeyRecord>, records: readonly PublicKeyRecord[]): void {
  for (const r of records) into.set(r.kid, r);
}

/** A party's private key file holding `versions`, through `protection` (sealed, or plain in plain mode). */
async function writeKeyVersions(
  dir: string,
  serviceId: string,
  versions: readonly ServiceKeys[],
  protection: KeyProtection,
): Promise<void> {
  const bytes = new TextEncoder().encode(`${JSON.stringify(privateJwks(versions), null, 2)}\n`);
  try {
    await writeKeyFile(privateKeyFile(dir, serviceId), bytes, protection);
  } finally {
    bytes.fill(0);
  }
}

/**
 * Adds a new key version for a service (rotation) through `protection`: written first in its private file (sealed
 * when the data dir's keys are), and added to jwks.json.
 */
export async function rotateKeys(dir: string, serviceId: string, protection: KeyProtection): Promise<ServiceKeys> {
  const versions = await openServiceKeyVersions(dir, serviceId, protection);
  const next = generateServiceKeys(serviceId, keysVersion(versions[0] as ServiceKeys) + 1);
  await writeKeyVersions(dir, serviceId, [next, ...versions], protection);
  const jwks = new Map<string, PublicKeyRecord>();
  mergeRecords(jwks, readJwks(dir));
  mergeRecords(jwks, publicRecords(next));
  writeJwks(dir, [...jwks.values()]);
  return next;
}

/**
 * Deletes key versions of a party (`keys prune`, docs/keys.md "Bounded exposure"): its private file is rewritten
 * through `protection` without them, and jwks.json without their public halves. The current (highest) version is
 * never deleted. Returns the versions deleted.
 */
export async function dropKeyVersions(
  dir: string,
  serviceId: string,
  versions: readonly number[],
  protection: KeyProtection,
): Promise<number[]> {
  const held = await openServiceKeyVersions(dir, serviceId, protection);
  const current = keysVersion(held[0] as ServiceKeys);
  const drop = held.filter((v) => versions.includes(keysVersion(v)) && keysVersion(v) !== current);
  if (drop.length === 0) return [];
  const keep = held.filter((v) => !drop.includes(v));
  await writeKeyVersions(dir, serviceId, keep, protection);
  const dropped = new Set(drop.flatMap((v) => [v.sign.kid, v.enc.kid]));
  writeJwks(
    dir,
    readJwks(dir).filter((r) => !dropped.has(r.kid)),
  );
  return drop.map(keysVersion);
}

export interface DevKeys {
  /** Services whose keys were created by this call. */
  readonly created: string[];
  /** Every listed service's key versions, highest first. */
  readonly keys: ReadonlyMap<string, ServiceKeys[]>;
  /** Every public key in jwks.json after the call. */
  readonly jwks: PublicKeyRecord[];
}

/** Creates version-1 keys for every listed service that has none, keeps existing ones, and rewrites jwks.json. */
export function ensureDevKeys(dir: string, serviceIds: readonly string[]): DevKeys {
  const created: string[] = [];
  const keys = new Map<string, ServiceKeys[]>();
  for (const id of serviceIds) {
    const json = readJson(privateKeyFile(dir, id));
    if (json === undefined) {
      const fresh = generateServiceKeys(id, 1);
      writeServiceKeys(dir, fresh);
      keys.set(id, [fresh]);
      created.push(id);
    } else {
      keys.set(id, serviceKeysFromJwks(privateKeyFile(dir, id), id, json));
    }
  }
  const jwks = new Map<string, PublicKeyRecord>();
  mergeRecords(jwks, readJwks(dir));
  for (const versions of keys.values()) for (const v of versions) mergeRecords(jwks, publicRecords(v));
  const all = [...jwks.values()];
  writeJwks(dir, all);
  return { created, keys, jwks: all };
}

/** Every key version of a service through `protection`, highest first; E_KEY_UNKNOWN when there is no file. */
export async function openServiceKeyVersions(
  dir: string,
  serviceId: string,
  protection: KeyProtection,
): Promise<ServiceKeys[]> {
  const file = privateKeyFile(dir, serviceId);
  const json = await openJson(file, protection);
  if (json === undefined)
    throw new BrokerError('E_KEY_UNKNOWN', `no private key file for service ${serviceId}`, { path: file });
  return serviceKeysFromJwks(file, serviceId, json);
}

/** The current (highest) key version of a service, through `protection`. */
export async function openServiceKeys(dir: string, serviceId: string, protection: KeyProtection): Promise<ServiceKeys> {
  return (await openServiceKeyVersions(dir, serviceId, protection))[0] as ServiceKeys;
}

/** ensureDevKeys through `protection`: missing keys are created sealed (or plain in plain mode). */
export async function ensureKeys(
  dir: string,
  serviceIds: readonly string[],
  protection: KeyProtection,
): Promise<DevKeys> {
  const created: string[] = [];
  const keys = new Map<string, ServiceKeys[]>();
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  for (const id of serviceIds) {
    const file = privateKeyFile(dir, id);
    const json = await openJson(file, protection);
    if (json === undefined) {
      const fresh = generateServiceKeys(id, 1);
      await writeKeyFile(
        file,
        new TextEncoder().encode(`${JSON.stringify(privateJwks([fresh]), null, 2)}\n`),
        protection,
      );
      keys.set(id, [fresh]);
      created.push(id);
    } else {
      keys.set(id, serviceKeysFromJwks(file, id, json));
    }
  }
  const jwks = new Map<string, PublicKeyRecord>();
  mergeRecords(jwks, readJwks(dir));
  for (const versions of keys.values()) for (const v of versions) mergeRecords(jwks, publicRecords(v));
  const all = [...jwks.values()];
  writeJwks(dir, all);
  return { created, keys, jwks: all };
}
