// The broker's secrets file in the data dir (src/crypto/broker-secrets.ts says what they are): generated once by the
// broker, file mode 0600, never logged; operator commands only read it.
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import type { BrokerSecrets } from '../crypto/broker-secrets.js';
import type { BrokerConfig } from '../config/config.js';
import { BrokerError } from '../wire/errors.js';
import { layout } from './data-dir.js';

const fileSchema = z.strictObject({
  v: z.literal(1),
  quarantineKey: z.string().length(43),
  pseudonymKey: z.string().length(43),
});

export function secretsFile(keysDir: string): string {
  return join(keysDir, 'broker.secrets.json');
}

export function ensureBrokerSecrets(keysDir: string): BrokerSecrets {
  const file = secretsFile(keysDir);
  if (!existsSync(file)) {
    mkdirSync(keysDir, { recursive: true, mode: 0o700 });
    const content = {
      v: 1,
      quarantineKey: randomBytes(32).toString('base64url'),
      pseudonymKey: randomBytes(32).toString('base64url'),
    };
    writeFileSync(file, JSON.stringify(content), { mode: 0o600, flag: 'wx' });
  }
  // Never echo the file's content in an error: it holds the quarantine and pseudonym keys.
  let parsed: z.output<typeof fileSchema>;
  try {
    parsed = fileSchema.parse(JSON.parse(readFileSync(file, 'utf8')));
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

/** For an operator command (consent, disclosures): read, never created — fresh secrets would compute pseudonyms
 * no broker uses, and find or file nothing. */
export function existingBrokerSecrets(config: BrokerConfig): BrokerSecrets {
  const keys = layout(config).keys;
  if (!existsSync(secretsFile(keys))) {
    throw new BrokerError(
      'E_CONFIG_INVALID',
      `no broker secrets in ${keys}: run this on the broker's data dir (--data-dir)`,
    );
  }
  return ensureBrokerSecrets(keys);
}
