// The development PKI's pure core (src/tls/certificates.ts, identity.ts, duration.ts): what each certificate
// says and who signed it, under a frozen clock.
import { X509Certificate } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  CLOCK_SKEW_ALLOWANCE_MS,
  createCa,
  issueClientCertificate,
  issueServerCertificate,
} from '../../src/tls/certificates.js';
import { parseDuration } from '../../src/tls/duration.js';
import {
  ADMIN_IDENTITY,
  BROKER_IDENTITY,
  certificateSubject,
  natsUser,
  serviceIdentity,
} from '../../src/tls/identity.js';

const NOW = Date.UTC(2026, 0, 15, 12, 0, 0);
const HOUR = 3_600_000;

describe('createCa', () => {
  it('is a self-signed CA (basicConstraints CA, keyCertSign) valid for its lifetime from now, less the skew allowance', async () => {
    const ca = await createCa({ now: NOW, lifetimeMs: 90 * 24 * HOUR });
    const x = new X509Certificate(ca.certPem);
    expect(x.ca).toBe(true);
    expect(x.checkIssued(x)).toBe(true);
    expect(x.verify(x.publicKey)).toBe(true);
    expect(new Date(x.validFrom).getTime()).toBe(NOW - CLOCK_SKEW_ALLOWANCE_MS);
    expect(new Date(x.validTo).getTime()).toBe(NOW + 90 * 24 * HOUR);
    expect(x.publicKey.asymmetricKeyDetails).toMatchObject({ namedCurve: 'prime256v1' });
    expect(ca.keyPem).toMatch(/^-----BEGIN PRIVATE KEY-----/);
  });
});

describe('issueClientCertificate', () => {
  it.each([serviceIdentity('billing'), BROKER_IDENTITY, ADMIN_IDENTITY])(
    '%o: signed by the CA, clientAuth, subject O, OU, CN in that DER order, no SAN',
    async (identity) => {
      const ca = await createCa({ now: NOW, lifetimeMs: 30 * 24 * HOUR });
      const leaf = await issueClientCertificate(ca, identity, { now: NOW, lifetimeMs: 24 * HOUR });
      const x = new X509Certificate(leaf.certPem);
      const caX = new X509Certificate(ca.certPem);
      expect(x.ca).toBe(false);
      expect(x.checkIssued(caX)).toBe(true);
      expect(x.verify(caX.publicKey)).toBe(true);
      expect(x.subject.split('\n')).toEqual(['O=phi-broker', `OU=${identity.kind}`, `CN=${identity.id}`]);
      expect(x.keyUsage).toEqual(['1.3.6.1.5.5.7.3.2']); // id-kp-clientAuth (RFC 5280 4.2.1.12)
      expect(x.subjectAltName).toBeUndefined();
      expect(new Date(x.validTo).getTime() - NOW).toBe(24 * HOUR);
      expect(leaf.serial).toMatch(/^[0-7][0-9a-f]{31}$/);
      // A certificate signed by another CA does not check out against this one.
      const other = await createCa({ now: NOW, lifetimeMs: HOUR });
      expect(x.checkIssued(new X509Certificate(other.certPem))).toBe(false);
    },
  );

  it('gives each certificate a new key and serial', async () => {
    const ca = await createCa({ now: NOW, lifetimeMs: HOUR });
    const a = await issueClientCertificate(ca, serviceIdentity('ehr'), { now: NOW, lifetimeMs: HOUR });
    const b = await issueClientCertificate(ca, serviceIdentity('ehr'), { now: NOW, lifetimeMs: HOUR });
    expect(a.serial).not.toBe(b.serial);
    expect(a.keyPem).not.toBe(b.keyPem);
  });

  it('refuses a lifetime that is not positive (a caller mistake)', async () => {
    const ca = await createCa({ now: NOW, lifetimeMs: HOUR });
    await expect(issueClientCertificate(ca, serviceIdentity('ehr'), { now: NOW, lifetimeMs: 0 })).rejects.toThrow(
      TypeError,
    );
  });
});

describe('issueServerCertificate', () => {
  it('serverAuth, with a DNS SAN per name and an IP SAN per address', async () => {
    const ca = await createCa({ now: NOW, lifetimeMs: HOUR });
    const x = new X509Certificate(
      (await issueServerCertificate(ca, ['localhost', '127.0.0.1', 'nats'], { now: NOW, lifetimeMs: HOUR })).certPem,
    );
    expect(x.keyUsage).toEqual(['1.3.6.1.5.5.7.3.1']); // id-kp-serverAuth
    expect(x.subjectAltName).toBe('DNS:localhost, IP Address:127.0.0.1, DNS:nats');
    expect(x.checkHost('localhost')).toBe('localhost');
    expect(x.checkIP('127.0.0.1')).toBe('127.0.0.1');
  });
});

describe('identity names', () => {
  it('the NATS user is the certificate subject in RFC 2253 order (what nats-server 2.9 maps)', () => {
    expect(certificateSubject(serviceIdentity('partner-payer'))).toBe('O=phi-broker, OU=service, CN=partner-payer');
    expect(natsUser(serviceIdentity('partner-payer'))).toBe('CN=partner-payer,OU=service,O=phi-broker');
    expect(natsUser(BROKER_IDENTITY)).toBe('CN=broker,OU=broker,O=phi-broker');
    expect(natsUser(ADMIN_IDENTITY)).toBe('CN=admin,OU=admin,O=phi-broker');
  });
});

describe('parseDuration', () => {
  it.each([
    ['24h', 24 * HOUR],
    ['30m', 30 * 60_000],
    ['90s', 90_000],
    ['7d', 7 * 24 * HOUR],
  ])('%s', (text, ms) => {
    expect(parseDuration(text)).toBe(ms);
  });
  it.each(['', '0h', '-1h', '24', 'h', '1.5h', '24 hours', '1w'])('refuses %j with TypeError', (text) => {
    expect(() => parseDuration(text)).toThrow(TypeError);
  });
});
