// The broker's symmetric secrets (src/crypto/broker-secrets.ts): generated once with file mode 0600, stable across loads,
// never serialised, and one pseudonym key per subscriber.
import { createHmac } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { subscriberPseudonymKey } from '../../src/crypto/broker-secrets.js';
import { ensureBrokerSecrets, secretsFile } from '../../src/runtime/broker-secrets.js';

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
