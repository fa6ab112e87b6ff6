// Keys at rest through the CLI (docs/keys-at-rest.md): `up` starts on plain development keys and says so; `keys
// protect` seals them; afterwards no private key byte sequence is anywhere under the data dir, a plain start or a
// wrong passphrase is refused with a code (never a stack trace), and `up --key-provider passphrase` delivers a
// message end to end on its embedded nats-server, and loads a quarantine key version `keys rotate --broker` adds to
// the sealed secrets file without a restart. An altered sealed file is refused with a code.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findNeedles, privateNeedles, type Needle } from '../helpers/key-scan.js';
import { ROOT, killLeftovers, runCli, startUp, type UpProcess } from './run-cli.js';
import { until } from '../helpers/poll.js';

const PASS = 'an operator passphrase for the test';
let dataDir: string;
let keysDir: string;
let needles: Needle[];
let up: UpProcess | undefined;
const data = (): string[] => ['--data-dir', dataDir];
const sealedEnv = {
  PHI_BROKER_KEY_PROVIDER: 'passphrase',
  PHI_BROKER_KEY_PASSPHRASE: PASS,
  PHI_BROKER_KEY_KDF: 'interactive',
};

/** phi_broker_keys_sealed from the /metrics of the `up` whose ready line names its health port. */
async function keysSealedMetric(readyLine: string): Promise<{ provider: string; value: string }> {
  const url = /health (http:\/\/127\.0\.0\.1:\d+)\/readyz/.exec(readyLine)?.[1];
  expect(url).toBeDefined();
  const text = await (await fetch(`${String(url)}/metrics`)).text();
  const m = /^phi_broker_keys_sealed\{provider="([a-z]+)"\} (\d)$/m.exec(text);
  return { provider: m?.[1] ?? 'none', value: m?.[2] ?? 'none' };
}

function refused(r: { code: number | null; stderr: string }, code: string): void {
  expect(r.code).toBe(1);
  expect(r.stderr).toContain(`phi-broker: ${code}: `);
  expect(r.stderr).not.toMatch(/^\s+at /m); // no stack trace
  expect(r.stderr).not.toContain(PASS);
}

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'phi-broker-cli-keys-'));
  keysDir = join(dataDir, 'keys');
}, 10_000);

afterAll(async () => {
  await killLeftovers();
  if (dataDir !== undefined) rmSync(dataDir, { recursive: true, force: true });
});

describe('phi-broker keys at rest', () => {
  it('up uses plain development keys by default and says so (ready line and a warning)', async () => {
    const plain = await startUp(data());
    expect(plain.readyLine).toContain('keys plain (DEVELOPMENT)');
    expect(await keysSealedMetric(plain.readyLine)).toEqual({ provider: 'plain', value: '0' });
    const stopped = await plain.stop();
    expect(stopped.code).toBe(0);
    expect(stopped.stderr).toContain('"event":"keys.plain"');
    needles = privateNeedles(keysDir);
    expect(needles.length).toBeGreaterThanOrEqual(2 * 2 * 3); // at least three services' sig and enc keys
    expect(findNeedles(dataDir, needles).length).toBeGreaterThan(0);
  }, 60_000);

  it('keys protect needs the passphrase, then seals every key file: no private byte sequence remains on disk', async () => {
    refused(await runCli(['keys', 'protect', '--provider', 'passphrase', ...data()]), 'E_KEY_PROTECTION');
    const r = await runCli(['keys', 'protect', '--provider', 'passphrase', ...data()], {
      env: { PHI_BROKER_KEY_PASSPHRASE: PASS, PHI_BROKER_KEY_KDF: 'interactive' },
    });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`sealed ${join(keysDir, 'broker.private.jwk.json')}`);
    expect(r.stdout).toContain(`sealed ${join(keysDir, 'broker.secrets.json')}`);
    expect(findNeedles(dataDir, needles)).toEqual([]);
  });

  it('a plain start, a missing or a wrong passphrase is refused with a code, never a stack trace', async () => {
    refused(await runCli(['up', ...data()]), 'E_KEY_PROTECTION');
    refused(await runCli(['up', '--key-provider', 'passphrase', ...data()]), 'E_KEY_PROTECTION');
    refused(
      await runCli(['up', '--key-provider', 'passphrase', ...data()], {
        env: { PHI_BROKER_KEY_PASSPHRASE: `${PASS}.` },
      }),
      'E_KEY_UNLOCK',
    );
  }, 60_000);

  it('up --key-provider passphrase starts and delivers end to end; still no private byte sequence on disk', async () => {
    up = await startUp(['--key-provider', 'passphrase', ...data()], {
      env: { PHI_BROKER_KEY_PASSPHRASE: PASS },
    });
    expect(up.readyLine).toContain('keys sealed (passphrase)');
    expect(await keysSealedMetric(up.readyLine)).toEqual({ provider: 'passphrase', value: '1' });
    expect(up.stderr()).toContain('"event":"keys.sealed"');
    expect(up.stderr()).not.toContain('"event":"keys.plain"');
    const pub = await runCli(['publish', '--as', 'registration', join(ROOT, 'examples', 'patient.json'), ...data()], {
      env: sealedEnv,
    });
    expect(pub.stderr).toBe('');
    expect(pub.stdout).toMatch(/^accepted [0-9a-f-]{36} \(\d+ deliveries\)\n$/);
    const tail = await runCli(['tail', '--as', 'notification', '--count', '1', '--json', ...data()], {
      env: sealedEnv,
    });
    expect(tail.stderr).toBe('');
    expect(tail.code).toBe(0);
    const got = JSON.parse(tail.stdout.trim()) as { provenance: { publisher: string }; resource: { id: string } };
    expect(got.provenance.publisher).toBe('registration');
    // A command without the provider refuses the sealed file instead of reading it as plain.
    refused(
      await runCli(['publish', '--as', 'registration', join(ROOT, 'examples', 'patient.json'), ...data()]),
      'E_KEY_PROTECTION',
    );
    // keys rotate --broker adds a quarantine key version to the sealed secrets file; the running broker loads it.
    const rotated = await runCli(['keys', 'rotate', '--broker', '--overlap', '1h', ...data()], { env: sealedEnv });
    expect(rotated.stderr).toBe('');
    expect(rotated.stdout).toContain('rotated broker quarantine key: current version 2\n');
    await until('the broker loaded quarantine key version 2', () =>
      /"event":"keys\.quarantine\.rotated"[^\n]*"version":2/.test(up?.stderr() ?? ''),
    );
    expect(JSON.parse(readFileSync(join(keysDir, 'broker.secrets.json'), 'utf8'))).toMatchObject({
      format: 'phi-broker-key-file',
    });
    expect(findNeedles(dataDir, needles)).toEqual([]);
  }, 90_000);

  it('an altered sealed key file is refused with E_KEY_FILE_INVALID', async () => {
    const file = join(keysDir, 'registration.private.jwk.json');
    const json = JSON.parse(readFileSync(file, 'utf8')) as { ciphertext: string };
    const bytes = Buffer.from(json.ciphertext, 'base64url');
    bytes[40] = (bytes[40] as number) ^ 0x20;
    writeFileSync(file, JSON.stringify({ ...json, ciphertext: bytes.toString('base64url') }));
    refused(
      await runCli(['publish', '--as', 'registration', join(ROOT, 'examples', 'patient.json'), ...data()], {
        env: sealedEnv,
      }),
      'E_KEY_FILE_INVALID',
    );
    const stopped = await up?.stop();
    expect(stopped?.code).toBe(0);
  }, 60_000);
});
