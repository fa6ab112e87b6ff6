// The broker's symmetric secrets, beside its key pair: the quarantine key (seals rejected input) and the
// pseudonym master key (derives one HMAC key per subscriber for the `pseudonym` transform, so tokens
// given to two de-identified consumers cannot be joined). Generated once, file mode 0600, never logged.
import { createHmac, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { BrokerError } from '../errors.js';

export interface BrokerSecrets {
  readonly quarantineKey: Uint8Array;
  readonly pseudonymKey: Uint8Array;
}

const fileSchema = z.strictObject({ v: z.literal(1), quarantineKey: z.string().length(43), pseudonymKey: z.string().length(43) });

export function secretsFile(keysDir: string): string {
  return join(keysDir, 'broker.secrets.json');
}

export function ensureBrokerSecrets(keysDir: string): BrokerSecrets {
  const file = secretsFile(keysDir);
  if (!existsSync(file)) {
    mkdirSync(keysDir, { recursive: true, mode: 0o700 });
    const content = { v: 1, quarantineKey: randomBytes(32).toString('base64url'), pseudonymKey: randomBytes(32).toString('base64url') };
    writeFileSync(file, JSON.stringify(content), { mode: 0o600, flag: 'wx' });
  }
  // Never echo the file's content in an error: it holds the quarantine and pseudonym keys.
  let parsed: z.output<typeof fileSchema>;
  try {
    parsed = fileSchema.parse(JSON.parse(readFileSync(file, 'utf8')));
  } catch {
    throw new BrokerError('E_CONFIG_INVALID', `${file} is not a phi-broker secrets file (v1: quarantineKey, pseudonymKey)`);
  }
  const secrets = {
    quarantineKey: new Uint8Array(Buffer.from(parsed.quarantineKey, 'base64url')),
    pseudonymKey: new Uint8Array(Buffer.from(parsed.pseudonymKey, 'base64url')),
  };
  Object.defineProperty(secrets, 'toJSON', { value: () => '[broker secrets]' });
  return Object.freeze(secrets);
}

/** HMAC-SHA256(master, "pseudonym|v1|" + service): the subscriber's own pseudonym key. */
export function subscriberPseudonymKey(master: Uint8Array, service: string): Uint8Array {
  return new Uint8Array(createHmac('sha256', master).update(`pseudonym|v1|${service}`).digest());
}
