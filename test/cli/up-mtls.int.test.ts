// `phi-broker up` (mTLS is the default; `--mtls` is kept as a no-op alias, exercised here): the embedded nats-server runs the generated mTLS config (certificates issued under
// <data-dir>/tls, streams provisioned by the admin identity, the broker as the broker identity), and publish,
// tail and quarantine find it through server.json and connect over mTLS — no insecure-transport warning; the
// operator commands connect as the admin identity.
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'nats';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXAMPLE_PHI, ROOT, killLeftovers, runCli, startUp, type UpProcess } from './run-cli.js';

let dataDir: string;
let up: UpProcess;
const data = (): string[] => ['--data-dir', dataDir];

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'phi-broker-cli-upmtls-'));
  up = await startUp(['--mtls', ...data()]); // the old flag still starts, and means the default
}, 90_000);

afterAll(async () => {
  await killLeftovers();
  if (dataDir !== undefined) rmSync(dataDir, { recursive: true, force: true });
});

describe('phi-broker up (mTLS)', () => {
  it('is ready on an embedded nats-server that refuses a client without a certificate', async () => {
    const server = JSON.parse(readFileSync(join(dataDir, 'nats', 'server.json'), 'utf8')) as {
      url: string;
      tlsDir: string;
    };
    expect(up.readyLine).toContain(`nats ${server.url} (mTLS)`);
    expect(server.tlsDir).toBe(join(dataDir, 'tls'));
    expect(readFileSync(join(dataDir, 'nats', 'nats-server.conf'), 'utf8')).toContain('verify_and_map: true');
    const err = await connect({ servers: server.url, reconnect: false, timeout: 5_000 }).then(
      async (nc) => {
        await nc.close();
        return undefined;
      },
      (e: unknown) => e as Error,
    );
    expect(err).toBeInstanceOf(Error);
  });

  it('publish and tail connect as their service over mTLS: accepted, delivered, nothing on stderr', async () => {
    const pub = await runCli(['publish', '--as', 'registration', join(ROOT, 'examples', 'patient.json'), ...data()]);
    expect(pub.stderr).toBe('');
    expect(pub.code).toBe(0);
    expect(pub.stdout).toMatch(/^accepted [0-9a-f-]{36} \(\d+ deliveries\)\n$/);
    const tail = await runCli(['tail', '--as', 'notification', '--count', '1', '--json', ...data()]);
    expect(tail.stderr).toBe('');
    expect(tail.code).toBe(0);
    expect((JSON.parse(tail.stdout.trim()) as { provenance: { publisher: string } }).provenance.publisher).toBe(
      'registration',
    );
  });

  it('quarantine list connects as the admin identity', async () => {
    const bad = await runCli([
      'publish',
      '--as',
      'registration',
      join(ROOT, 'examples', 'bad-patient.json'),
      ...data(),
    ]);
    expect(bad.code).toBe(1);
    const list = await runCli(['quarantine', 'list', '--json', ...data()]);
    expect(list.stderr).toBe('');
    expect(list.code).toBe(0);
    expect(list.stdout).toContain('E_UNKNOWN_ELEMENT');
  });

  it('the operator commands (consent, registry, disclosures, audit, access) connect as the admin identity', async () => {
    const ok = async (...args: string[]): Promise<string> => {
      const r = await runCli([...args, ...data()]);
      expect({ args, code: r.code, stderr: r.stderr }).toEqual({ args, code: 0, stderr: '' });
      return r.stdout;
    };
    // Writes KV phi_consent; the broker's watch (an ordered consumer on KV_phi_consent) sees it.
    await ok('consent', 'add', '--patient', 'Patient/demo-patient-1', '--deny-recipient', 'notification');
    expect(await ok('consent', 'list', '--patient', 'Patient/demo-patient-1', '--json')).toContain(
      '"resourceType":"Consent"',
    );
    // The broker recorded the patient (KV phi_registry) while delivering it, under the broker identity.
    expect(await ok('registry', 'show', '--patient', 'Patient/demo-patient-1', '--json')).toContain('notification');
    await ok('disclosures', '--patient', 'Patient/demo-patient-1');
    // The broker's audit chain (PHI_AUDIT), written under the broker identity, verifies.
    await ok('audit', 'verify');
    // phi.control.access → the broker's AccessDesk (queue group, KV phi_access keys) → the reply (allow_responses).
    await ok('access', 'list', '--json');
  });

  it('stops cleanly; its logs carry none of the PHI that went through', async () => {
    const r = await up.stop('SIGTERM');
    expect(r.code).toBe(0);
    for (const s of EXAMPLE_PHI) expect(r.stderr).not.toContain(s);
    // Nothing the broker does (audit chain, registry, consent watch, access desk) was refused by the permissions.
    expect(r.stderr).not.toMatch(/Permissions Violation|PERMISSIONS_VIOLATION/);
  });
});

describe('phi-broker up with PHI_BROKER_NATS_TLS_DIR and no NATS_URL', () => {
  it("issues the embedded server's certificates into that directory, so the operator commands (which read it) connect", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'phi-broker-cli-upmtls-dir-'));
    const tlsDir = join(dir, 'certs');
    const env = { PHI_BROKER_NATS_TLS_DIR: tlsDir };
    const args = ['--data-dir', join(dir, 'data')];
    const second = await startUp(args, { env });
    try {
      const server = JSON.parse(readFileSync(join(dir, 'data', 'nats', 'server.json'), 'utf8')) as { tlsDir: string };
      expect(server.tlsDir).toBe(tlsDir);
      expect(existsSync(join(dir, 'data', 'tls'))).toBe(false);
      const verify = await runCli(['audit', 'verify', ...args], { env });
      expect({ code: verify.code, stderr: verify.stderr }).toEqual({ code: 0, stderr: '' });
      const pub = await runCli(['publish', '--as', 'registration', join(ROOT, 'examples', 'patient.json'), ...args], {
        env,
      });
      expect({ code: pub.code, stderr: pub.stderr }).toEqual({ code: 0, stderr: '' });
    } finally {
      await second.stop('SIGTERM');
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
