// `phi-broker keys protect`: seals a data dir's plain private key files under a key provider (docs/keys-at-rest.md).
// Holds the data-dir lock while it runs, so no `up` on this data dir writes a plain key file meanwhile.
import type { Command } from 'commander';
import { Option } from 'commander';
import type { BrokerConfig } from '../config/config.js';
import { initCrypto } from '../crypto/sodium.js';
import { acquireDataDirLock } from '../runtime/data-dir-lock.js';
import { layout } from '../runtime/data-dir.js';
import { keyProtection, protectKeysDir } from '../runtime/key-protection.js';
import { BrokerError } from '../wire/errors.js';

export async function runKeysProtect(
  config: BrokerConfig,
  provider: 'passphrase' | 'keyfile',
  out: NodeJS.WritableStream = process.stdout,
): Promise<void> {
  await initCrypto();
  const protection = keyProtection(provider, config);
  if (protection.provider === undefined) throw new BrokerError('E_INTERNAL', 'no provider for keys protect');
  const lock = acquireDataDirLock(config.dataDir, 'phi-broker keys protect');
  try {
    const keysDir = layout(config).keys;
    const result = await protectKeysDir(keysDir, protection.provider);
    for (const file of result.protected) out.write(`sealed ${file}\n`);
    for (const file of result.already) out.write(`already sealed ${file}\n`);
    out.write(
      `${result.protected.length} key file(s) sealed with the ${provider} provider in ${keysDir}; start with --key-provider ${provider}\n`,
    );
  } finally {
    lock.release();
  }
}

/** Adds `protect` under the `keys` command. */
export function registerKeyProtectCommands(keys: Command, configOf: (cmd: Command) => BrokerConfig): void {
  keys
    .command('protect')
    .description(
      'seal every plain private key file of the data dir under a key provider (the plain file is overwritten, then replaced)',
    )
    .addOption(
      new Option('--provider <provider>', 'the key provider: passphrase (PHI_BROKER_KEY_PASSPHRASE[_FILE]) or keyfile')
        .choices(['passphrase', 'keyfile'])
        .makeOptionMandatory(),
    )
    .option('--key-file <file>', "the keyfile provider's 32-byte key, mode 0600 (default PHI_BROKER_KEY_PROVIDER_FILE)")
    .action(async (opts: { provider: 'passphrase' | 'keyfile'; keyFile?: string }, cmd: Command) => {
      const config = configOf(cmd);
      await runKeysProtect(
        opts.keyFile === undefined ? config : Object.freeze({ ...config, keyProviderFile: opts.keyFile }),
        opts.provider,
      );
    });
}
