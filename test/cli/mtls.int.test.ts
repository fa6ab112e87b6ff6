// The single-node deployment flow (docs/deployment.md) through the CLI against a real nats-server: `certs init` →
// `nats-config --out` → nats-server on that file → `nats-provision` (admin) → `up` with NATS_URL and
// PHI_BROKER_NATS_TLS_DIR (broker identity) → `publish` and `tail` as services over mTLS — no insecure warning;
// then the read-only operator commands as the auditor identity, with the admin's certificate taken away.
import { existsSync, mkdtempSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, startNatsServer, type RunningNatsServer } from '../../src/nats/server.js';
import { EXAMPLE_PHI, ROOT, killLeftovers, runCli, startUp, type UpProcess } from './run-cli.js';

let dataDir: string;
let server: RunningNatsServer;
let up: UpProcess;
let env: Record<string, string>;
const data = (): string[] => ['--data-dir', dataDir];

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'phi-broker-cli-mtls-'));
  const init = await runCli(['certs', 'init', ...data()]);
  expect(init.code, init.stderr).toBe(0);
  const port = await freePort();
  const configFile = join(dataDir, 'nats.conf');
  const cfg = await runCli([
    'nats-config',
    ...data(),
    '--host',
    '127.0.0.1',
    '--port',
    String(port),
    '--out',
    configFile,
  ]);
  expect(cfg.code, cfg.stderr).toBe(0);
  server = await startNatsServer({ dir: join(dataDir, 'nats'), configFile, port });
  env = { NATS_URL: server.url, PHI_BROKER_NATS_TLS_DIR: join(dataDir, 'tls') };
}, 120_000);

afterAll(async () => {
  await killLeftovers();
  await server?.stop();
  if (dataDir !== undefined) rmSync(dataDir, { recursive: true, force: true });
});

describe('the docker-compose flow, over mTLS', () => {
  it('up before nats-provision fails: the broker identity may not create streams', async () => {
    const err = (await startUp(data(), { env }).then(
      () => new Error('up became ready'),
      (e: unknown) => e as Error,
    )) as Error;
    expect(err.message).toMatch(/^phi-broker up exited \(code 1, signal null\) before ready/);
    expect(err.message).toMatch(/Permissions Violation for Publish to "\$JS\.API\.STREAM\.CREATE\.PHI_INGEST"/);
  });

  it('nats-provision (admin) creates the streams and the delivery consumers', async () => {
    const r = await runCli(['nats-provision', ...data()], { env });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(`provisioned streams and delivery consumers on ${server.url} as the admin identity\n`);
  });

  it('up (broker identity) is ready; publish and tail as services go through, with nothing on stderr', async () => {
    up = await startUp(data(), { env });
    expect(up.readyLine).toContain(`nats ${server.url}`);
    const pub = await runCli(['publish', '--as', 'registration', join(ROOT, 'examples', 'patient.json'), ...data()], {
      env,
    });
    expect(pub.stderr).toBe(''); // no insecure-transport warning: this is mTLS
    expect(pub.code).toBe(0);
    expect(pub.stdout).toMatch(/^accepted [0-9a-f-]{36} \(\d+ deliveries\)\n$/);
    const tail = await runCli(['tail', '--as', 'notification', '--count', '1', '--json', ...data()], { env });
    expect(tail.stderr).toBe('');
    expect(tail.code).toBe(0);
    const line = JSON.parse(tail.stdout.trim()) as { provenance: { publisher: string } };
    expect(line.provenance.publisher).toBe('registration');
    const stopped = await up.stop('SIGTERM');
    expect(stopped.code).toBe(0);
    for (const s of EXAMPLE_PHI) expect(stopped.stderr).not.toContain(s);
  });
});

describe('the read-only operator commands connect as the auditor (src/runtime/data-dir.ts operatorIdentity)', () => {
  it('with only the auditor certificate (no admin or operator key), audit, registry, disclosures, consent list, access list and quarantine list work; consent add cannot connect', async () => {
    const tls = join(dataDir, 'tls');
    expect(existsSync(join(tls, 'auditor.cert.pem'))).toBe(true);
    // A compliance officer's TLS dir: the CA and the auditor pair, no admin or operator key.
    const away = ['admin.cert.pem', 'admin.key.pem', 'operator.cert.pem', 'operator.key.pem'];
    for (const f of away) renameSync(join(tls, f), join(tls, `${f}.away`));
    try {
      const patient = ['--patient', 'Patient/demo-patient-1'];
      for (const args of [
        ['audit', 'verify'],
        ['audit', 'query', ...patient],
        ['registry', 'show', ...patient],
        ['disclosures', ...patient],
        ['consent', 'list', ...patient],
        ['access', 'list'],
        ['quarantine', 'list'],
      ]) {
        const r = await runCli([...args, ...data()], { env });
        expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(0);
        expect(r.stderr, args.join(' ')).not.toMatch(/Violation|error/i);
      }
      const show = await runCli(['registry', 'show', ...patient, '--json', ...data()], { env });
      expect((JSON.parse(show.stdout) as { services: { service: string }[] }).services.map((s) => s.service)).toContain(
        'registration',
      );
      const add = await runCli(['consent', 'add', ...patient, '--deny-recipient', 'analytics', ...data()], { env });
      expect(add.code).not.toBe(0);
      expect(add.stderr).toContain('operator.cert.pem');
    } finally {
      for (const f of away) renameSync(join(tls, `${f}.away`), join(tls, f));
    }
  });
});
