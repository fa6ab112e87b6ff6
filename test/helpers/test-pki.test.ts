// The harness's per-run certificate cache (test/helpers/test-pki.ts): each server gets its own copy of one set per
// service list — valid for the test servers' host, private keys 0600, directories 0700, and independent of the
// cache and of every other copy once made.
import { X509Certificate } from 'node:crypto';
import { existsSync, lstatSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { ADMIN_IDENTITY, AUDITOR_IDENTITY, BROKER_IDENTITY, serviceIdentity } from '../../src/tls/identity.js';
import type { TlsLayout } from '../../src/tls/store.js';
import { TEST_INSPECTOR, testCertificates } from './test-pki.js';

const base = mkdtempSync(join(tmpdir(), 'phi-broker-test-pki-test-'));
afterAll(() => rmSync(base, { recursive: true, force: true }));

let n = 0;
const freshDir = (): string => join(base, `server-${(n += 1)}`, 'tls');
const cert = (file: string): X509Certificate => new X509Certificate(readFileSync(file));
const mode = (path: string): number => statSync(path).mode & 0o777;

function allFiles(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .map((f) => join(dir, f))
    .filter((p) => lstatSync(p).isFile());
}

describe('testCertificates', () => {
  it('runs with the run cache the global setup made', () => {
    expect(existsSync(inject('testPkiCache'))).toBe(true);
  });

  it('copies one set per service list into each server dir: same CA and serials, separate files', async () => {
    const a = await testCertificates(freshDir(), ['ehr', 'billing'], { inspector: true });
    const b = await testCertificates(freshDir(), ['billing', 'ehr'], { inspector: true });
    expect(a.dir).not.toBe(b.dir);
    expect(readFileSync(b.ca.certFile, 'utf8')).toBe(readFileSync(a.ca.certFile, 'utf8'));
    expect(cert(b.server.certFile).serialNumber).toBe(cert(a.server.certFile).serialNumber);
    for (const file of allFiles(a.dir)) {
      const twin = file.replace(a.dir, b.dir);
      expect(lstatSync(file).isSymbolicLink()).toBe(false);
      expect(statSync(file).ino).not.toBe(statSync(twin).ino);
    }
  });

  it('holds the deployment set for the list and the inspector, all from its CA, private keys 0600, directories 0700', async () => {
    const layout = await testCertificates(freshDir(), ['ehr', 'billing'], { inspector: true });
    const ca = cert(layout.ca.certFile);
    const identities = [
      BROKER_IDENTITY,
      ADMIN_IDENTITY,
      AUDITOR_IDENTITY,
      serviceIdentity('ehr'),
      serviceIdentity('billing'),
      TEST_INSPECTOR,
    ];
    const pairs = [layout.server, ...identities.map((i) => layout.identity(i))];
    for (const files of pairs) {
      expect(cert(files.certFile).verify(ca.publicKey)).toBe(true);
      expect(mode(files.keyFile)).toBe(0o600);
    }
    expect(cert(layout.identity(TEST_INSPECTOR).certFile).subject).toContain('OU=test');
    expect(mode(layout.ca.keyFile)).toBe(0o600);
    expect(mode(layout.dir)).toBe(0o700);
    expect(mode(join(layout.dir, 'services'))).toBe(0o700);
    expect(readdirSync(join(layout.dir, 'services')).sort()).toEqual([
      'billing.cert.pem',
      'billing.key.pem',
      'ehr.cert.pem',
      'ehr.key.pem',
    ]);
    const keys = allFiles(layout.dir).filter((f) => f.endsWith('.key.pem'));
    expect(keys.map(mode)).toEqual(keys.map(() => 0o600));
  });

  it('the server certificate is valid now for the host the test servers listen on', async () => {
    const layout = await testCertificates(freshDir(), ['ehr', 'billing'], { inspector: false });
    const server = cert(layout.server.certFile);
    expect(server.checkIP('127.0.0.1')).toBe('127.0.0.1');
    expect(server.checkHost('localhost')).toBe('localhost');
    expect(Date.parse(server.validFrom)).toBeLessThanOrEqual(Date.now());
    expect(Date.parse(server.validTo)).toBeGreaterThan(Date.now() + 3_600_000);
  });

  it('leaves the inspector out when the server has no inspector user', async () => {
    const layout = await testCertificates(freshDir(), ['ehr', 'billing'], { inspector: false });
    expect(existsSync(layout.identity(TEST_INSPECTOR).certFile)).toBe(false);
    expect(existsSync(layout.identity(TEST_INSPECTOR).keyFile)).toBe(false);
    expect(existsSync(layout.identity(BROKER_IDENTITY).certFile)).toBe(true);
  });

  it('a copy changed or emptied by its test (rotation, removal) does not reach the next server', async () => {
    const first: TlsLayout = await testCertificates(freshDir(), ['ehr', 'billing'], { inspector: true });
    const serverPem = readFileSync(first.server.certFile, 'utf8');
    rmSync(first.dir, { recursive: true, force: true });
    const next = await testCertificates(freshDir(), ['ehr', 'billing'], { inspector: true });
    expect(readFileSync(next.server.certFile, 'utf8')).toBe(serverPem);
  });

  it('another service list gets its own set, with its own CA', async () => {
    const two = await testCertificates(freshDir(), ['ehr', 'billing'], { inspector: true });
    const one = await testCertificates(freshDir(), ['ehr'], { inspector: true });
    expect(readFileSync(one.ca.certFile, 'utf8')).not.toBe(readFileSync(two.ca.certFile, 'utf8'));
    expect(readdirSync(join(one.dir, 'services')).sort()).toEqual(['ehr.cert.pem', 'ehr.key.pem']);
    expect(cert(one.server.certFile).verify(cert(two.ca.certFile).publicKey)).toBe(false);
  });
});
