// The broker's secrets for an operator command (consent, disclosures): read from the data dir, never created —
// a command that made fresh secrets would compute pseudonyms no broker uses, and find or file nothing.
import { existsSync } from 'node:fs';
import { ensureBrokerSecrets, secretsFile, type BrokerSecrets } from '../broker/secrets.js';
import type { BrokerConfig } from '../config.js';
import { BrokerError } from '../errors.js';
import { layout } from './runtime.js';

export function existingBrokerSecrets(config: BrokerConfig): BrokerSecrets {
  const keys = layout(config).keys;
  if (!existsSync(secretsFile(keys))) {
    throw new BrokerError('E_CONFIG_INVALID', `no broker secrets in ${keys}: run this on the broker's data dir (--data-dir)`);
  }
  return ensureBrokerSecrets(keys);
}
