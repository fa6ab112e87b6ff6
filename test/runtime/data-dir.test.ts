// serviceKeys() (src/runtime/data-dir.ts), what `tail`, `publish`, `serve-example` and the gateway's delivery readers
// start from: every version a service's key file holds, current first, so a process restarted after `keys rotate`
// still derives the KEK of a delivery sealed to its previous encryption key (docs/keys.md "A backlog sealed to a
// retired key"). Files only: no nats-server.
import { mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/config.js';
import { kekId } from '../../src/crypto/kek.js';
import { Keyring } from '../../src/crypto/keyring.js';
import { initCrypto } from '../../src/crypto/sodium.js';
import { serviceKeys } from '../../src/runtime/data-dir.js';
import { ensureDevKeys, readJwks, readServiceKeys, rotateKeys } from '../../src/runtime/key-files.js';
import { PLAIN_KEYS } from '../../src/runtime/key-protection.js';
import { isBrokerError } from '../../src/wire/errors.js';
import { BROKER_ID } from '../../src/wire/ids.js';

const dataDir = mkdtempSync(join(tmpdir(), 'phi-data-dir-'));
const keysDir = join(dataDir, 'keys');

beforeAll(async () => {
  await initCrypto();
  mkdirSync(keysDir, { recursive: true });
  ensureDevKeys(keysDir, [BROKER_ID, 'billing']);
});

describe('serviceKeys', () => {
  it('after keys rotate: every version, current first; the previous one still derives its deliveries’ KEK', async () => {
    // The broker sealed a delivery to billing:enc:1 before the rotation.
    const broker = new Keyring(readServiceKeys(keysDir, BROKER_ID), readJwks(keysDir));
    const sealed = broker.kekFor('billing:enc:1');
    expect(sealed.id).toBe(kekId('billing:enc:1', 'broker:enc:1'));
    await rotateKeys(keysDir, 'billing', PLAIN_KEYS);

    const { keys, peers } = await serviceKeys(parseConfig({ dataDir }), 'billing');
    expect(keys.map((k) => [k.sign.kid, k.enc.kid])).toEqual([
      ['billing:sig:2', 'billing:enc:2'],
      ['billing:sig:1', 'billing:enc:1'],
    ]);
    const restarted = new Keyring(keys, peers);
    expect(restarted.signer().kid).toBe('billing:sig:2');
    expect(restarted.kekForId(sealed.id).key).toEqual(sealed.key);
    // The current version alone (what a restart loaded before) cannot derive it.
    const currentOnly = new Keyring(keys[0] as (typeof keys)[number], peers);
    let code: string | undefined;
    try {
      currentOnly.kekForId(sealed.id);
    } catch (err) {
      code = isBrokerError(err) ? err.code : 'not a BrokerError';
    }
    expect(code).toBe('E_KEY_UNKNOWN');
  });
});
