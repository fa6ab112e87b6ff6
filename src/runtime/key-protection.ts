// Key files at rest (docs/keys-at-rest.md): the key provider a start uses (config keyProvider; the passphrase from
// PHI_BROKER_KEY_PASSPHRASE or PHI_BROKER_KEY_PASSPHRASE_FILE, the key file from keyProviderFile) and reading,
// writing and migrating private key files through it. `plain` is the development mode: plain JWK files, said so at
// start-up; any other start refuses a plain private key file (E_KEY_PROTECTION).
import {
  closeSync,
  fsyncSync,
  linkSync,
  openSync,
  readFileSync,
  readdirSync,
  renameSync,
  statSync,
  unlinkSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { basename, dirname, join } from 'node:path';
import type { BrokerConfig } from '../config/config.js';
import type { Logger } from '../log/log.js';
import { Gauge, type Registry } from 'prom-client';
import {
  isProtectedKeyFile,
  keyFileProvider,
  openKeyFile,
  passphraseProvider,
  sealKeyFile,
  type KeyFileStore,
  type KeyProvider,
} from '../crypto/key-envelope.js';
import { BrokerError, isBrokerError } from '../wire/errors.js';

export const PASSPHRASE_ENV = 'PHI_BROKER_KEY_PASSPHRASE';
export const PASSPHRASE_FILE_ENV = 'PHI_BROKER_KEY_PASSPHRASE_FILE';
/** Shorter passphrases are refused: Argon2id slows guessing, it does not make a short passphrase strong. */
export const MIN_PASSPHRASE_CHARS = 12;

/** How this process reads and writes private key files: plain (development) or through a provider. */
export interface KeyProtection {
  /** `plain`, or the provider's name (`passphrase`, `keyfile`, or a plugged-in one's). */
  readonly mode: string;
  /** Undefined in `plain` mode. */
  readonly provider: KeyProvider | undefined;
}

export const PLAIN_KEYS: KeyProtection = Object.freeze({ mode: 'plain', provider: undefined });

function protectionError(message: string, path?: string): BrokerError {
  return new BrokerError('E_KEY_PROTECTION', message, path === undefined ? undefined : { path });
}

function passphraseFromEnv(env: NodeJS.ProcessEnv): Uint8Array {
  const direct = env[PASSPHRASE_ENV];
  const file = env[PASSPHRASE_FILE_ENV];
  // Out of the environment once read: nats-server and any other child inherits the environment.
  delete env[PASSPHRASE_ENV];
  if (direct !== undefined && file !== undefined)
    throw protectionError(`set one of ${PASSPHRASE_ENV} and ${PASSPHRASE_FILE_ENV}, not both`);
  let text: string;
  if (file !== undefined) {
    try {
      text = readFileSync(file, 'utf8').replace(/\r?\n$/, '');
    } catch (err) {
      throw protectionError(
        `${PASSPHRASE_FILE_ENV}: cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? 'error'})`,
        file,
      );
    }
  } else if (direct !== undefined) {
    text = direct;
  } else {
    throw protectionError(`the passphrase key provider needs ${PASSPHRASE_ENV} or ${PASSPHRASE_FILE_ENV}`);
  }
  if ([...text].length < MIN_PASSPHRASE_CHARS)
    throw protectionError(`the key passphrase must have at least ${MIN_PASSPHRASE_CHARS} characters`);
  return new TextEncoder().encode(text);
}

/** Reads a `keyfile` provider's key: 32 raw bytes, or their base64/base64url text; the file must be mode 0600 or 0400. */
export function readProviderKeyFile(file: string | undefined): Uint8Array {
  if (file === undefined)
    throw protectionError('the keyfile key provider needs keyProviderFile (PHI_BROKER_KEY_PROVIDER_FILE)');
  let raw: Buffer;
  try {
    if ((statSync(file).mode & 0o077) !== 0)
      throw protectionError(`${file} is readable or writable by group or others: chmod 600 it`, file);
    raw = readFileSync(file);
  } catch (err) {
    if (isBrokerError(err)) throw err;
    throw protectionError(
      `cannot read the provider key file ${file} (${(err as NodeJS.ErrnoException).code ?? 'error'})`,
      file,
    );
  }
  if (raw.length === 32) return new Uint8Array(raw);
  const text = raw.toString('latin1').trim();
  const decoded = /^[A-Za-z0-9+/_-]{43}=?$/.test(text) ? Buffer.from(text, 'base64') : undefined;
  raw.fill(0);
  if (decoded?.length !== 32)
    throw protectionError(`${file} must hold a 32-byte key (raw, or as base64/base64url text)`, file);
  return new Uint8Array(decoded);
}

/** The provider `mode` names, set up from the environment and the configuration. */
export function keyProtection(
  mode: BrokerConfig['keyProvider'],
  config: Pick<BrokerConfig, 'keyProviderFile' | 'keyKdf'>,
  env: NodeJS.ProcessEnv = process.env,
): KeyProtection {
  if (mode === 'plain') return PLAIN_KEYS;
  if (mode === 'passphrase') {
    const secret = passphraseFromEnv(env);
    try {
      return Object.freeze({ mode, provider: passphraseProvider(secret, config.keyKdf) });
    } finally {
      secret.fill(0);
    }
  }
  const key = readProviderKeyFile(config.keyProviderFile);
  try {
    return Object.freeze({ mode, provider: keyFileProvider(key) });
  } finally {
    key.fill(0);
  }
}

const configured = new Map<string, KeyProtection>();

/**
 * The protection a configuration asks for (config.keyProvider), set up once per process: the passphrase leaves the
 * environment when first read, and the provider keeps its derived keys for later files.
 */
export function configuredKeyProtection(config: BrokerConfig): KeyProtection {
  const id = `${config.keyProvider}|${config.keyProviderFile ?? ''}|${config.keyKdf}`;
  let p = configured.get(id);
  if (p === undefined) {
    p = keyProtection(config.keyProvider, config, process.env);
    configured.set(id, p);
  }
  return p;
}

/** Adds the file to a provider's error, which cannot know it. */
function atFile(file: string, err: unknown): unknown {
  if (!isBrokerError(err) || err.path !== undefined) return err;
  return new BrokerError(err.code, `${file}: ${err.message}`, { path: file });
}

function readText(file: string): string | undefined {
  try {
    return readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
}

/**
 * A private key file's bytes (undefined when it does not exist), opened through the provider when protected.
 * A plain file under a provider, or a protected one in plain mode, is E_KEY_PROTECTION.
 */
export async function readKeyFile(file: string, protection: KeyProtection): Promise<Uint8Array | undefined> {
  const text = readText(file);
  if (text === undefined) return undefined;
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  if (!isProtectedKeyFile(json)) {
    if (protection.provider !== undefined)
      throw protectionError(
        `${file} holds a plain private key and the key provider is ${protection.mode}: run \`phi-broker keys protect --provider ${protection.mode}\` first`,
        file,
      );
    return new TextEncoder().encode(text);
  }
  if (protection.provider === undefined)
    throw protectionError(
      `${file} is encrypted at rest and the key provider is plain: start with --key-provider ${String((json as { kek?: { provider?: unknown } }).kek?.provider ?? 'passphrase')}`,
      file,
    );
  try {
    return await openKeyFile(file, json, protection.provider);
  } catch (err) {
    throw atFile(file, err);
  }
}

async function fileBytes(bytes: Uint8Array, protection: KeyProtection): Promise<Uint8Array> {
  if (protection.provider === undefined) return bytes;
  return new TextEncoder().encode(await sealKeyFile(bytes, protection.provider));
}

function tmpName(file: string): string {
  return join(dirname(file), `.${basename(file)}.${process.pid}.${Date.now()}.tmp`);
}

/** Writes `bytes` to a temporary file (mode 0600) and syncs it. */
function writeTmp(file: string, bytes: Uint8Array): string {
  const tmp = tmpName(file);
  writeFileSync(tmp, bytes, { mode: 0o600, flag: 'wx' });
  const fd = openSync(tmp, 'r+');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  return tmp;
}

/** Writes a private key file (sealed unless plain), replacing any file there by an atomic rename. */
export async function writeKeyFile(file: string, bytes: Uint8Array, protection: KeyProtection): Promise<void> {
  const tmp = writeTmp(file, await fileBytes(bytes, protection));
  renameSync(tmp, file);
}

/** Creates a private key file only when none exists (a hard link fails on an existing name); false when one did. */
export async function createKeyFile(file: string, bytes: Uint8Array, protection: KeyProtection): Promise<boolean> {
  const tmp = writeTmp(file, await fileBytes(bytes, protection));
  try {
    linkSync(tmp, file);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  } finally {
    unlinkSync(tmp);
  }
}

/** The KeyFileStore view of a protection, for code outside src/runtime (the gateway's token key). */
export function keyFileStore(protection: KeyProtection): KeyFileStore {
  return {
    read: (file) => readKeyFile(file, protection),
    create: (file, bytes) => createKeyFile(file, bytes, protection),
  };
}

/** Every private key file in a keys dir: each `*.json` but the public `jwks.json`. */
export function privateKeyFiles(keysDir: string): string[] {
  let names: string[];
  try {
    names = readdirSync(keysDir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
  return names
    .filter((n) => n.endsWith('.json') && n !== 'jwks.json' && !n.startsWith('.'))
    .sort()
    .map((n) => join(keysDir, n));
}

const WIPE_SUFFIX = '.plain-wipe';

/** Zeroes a file in place, then removes it. */
function wipeFile(file: string): void {
  overwriteInPlace(file);
  unlinkSync(file);
}

/** Overwrites a file's bytes with zeros in place and syncs, so its old content is not left in the freed blocks. */
function overwriteInPlace(file: string): void {
  const size = statSync(file).size;
  const fd = openSync(file, 'r+');
  try {
    const zeros = Buffer.alloc(Math.min(size, 64 * 1024));
    for (let at = 0; at < size; at += zeros.length) writeSync(fd, zeros, 0, Math.min(zeros.length, size - at), at);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

export interface ProtectResult {
  /** Files sealed by this call. */
  readonly protected: string[];
  /** Files that were sealed already (by this provider: each was opened to check). */
  readonly already: string[];
}

/**
 * Seals every plain private key file of a keys dir with `provider` (docs/keys-at-rest.md, migration): the sealed copy
 * is written and synced beside it and renamed over the plain file, whose old inode is then overwritten with zeros.
 */
export async function protectKeysDir(keysDir: string, provider: KeyProvider): Promise<ProtectResult> {
  // Plain copies an interrupted run left to wipe.
  for (const name of readdirSync(keysDir))
    if (name.startsWith('.') && name.endsWith(WIPE_SUFFIX)) wipeFile(join(keysDir, name));
  const sealed: string[] = [];
  const already: string[] = [];
  const protection: KeyProtection = { mode: provider.name, provider };
  for (const file of privateKeyFiles(keysDir)) {
    const text = readText(file);
    if (text === undefined) continue;
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      throw new BrokerError('E_CONFIG_INVALID', `${file}: not well-formed JSON`, { path: file });
    }
    if (isProtectedKeyFile(json)) {
      await readKeyFile(file, protection); // refuses a file this provider cannot open
      already.push(file);
      continue;
    }
    const tmp = writeTmp(file, new TextEncoder().encode(await sealKeyFile(new TextEncoder().encode(text), provider)));
    // A second name keeps the plain inode reachable until it is zeroed: at every instant the key file's name is the
    // plain or the sealed file, never a zeroed one.
    const wipe = join(dirname(file), `.${basename(file)}${WIPE_SUFFIX}`);
    linkSync(file, wipe);
    renameSync(tmp, file);
    wipeFile(wipe);
    sealed.push(file);
  }
  const dirFd = openSync(keysDir, 'r');
  try {
    fsyncSync(dirFd);
  } finally {
    closeSync(dirFd);
  }
  return { protected: sealed, already };
}

/** How the ready line and status name the protection: `plain (DEVELOPMENT)` or `sealed (<provider>)`. */
export function keysAtRest(protection: KeyProtection): string {
  return protection.provider === undefined ? 'plain (DEVELOPMENT)' : `sealed (${protection.mode})`;
}

/** The one start-up log line on key protection: a warning in plain (development) mode. */
export function announceKeyProtection(protection: KeyProtection, logger: Logger): void {
  if (protection.provider === undefined)
    logger.warn(
      { event: 'keys.plain', keyProvider: 'plain' },
      'DEVELOPMENT KEYS: private key files are plain JWK on disk; start with --key-provider passphrase|keyfile in production (docs/keys-at-rest.md)',
    );
  else logger.info({ event: 'keys.sealed', keyProvider: protection.mode }, 'private key files sealed at rest');
}

/** `phi_broker_keys_sealed{provider}` on /metrics: 1 when the private key files are sealed, 0 in plain mode. */
export function registerKeyProtectionMetric(registry: Registry, protection: KeyProtection): void {
  new Gauge({
    name: 'phi_broker_keys_sealed',
    help: 'Whether the private key files are sealed at rest (1) or plain development files (0), by key provider.',
    labelNames: ['provider'],
    registers: [registry],
  }).set({ provider: protection.mode }, protection.provider === undefined ? 0 : 1);
}
