// The PKI on disk (src/tls/store.ts) and `phi-broker certs` (src/cli/certs.ts): layout, file modes, rotation
// from the same CA, removal of a service that left the catalog, and output that never carries key material.
import { X509Certificate } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { runCerts } from '../../src/cli/certs.js';
import { parseConfig } from '../../src/config/config.js';
import { ADMIN_IDENTITY, BROKER_IDENTITY, serviceIdentity } from '../../src/tls/identity.js';
import { issueAll, readCa, tlsLayout } from '../../src/tls/store.js';
import { ROOT } from '../helpers/stack.js';

const dirs: string[] = [];
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'phi-broker-tls-'));
  dirs.push(d);
  return d;
}
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const mode = (file: string): number => statSync(file).mode & 0o777;
const NOW = Date.UTC(2026, 0, 15, 12, 0, 0);

class Collect extends Writable {
  text = '';
  override _write(chunk: Buffer, _e: BufferEncoding, cb: () => void): void {
    this.text += chunk.toString('utf8');
    cb();
  }
}

describe('issueAll', () => {
  it('issues a partner client certificate with the registered subject DN (partner.mtls), key 0600', async () => {
    const layout = tlsLayout(join(tempDir(), 'tls'));
    const dn = 'CN=partner-payer,OU=partner,O=Example Payer';
    const r = await issueAll(layout, [], {
      now: NOW,
      createCaIfMissing: true,
      partners: [{ service: 'partner-payer', subjectDn: dn }],
    });
    expect(r.issued.map((i) => i.name)).toContain('partner:partner-payer');
    const files = layout.partner('partner-payer');
    expect(mode(files.keyFile)).toBe(0o600);
    const cert = new X509Certificate(readFileSync(files.certFile));
    // Node prints the subject in DER order, RFC 4514 the reverse: the registered DN, as the gateway compares it.
    expect(cert.subject.split('\n').reverse().join(',')).toBe(dn);
    expect(cert.checkIssued(new X509Certificate(readFileSync(layout.ca.certFile)))).toBe(true);
  });

  it('writes the documented layout: directory 0700, keys 0600, certificates 0644', async () => {
    const layout = tlsLayout(join(tempDir(), 'tls'));
    const r = await issueAll(layout, ['ehr', 'billing'], { now: NOW, createCaIfMissing: true });
    expect(r.caCreated).toBe(true);
    expect(r.issued.map((i) => i.name)).toEqual([
      'server',
      'gateway',
      'broker',
      'admin',
      'operator',
      'auditor',
      'gateway-client',
      'service:ehr',
      'service:billing',
    ]);
    expect(mode(layout.dir)).toBe(0o700);
    expect(mode(join(layout.dir, 'services'))).toBe(0o700);
    const pairs = [
      layout.ca,
      layout.server,
      layout.gateway,
      ...[BROKER_IDENTITY, ADMIN_IDENTITY, serviceIdentity('ehr'), serviceIdentity('billing')].map((i) =>
        layout.identity(i),
      ),
    ];
    for (const p of pairs) {
      expect(mode(p.keyFile), p.keyFile).toBe(0o600);
      expect(mode(p.certFile), p.certFile).toBe(0o644);
      expect(readFileSync(p.keyFile, 'utf8')).toMatch(/^-----BEGIN PRIVATE KEY-----/);
    }
    expect(layout.identity(serviceIdentity('ehr')).certFile).toBe(join(layout.dir, 'services', 'ehr.cert.pem'));
    expect(layout.identity(BROKER_IDENTITY).certFile).toBe(join(layout.dir, 'broker.cert.pem'));
    // The gateway's HTTPS certificate: serverAuth for the same hosts as nats-server's, from the same CA.
    const gateway = new X509Certificate(readFileSync(layout.gateway.certFile));
    expect(gateway.checkHost('localhost')).toBe('localhost');
    expect(gateway.checkIP('127.0.0.1')).toBe('127.0.0.1');
    expect(gateway.verify(new X509Certificate(readFileSync(layout.ca.certFile)).publicKey)).toBe(true);
  });

  it('without a CA and without createCaIfMissing it refuses, naming `certs init`', async () => {
    const layout = tlsLayout(join(tempDir(), 'tls'));
    await expect(issueAll(layout, ['ehr'], { now: NOW, createCaIfMissing: false })).rejects.toThrow(
      /phi-broker certs init/,
    );
  });

  it('rotation keeps the CA, issues new keys and serials signed by it, and deletes a removed service', async () => {
    const layout = tlsLayout(join(tempDir(), 'tls'));
    await issueAll(layout, ['ehr', 'billing'], { now: NOW, createCaIfMissing: true });
    const caBefore = readCa(layout);
    const ehr = layout.identity(serviceIdentity('ehr'));
    const keyBefore = readFileSync(ehr.keyFile, 'utf8');
    const serialBefore = new X509Certificate(readFileSync(ehr.certFile)).serialNumber;
    const r = await issueAll(layout, ['ehr'], {
      now: NOW + 3_600_000,
      lifetimeMs: 7_200_000,
      createCaIfMissing: false,
    });
    expect(r.caCreated).toBe(false);
    expect(readCa(layout)).toEqual(caBefore);
    expect(readFileSync(ehr.keyFile, 'utf8')).not.toBe(keyBefore);
    const after = new X509Certificate(readFileSync(ehr.certFile));
    expect(after.serialNumber).not.toBe(serialBefore);
    expect(after.checkIssued(new X509Certificate(caBefore.certPem))).toBe(true);
    expect(new Date(after.validTo).getTime()).toBe(NOW + 3_600_000 + 7_200_000);
    expect(r.removed).toEqual(['billing']);
    expect(existsSync(layout.identity(serviceIdentity('billing')).certFile)).toBe(false);
    expect(existsSync(layout.identity(serviceIdentity('billing')).keyFile)).toBe(false);
  });
});

describe('phi-broker certs', () => {
  it('init then rotate: reports names, serials and expiry, never key material', async () => {
    const config = parseConfig({
      dataDir: tempDir(),
      subjectsDir: join(ROOT, 'subjects'),
      profilesDir: join(ROOT, 'fhir-profiles'),
    });
    const out = new Collect();
    await runCerts(config, 'init', { lifetime: '2h', now: NOW }, out);
    await runCerts(config, 'rotate', { lifetime: '2h', now: NOW + 1000 }, out);
    expect(out.text).toMatch(/^CA created: .*ca\.cert\.pem, valid until 2026-04-15T12:00:00\.000Z$/m);
    expect(out.text).toMatch(/^CA kept: /m);
    expect(out.text).toMatch(
      /^issued service:registration: serial [0-9a-f]{32}, valid until 2026-01-15T14:00:00\.000Z$/m,
    );
    const layout = tlsLayout(join(config.dataDir, 'tls'));
    const keys = [layout.ca.keyFile, layout.server.keyFile, layout.identity(BROKER_IDENTITY).keyFile].map((f) =>
      readFileSync(f, 'utf8'),
    );
    expect(out.text).not.toContain('PRIVATE KEY');
    for (const k of keys) expect(out.text).not.toContain(k.split('\n')[1] as string);
  });

  it('rotate without a CA refuses, naming `certs init`', async () => {
    const config = parseConfig({
      dataDir: tempDir(),
      subjectsDir: join(ROOT, 'subjects'),
      profilesDir: join(ROOT, 'fhir-profiles'),
    });
    await expect(runCerts(config, 'rotate', {}, new Collect())).rejects.toThrow(/phi-broker certs init/);
  });
});
