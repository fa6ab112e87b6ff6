// `phi-broker keys list|rotate|prune|revoke` as a process against one mTLS nats-server: reads as the auditor, writes as the
// operator identity, entries signed with the data dir's operator root key (docs/keys.md).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureOperatorRootKey, publishDirectory } from '../../src/runtime/key-directory.js';
import { ensureBrokerSecrets } from '../../src/runtime/broker-secrets.js';
import { readServiceKeyVersions } from '../../src/runtime/key-files.js';
import { ADMIN_IDENTITY } from '../../src/tls/identity.js';
import { startTestStack, type TestStack } from '../helpers/stack.js';
import { NOT_BUILT, runCli } from './run-cli.js';

let stack: TestStack;

beforeAll(async () => {
  stack = await startTestStack({ broker: false });
  const { root } = await ensureOperatorRootKey(stack.keysDir);
  const admin = await stack.connectAs(ADMIN_IDENTITY, 'provision-keys');
  await publishDirectory(admin, stack.catalog, stack.keysDir, root, { create: true });
  await admin.close();
}, 60_000);

afterAll(async () => {
  await stack?.stop();
});

const cli = (...args: string[]): ReturnType<typeof runCli> =>
  runCli([...args, '--data-dir', stack.config.dataDir], { env: stack.env });

describe.skipIf(NOT_BUILT !== undefined)('keys commands', () => {
  it('list --json: every party with its first key versions, active', async () => {
    const r = await cli('keys', 'list', '--json');
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const rows = JSON.parse(r.stdout) as { party: string; kid: string; status: string; created: string }[];
    expect(rows.filter((x) => x.party === 'billing').map((x) => [x.kid, x.status])).toEqual([
      ['billing:sig:1', 'active'],
      ['billing:enc:1', 'active'],
    ]);
    expect(new Set(rows.map((x) => x.party))).toEqual(
      new Set(['broker', 'gateway', 'operator', ...stack.catalog.services.keys()]),
    );
    // The gateways' own party, and the partners, by kind.
    expect(new Set(rows.filter((x) => x.party === 'gateway').map((x) => (x as { kind?: string }).kind))).toEqual(
      new Set(['gateway']),
    );
    // The operator commands' audit key is a party of its own kind (not the operator root key, which signs entries).
    expect(rows.filter((x) => x.party === 'operator').map((x) => [x.kid, (x as { kind?: string }).kind])).toEqual([
      ['operator:sig:1', 'operator'],
      ['operator:enc:1', 'operator'],
    ]);
  });

  it('rotate then revoke: the new version is current, the old retiring then revoked; list shows it', async () => {
    const rotated = await cli('keys', 'rotate', '--service', 'billing', '--overlap', '1h');
    expect(rotated.code).toBe(0);
    expect(rotated.stdout).toMatch(
      /^rotated billing: current billing:sig:2 and billing:enc:2; previous keys retiring until \d{4}-\d\d-\d\dT[\d:.]+Z\n$/,
    );
    expect(readServiceKeyVersions(stack.keysDir, 'billing').map((v) => v.sign.kid)).toEqual([
      'billing:sig:2',
      'billing:sig:1',
    ]);
    const revoked = await cli('keys', 'revoke', '--kid', 'billing:sig:1', '--reason', 'drill');
    expect(revoked.code).toBe(0);
    expect(revoked.stdout).toMatch(/^revoked billing:sig:1 at \d{4}-/);
    const table = (await cli('keys', 'list')).stdout.split('\n');
    expect(table[0]).toMatch(/^PARTY\s+KID\s+USE\s+STATUS\s+CREATED\s+NOT AFTER\s+RETIRED\s+REVOKED\s+REASON$/);
    const billing = table.filter((l) => l.startsWith('billing ')).map((l) => l.split(/\s+/).slice(1, 4));
    expect(billing).toEqual([
      ['billing:sig:1', 'sig', 'revoked'],
      ['billing:enc:1', 'enc', 'retiring'],
      ['billing:sig:2', 'sig', 'active'],
      ['billing:enc:2', 'enc', 'active'],
    ]);
    expect(table.find((l) => l.startsWith('billing ') && l.includes('billing:sig:1'))).toMatch(/drill$/);
  });

  it('refuses a rotate naming no party, and a revoke of a kid the directory does not hold, with a code', async () => {
    const none = await cli('keys', 'rotate');
    expect(none.code).not.toBe(0);
    expect(none.stderr).toContain('give one of --service <id>, --broker, --gateway, --operator, --all');
    const unknown = await cli('keys', 'revoke', '--kid', 'billing:sig:7', '--reason', 'x');
    expect(unknown.code).not.toBe(0);
    expect(unknown.stderr).toContain('E_KEY_UNKNOWN: the key directory entry of billing holds no key billing:sig:7');
  });

  it('prune refuses an --older-than below the ciphertext retention (E_USAGE, nothing deleted); --force prunes only what is old enough', async () => {
    const short = await cli('keys', 'prune', '--older-than', '1h');
    expect(short.code).not.toBe(0);
    expect(short.stderr).toContain('E_USAGE: --older-than: shorter than the');
    expect(readServiceKeyVersions(stack.keysDir, 'billing')).toHaveLength(2);
    // billing:enc:1 is retiring for another hour: nothing was retired an hour ago.
    const forced = await cli('keys', 'prune', '--older-than', '1h', '--force', '--service', 'billing');
    expect(forced.code).toBe(0);
    expect(forced.stdout).toBe('no key version retired long enough ago\n');
    expect(readServiceKeyVersions(stack.keysDir, 'billing')).toHaveLength(2);
  });

  it('rotate --all: every party with a key file in the data dir gets a new version', async () => {
    const r = await cli('keys', 'rotate', '--all', '--overlap', '7d');
    expect(r.code).toBe(0);
    const rotated = r.stdout.split('\n').filter((l) => l.startsWith('rotated '));
    expect(new Set(rotated.map((l) => l.split(/[ :]/)[1]))).toEqual(
      new Set(['broker', 'gateway', 'operator', ...stack.catalog.services.keys()]),
    );
    expect(readServiceKeyVersions(stack.keysDir, 'billing')[0]?.enc.kid).toBe('billing:enc:3');
    expect(readServiceKeyVersions(stack.keysDir, 'broker')[0]?.enc.kid).toBe('broker:enc:2');
    // The broker's quarantine key follows its epoch: a second version, current, beside the first.
    expect(r.stdout).toContain('rotated broker quarantine key: current version 2\n');
    const secrets = ensureBrokerSecrets(stack.keysDir);
    expect([secrets.quarantineVersion, secrets.quarantineKeys.map((k) => k.key !== undefined)]).toEqual([
      2,
      [true, true],
    ]);
  });
});
