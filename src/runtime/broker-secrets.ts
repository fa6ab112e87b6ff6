// The broker's secrets file in the data dir (src/crypto/broker-secrets.ts says what they are): generated once by the
// broker, file mode 0600, never logged; operator commands only read it. Sealed at rest under a key provider
// (key-protection.ts); ensureBrokerSecrets is the plain (development) form.
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import type { BrokerSecrets } from '../crypto/broker-secrets.js';
import { isProtectedKeyFile } from '../crypto/key-envelope.js';
import type { BrokerConfig } from '../config/config.js';
import { BrokerError } from '../wire/errors.js';
import { layout } from './data-dir.js';
import { configuredKeyProtection, createKeyFile, readKeyFile, type KeyProtection } from './key-protection.js';

const fileSchema = z.strictObject({
  v: z.literal(1),
  quarantineKey: z.string().length(43),
  pseudonymKey: z.string().length(43),
});

export function secretsFile(keysDir: string): string {
  return join(keysDir, 'broker.secrets.json');
}

function freshContent(): string {
  return JSON.stringify({
    v: 1,
    quarantineKey: randomBytes(32).toString('base64url'),
    pseudonymKey: randomBytes(32).toString('base64url'),
  });
}

function parseSecrets(file: string, text: string): BrokerSecrets {
  // Never echo the file's content in an error: it holds the quarantine and pseudonym keys.
  let parsed: z.output<typeof fileSchema>;
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
  try {
    parsed = fileSchema.parse(json);
  } catch {
    throw new BrokerError(
      'E_CONFIG_INVALID',
      `${file} is not a phi-broker secrets file (v1: quarantineKey, pseudonymKey)`,
    );
  }
  const secrets = {
    quarantineKey: new Uint8Array(Buffer.from(parsed.quarantineKey, 'base64url')),
    pseudonymKey: new Uint8Array(Buffer.from(parsed.pseudonymKey, 'base64url')),
  };
  Object.defineProperty(secrets, 'toJSON', { value: () => '[broker secrets]' });
  return Object.freeze(secrets);
}

/** The plain (development) secrets file: created when missing. */
export function ensureBrokerSecrets(keysDir: string): BrokerSecrets {
  const file = secretsFile(keysDir);
  if (!existsSync(file)) {
    mkdirSync(keysDir, { recursive: true, mode: 0o700 });
    writeFileSync(file, freshContent(), { mode: 0o600, flag: 'wx' });
  }
  return parseSecrets(file, readFileSync(file, 'utf8'));
}

/** The secrets through `protection`: created (sealed unless plain) when missing and `create`. */
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
  let bytes = await readKeyFile(file, protection);
  if (bytes === undefined) {
    if (!create) return undefined;
    mkdirSync(keysDir, { recursive: true, mode: 0o700 });
    await createKeyFile(file, new TextEncoder().encode(freshContent()), protection);
    bytes = await readKeyFile(file, protection);
    if (bytes === undefined) throw new BrokerError('E_INTERNAL', `${file} vanished after it was created`);
  }
  try {
    return parseSecrets(file, new TextDecoder().decode(bytes));
  } finally {
    bytes.fill(0);
  }
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
