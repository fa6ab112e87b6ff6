// The broker's secrets file in the data dir (src/crypto/broker-secrets.ts says what they are): generated once by the
// broker, file mode 0600, never logged; the quarantine key gains a version per `keys rotate --broker` and loses its
// old ones to `keys prune` (docs/keys.md "The broker secrets", which gives the format). Sealed at rest under a key provider
// (key-protection.ts); ensureBrokerSecrets is the plain (development) form.
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import type { BrokerSecrets, QuarantineKeyVersion } from '../crypto/broker-secrets.js';
import { isProtectedKeyFile } from '../crypto/key-envelope.js';
import type { BrokerConfig } from '../config/config.js';
import { BrokerError } from '../wire/errors.js';
import { layout } from './data-dir.js';
import {
  configuredKeyProtection,
  createKeyFile,
  readKeyFile,
  writeKeyFile,
  type KeyProtection,
} from './key-protection.js';

const key = z.string().length(43);
const iso = z.string().datetime();

/** The first format: one quarantine key, never rotated (read as version 1; upgraded when the file is written). */
const v1Schema = z.strictObject({ v: z.literal(1), quarantineKey: key, pseudonymKey: key });

const versionSchema = z.union([
  z.strictObject({ version: z.number().int().min(1), created: iso, key }),
  z.strictObject({ version: z.number().int().min(1), created: iso, destroyed: iso }),
]);

const v2Schema = z
  .strictObject({ v: z.literal(2), pseudonymKey: key, quarantineKeys: z.array(versionSchema).min(1) })
  .refine((f) => 'key' in (f.quarantineKeys[0] ?? {}), { message: 'the current quarantine key is destroyed' })
  .refine((f) => f.quarantineKeys.every((k, i, all) => i === 0 || (all[i - 1]?.version ?? 0) > k.version), {
    message: 'quarantine key versions must be unique, newest first',
  });

type FileV2 = z.output<typeof v2Schema>;

export function secretsFile(keysDir: string): string {
  return join(keysDir, 'broker.secrets.json');
}

const b64 = (bytes: Uint8Array): string => Buffer.from(bytes).toString('base64url');

function freshFile(nowMs: number): FileV2 {
  return {
    v: 2,
    pseudonymKey: b64(randomBytes(32)),
    quarantineKeys: [{ version: 1, created: new Date(nowMs).toISOString(), key: b64(randomBytes(32)) }],
  };
}

/** The file's content as v2; a v1 file's single key becomes version 1, created when the file was written. */
function parseFile(file: string, text: string): { content: FileV2; upgraded: boolean } {
  // Never echo the file's content in an error: it holds the quarantine and pseudonym keys.
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  if (isProtectedKeyFile(json))
    throw new BrokerError(
      'E_KEY_PROTECTION',
      `${file} is encrypted at rest: open it through its key provider (--key-provider, docs/keys-at-rest.md)`,
      { path: file },
    );
  const v2 = v2Schema.safeParse(json);
  if (v2.success) return { content: v2.data, upgraded: false };
  const v1 = v1Schema.safeParse(json);
  if (v1.success) {
    const created = new Date(statSync(file).mtimeMs).toISOString();
    return {
      content: {
        v: 2,
        pseudonymKey: v1.data.pseudonymKey,
        quarantineKeys: [{ version: 1, created, key: v1.data.quarantineKey }],
      },
      upgraded: true,
    };
  }
  throw new BrokerError(
    'E_CONFIG_INVALID',
    `${file} is not a phi-broker secrets file (v2: pseudonymKey, quarantineKeys; or v1: quarantineKey, pseudonymKey)`,
  );
}

function redacted<T extends object>(value: T, label: string): Readonly<T> {
  Object.defineProperty(value, 'toJSON', { value: () => label });
  return Object.freeze(value);
}

function toSecrets(content: FileV2): BrokerSecrets {
  const versions: QuarantineKeyVersion[] = content.quarantineKeys.map((k) =>
    redacted(
      'key' in k
        ? { version: k.version, created: k.created, key: new Uint8Array(Buffer.from(k.key, 'base64url')) }
        : { version: k.version, created: k.created, destroyed: k.destroyed },
      '[quarantine key]',
    ),
  );
  const current = versions[0] as QuarantineKeyVersion;
  return redacted(
    {
      quarantineKey: current.key as Uint8Array,
      quarantineVersion: current.version,
      quarantineKeys: Object.freeze(versions),
      pseudonymKey: new Uint8Array(Buffer.from(content.pseudonymKey, 'base64url')),
    },
    '[broker secrets]',
  );
}

/** The plain (development) secrets file: created when missing; a v1 file is read as it is. */
export function ensureBrokerSecrets(keysDir: string): BrokerSecrets {
  const file = secretsFile(keysDir);
  if (!existsSync(file)) {
    mkdirSync(keysDir, { recursive: true, mode: 0o700 });
    writeFileSync(file, JSON.stringify(freshFile(Date.now())), { mode: 0o600, flag: 'wx' });
  }
  return toSecrets(parseFile(file, readFileSync(file, 'utf8')).content);
}

/** The file's content through `protection` (undefined when there is none); the decrypted bytes are zeroed. */
async function readContent(
  file: string,
  protection: KeyProtection,
): Promise<{ content: FileV2; upgraded: boolean } | undefined> {
  const bytes = await readKeyFile(file, protection);
  if (bytes === undefined) return undefined;
  try {
    return parseFile(file, new TextDecoder().decode(bytes));
  } finally {
    bytes.fill(0);
  }
}

async function writeContent(file: string, content: FileV2, protection: KeyProtection): Promise<void> {
  const bytes = new TextEncoder().encode(JSON.stringify(content));
  try {
    await writeKeyFile(file, bytes, protection);
  } finally {
    bytes.fill(0);
  }
}

/**
 * The secrets through `protection`: created (sealed unless plain) when missing and `create`. The broker opens with
 * `create`, which also rewrites a v1 file as v2 in place (same keys, same protection).
 */
export async function openBrokerSecrets(
  keysDir: string,
  protection: KeyProtection,
  create: true,
): Promise<BrokerSecrets>;
export async function openBrokerSecrets(
  keysDir: string,
  protection: KeyProtection,
  create: boolean,
): Promise<BrokerSecrets | undefined>;
export async function openBrokerSecrets(
  keysDir: string,
  protection: KeyProtection,
  create: boolean,
): Promise<BrokerSecrets | undefined> {
  const file = secretsFile(keysDir);
  let read = await readContent(file, protection);
  if (read === undefined) {
    if (!create) return undefined;
    mkdirSync(keysDir, { recursive: true, mode: 0o700 });
    const bytes = new TextEncoder().encode(JSON.stringify(freshFile(Date.now())));
    await createKeyFile(file, bytes, protection);
    bytes.fill(0);
    read = await readContent(file, protection);
    if (read === undefined) throw new BrokerError('E_INTERNAL', `${file} vanished after it was created`);
  }
  if (create && read.upgraded) await writeContent(file, read.content, protection);
  return toSecrets(read.content);
}

/**
 * `keys rotate --broker`: a new quarantine key version becomes current (the previous ones stay to open what they
 * sealed). Undefined when the data dir has no secrets file (no broker ever started on it).
 */
export async function rotateQuarantineKey(
  keysDir: string,
  protection: KeyProtection,
  nowMs: number = Date.now(),
): Promise<number | undefined> {
  const file = secretsFile(keysDir);
  const read = await readContent(file, protection);
  if (read === undefined) return undefined;
  const { content } = read;
  const version = (content.quarantineKeys[0]?.version ?? 0) + 1;
  const next = { version, created: new Date(nowMs).toISOString(), key: b64(randomBytes(32)) };
  await writeContent(file, { ...content, quarantineKeys: [next, ...content.quarantineKeys] }, protection);
  return version;
}

/**
 * `keys prune`: destroys the quarantine key versions that stopped sealing (the next version was created) at least
 * `olderThanMs` before `nowMs`; the caller enforces the retention rule. Returns the versions destroyed.
 */
export async function pruneQuarantineKeys(
  keysDir: string,
  protection: KeyProtection,
  olderThanMs: number,
  nowMs: number = Date.now(),
): Promise<number[]> {
  const file = secretsFile(keysDir);
  const read = await readContent(file, protection);
  if (read === undefined) return [];
  const { content } = read;
  const destroyed: number[] = [];
  const destroyedAt = new Date(nowMs).toISOString();
  const keys = content.quarantineKeys.map((k, i) => {
    const successor = content.quarantineKeys[i - 1];
    if (!('key' in k) || successor === undefined || Date.parse(successor.created) > nowMs - olderThanMs) return k;
    destroyed.push(k.version);
    return { version: k.version, created: k.created, destroyed: destroyedAt };
  });
  if (destroyed.length > 0 || read.upgraded) await writeContent(file, { ...content, quarantineKeys: keys }, protection);
  return destroyed;
}

/** For an operator command (consent, disclosures): read, never created — fresh secrets would compute pseudonyms
 * no broker uses, and find or file nothing. */
export async function existingBrokerSecrets(config: BrokerConfig): Promise<BrokerSecrets> {
  const keys = layout(config).keys;
  const secrets = await openBrokerSecrets(keys, configuredKeyProtection(config), false);
  if (secrets === undefined) {
    throw new BrokerError(
      'E_CONFIG_INVALID',
      `no broker secrets in ${keys}: run this on the broker's data dir (--data-dir)`,
    );
  }
  return secrets;
}
