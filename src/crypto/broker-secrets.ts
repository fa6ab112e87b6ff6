// The broker's symmetric secrets, beside its key pair: the quarantine key versions (each seals the rejected input of
// its epoch; the current one seals new records, a record names its version) and the pseudonym master key (derives one
// HMAC key per subscriber for the `pseudonym` transform, so tokens given to two de-identified consumers cannot be
// joined; static by design, docs/keys.md). Kept in the data dir by src/runtime/broker-secrets.ts.
import { createHmac } from 'node:crypto';
import { BrokerError } from '../wire/errors.js';

/** One quarantine key version: its key until `keys prune` destroys it (then `destroyed` and no key). */
export interface QuarantineKeyVersion {
  readonly version: number;
  /** ISO 8601: when it became current (a version stops sealing when the next one is created). */
  readonly created: string;
  readonly key?: Uint8Array;
  /** ISO 8601: when `keys prune` deleted the key. */
  readonly destroyed?: string;
}

export interface BrokerSecrets {
  /** The current quarantine key: new records are sealed with it and name `quarantineVersion`. */
  readonly quarantineKey: Uint8Array;
  readonly quarantineVersion: number;
  /** Every version the file lists, newest first. */
  readonly quarantineKeys: readonly QuarantineKeyVersion[];
  readonly pseudonymKey: Uint8Array;
}

/** The quarantine key of `version`: E_KEY_DESTROYED once pruned, E_KEY_UNKNOWN when the file never held it. */
export function quarantineKeyOf(secrets: Pick<BrokerSecrets, 'quarantineKeys'>, version: number): Uint8Array {
  const held = secrets.quarantineKeys.find((k) => k.version === version);
  if (held === undefined)
    throw new BrokerError('E_KEY_UNKNOWN', `quarantine key version ${version} is not in the broker secrets`, {
      path: 'keyVersion',
    });
  if (held.key === undefined)
    throw new BrokerError(
      'E_KEY_DESTROYED',
      `quarantine key version ${version} was destroyed at ${held.destroyed ?? 'an unknown time'}; the originals it sealed can never be opened`,
      { path: 'keyVersion' },
    );
  return held.key;
}

/** HMAC-SHA256(master, "pseudonym|v1|" + service): the subscriber's own pseudonym key. */
export function subscriberPseudonymKey(master: Uint8Array, service: string): Uint8Array {
  return new Uint8Array(createHmac('sha256', master).update(`pseudonym|v1|${service}`).digest());
}
