// The broker's symmetric secrets (src/crypto/broker-secrets.ts): generated once with file mode 0600, stable across loads,
// never serialised, one pseudonym key per subscriber, and quarantine key versions that rotate and are pruned.
import { createHmac, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { quarantineKeyOf, subscriberPseudonymKey, type BrokerSecrets } from '../../src/crypto/broker-secrets.js';
import {
  ensureBrokerSecrets,
  openBrokerSecrets,
  pruneQuarantineKeys,
  rotateQuarantineKey,
  secretsFile,
} from '../../src/runtime/broker-secrets.js';
import { PLAIN_KEYS } from '../../src/runtime/key-protection.js';

const dirs: string[] = [];
function tempKeysDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'phi-broker-secrets-'));
  dirs.push(dir);
  return join(dir, 'keys');
}
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe('broker secrets', () => {
  it('are created once, file mode 0600 in a 0700 folder, two distinct 32-byte keys', () => {
    const keysDir = tempKeysDir();
    const s = ensureBrokerSecrets(keysDir);
    expect(secretsFile(keysDir)).toBe(join(keysDir, 'broker.secrets.json'));
    expect(statSync(secretsFile(keysDir)).mode & 0o777).toBe(0o600);
    expect(statSync(keysDir).mode & 0o777).toBe(0o700);
    expect(s.quarantineKey).toHaveLength(32);
    expect(s.pseudonymKey).toHaveLength(32);
    expect(Buffer.from(s.quarantineKey).equals(Buffer.from(s.pseudonymKey))).toBe(false);
  });

  it('are stable across loads (the same file is read back, not regenerated)', () => {
    const keysDir = tempKeysDir();
    const a = ensureBrokerSecrets(keysDir);
    const before = readFileSync(secretsFile(keysDir), 'utf8');
    const b = ensureBrokerSecrets(keysDir);
    expect(readFileSync(secretsFile(keysDir), 'utf8')).toBe(before);
    expect(Buffer.from(b.quarantineKey).equals(Buffer.from(a.quarantineKey))).toBe(true);
    expect(Buffer.from(b.pseudonymKey).equals(Buffer.from(a.pseudonymKey))).toBe(true);
    // two data dirs get different secrets
    const c = ensureBrokerSecrets(tempKeysDir());
    expect(Buffer.from(c.quarantineKey).equals(Buffer.from(a.quarantineKey))).toBe(false);
  });

  it('never serialise their content, and are frozen', () => {
    const s = ensureBrokerSecrets(tempKeysDir());
    expect(JSON.stringify({ s })).toBe('{"s":"[broker secrets]"}');
    expect(Object.isFrozen(s)).toBe(true);
  });

  it('refuse a secrets file of another shape', async () => {
    const keysDir = tempKeysDir();
    ensureBrokerSecrets(keysDir);
    const { writeFileSync } = await import('node:fs');
    writeFileSync(
      secretsFile(keysDir),
      JSON.stringify({ v: 1, quarantineKey: 'shortsecretvalue', pseudonymKey: 'shortsecretvalue' }),
    );
    let error: unknown;
    try {
      ensureBrokerSecrets(keysDir);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(Error);
    expect(String((error as Error).message)).toContain('quarantineKey');
    expect(String((error as Error).message)).not.toContain('shortsecretvalue');
  });

  it('derive one pseudonym key per subscriber: HMAC-SHA256(master, "pseudonym|v1|<service>")', () => {
    const master = new Uint8Array(32).fill(3);
    const a = subscriberPseudonymKey(master, 'analytics');
    const b = subscriberPseudonymKey(master, 'billing');
    expect(a).toHaveLength(32);
    expect(Buffer.from(a).equals(Buffer.from(b))).toBe(false);
    expect(Buffer.from(a).toString('hex')).toBe(
      createHmac('sha256', Buffer.from(master)).update('pseudonym|v1|analytics').digest('hex'),
    );
    expect(Buffer.from(subscriberPseudonymKey(master, 'analytics')).equals(Buffer.from(a))).toBe(true);
    expect(Buffer.from(subscriberPseudonymKey(new Uint8Array(32).fill(4), 'analytics')).equals(Buffer.from(a))).toBe(
      false,
    );
  });
});

describe('a damaged secrets file', () => {
  it('is E_CONFIG_INVALID naming the file, never quoting it', async () => {
    const { mkdtempSync, writeFileSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const { ensureBrokerSecrets, secretsFile } = await import('../../src/runtime/broker-secrets.js');
    const dir = mkdtempSync(join(tmpdir(), 'secrets-'));
    writeFileSync(
      secretsFile(dir),
      '{"v":1,"quarantineKey":"c2VjcmV0LXF1YXJhbnRpbmUta2V5LW1hdGVyaWFsLXh4","pseudonymKey":',
    );
    let err: unknown;
    try {
      ensureBrokerSecrets(dir);
    } catch (e) {
      err = e;
    }
    expect(err).toMatchObject({ code: 'E_CONFIG_INVALID' });
    expect((err as Error).message).toContain('broker.secrets.json');
    expect((err as Error).message).not.toContain('c2VjcmV0');
  });
});

describe('quarantine key versions', () => {
  const DAY = 86_400_000;
  const T0 = Date.parse('2026-12-01T03:15:00.000Z');
  const codeOf = (work: () => unknown): unknown => {
    try {
      work();
    } catch (e) {
      return e;
    }
    return undefined;
  };

  it('a fresh file is version 1, current; v1 files (one key) read as version 1 and are rewritten as v2 in place by the broker', async () => {
    const fresh = ensureBrokerSecrets(tempKeysDir());
    expect(fresh.quarantineVersion).toBe(1);
    expect(fresh.quarantineKeys.map((k) => k.version)).toEqual([1]);
    expect(JSON.stringify(fresh.quarantineKeys)).toBe('["[quarantine key]"]');

    const keysDir = tempKeysDir();
    mkdirSync(keysDir, { recursive: true });
    const q = randomBytes(32).toString('base64url');
    const p = randomBytes(32).toString('base64url');
    writeFileSync(secretsFile(keysDir), JSON.stringify({ v: 1, quarantineKey: q, pseudonymKey: p }), { mode: 0o600 });
    const mtime = new Date(statSync(secretsFile(keysDir)).mtimeMs).toISOString();
    // An operator's read leaves the file as it is.
    const read = await openBrokerSecrets(keysDir, PLAIN_KEYS, false);
    expect(Buffer.from(quarantineKeyOf(read as BrokerSecrets, 1)).toString('base64url')).toBe(q);
    expect(JSON.parse(readFileSync(secretsFile(keysDir), 'utf8'))).toMatchObject({ v: 1 });
    // The broker's open upgrades it: the same keys, version 1 created when the v1 file was written.
    const opened = await openBrokerSecrets(keysDir, PLAIN_KEYS, true);
    expect(JSON.parse(readFileSync(secretsFile(keysDir), 'utf8'))).toEqual({
      v: 2,
      pseudonymKey: p,
      quarantineKeys: [{ version: 1, created: mtime, key: q }],
    });
    expect(statSync(secretsFile(keysDir)).mode & 0o777).toBe(0o600);
    expect(Buffer.from(opened.quarantineKey).toString('base64url')).toBe(q);
    expect(Buffer.from(opened.pseudonymKey).toString('base64url')).toBe(p);
  });

  it('rotate adds a current version and keeps the previous; prune destroys only versions superseded longer ago than the threshold', async () => {
    const keysDir = tempKeysDir();
    const first = ensureBrokerSecrets(keysDir);
    expect(await rotateQuarantineKey(keysDir, PLAIN_KEYS, T0)).toBe(2);
    expect(await rotateQuarantineKey(keysDir, PLAIN_KEYS, T0 + DAY)).toBe(3);
    const rotated = ensureBrokerSecrets(keysDir);
    expect([rotated.quarantineVersion, rotated.quarantineKeys.map((k) => k.version)]).toEqual([3, [3, 2, 1]]);
    expect(Buffer.from(quarantineKeyOf(rotated, 1)).equals(Buffer.from(first.quarantineKey))).toBe(true);
    expect(Buffer.from(rotated.quarantineKey).equals(Buffer.from(first.quarantineKey))).toBe(false);
    expect(Buffer.from(rotated.pseudonymKey).equals(Buffer.from(first.pseudonymKey))).toBe(true);
    const v1 = Buffer.from(first.quarantineKey).toString('base64url');

    // Version 1 stopped sealing at T0, version 2 at T0 + 1 day: 90 days on, only version 1 is that old.
    expect(await pruneQuarantineKeys(keysDir, PLAIN_KEYS, 90 * DAY, T0 + 90 * DAY - 1)).toEqual([]);
    expect(await pruneQuarantineKeys(keysDir, PLAIN_KEYS, 90 * DAY, T0 + 90 * DAY)).toEqual([1]);
    const text = readFileSync(secretsFile(keysDir), 'utf8');
    expect(text).not.toContain(v1);
    const pruned = ensureBrokerSecrets(keysDir);
    expect(pruned.quarantineKeys.map((k) => [k.version, k.key !== undefined, k.destroyed])).toEqual([
      [3, true, undefined],
      [2, true, undefined],
      [1, false, new Date(T0 + 90 * DAY).toISOString()],
    ]);
    expect(codeOf(() => quarantineKeyOf(pruned, 1))).toMatchObject({
      code: 'E_KEY_DESTROYED',
      path: 'keyVersion',
      message: `quarantine key version 1 was destroyed at ${new Date(T0 + 90 * DAY).toISOString()}; the originals it sealed can never be opened`,
    });
    expect(codeOf(() => quarantineKeyOf(pruned, 4))).toMatchObject({ code: 'E_KEY_UNKNOWN', path: 'keyVersion' });
    // The current version is never destroyed, whatever the threshold.
    expect(await pruneQuarantineKeys(keysDir, PLAIN_KEYS, 0, T0 + 1000 * DAY)).toEqual([2]);
    expect(ensureBrokerSecrets(keysDir).quarantineVersion).toBe(3);
    // No secrets file (no broker ever started here): nothing to rotate or prune.
    expect(await rotateQuarantineKey(tempKeysDir(), PLAIN_KEYS)).toBeUndefined();
    expect(await pruneQuarantineKeys(tempKeysDir(), PLAIN_KEYS, 0)).toEqual([]);
  });

  it('refuse a v2 file whose current version is destroyed or whose versions are out of order', () => {
    const key = randomBytes(32).toString('base64url');
    const at = '2026-12-01T00:00:00.000Z';
    for (const quarantineKeys of [
      [{ version: 2, created: at, destroyed: at }],
      [
        { version: 1, created: at, key },
        { version: 2, created: at, key },
      ],
      [
        { version: 2, created: at, key },
        { version: 2, created: at, key },
      ],
    ]) {
      const keysDir = tempKeysDir();
      mkdirSync(keysDir, { recursive: true });
      writeFileSync(secretsFile(keysDir), JSON.stringify({ v: 2, pseudonymKey: key, quarantineKeys }));
      const e = codeOf(() => ensureBrokerSecrets(keysDir)) as Error;
      expect(e).toMatchObject({ code: 'E_CONFIG_INVALID' });
      expect(e.message).not.toContain(key);
    }
  });
});
