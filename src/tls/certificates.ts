// Pure certificate building for the development PKI (no file I/O): a CA, the nats-server certificate and one
// client certificate per identity. X.509 v3 profile per RFC 5280: the CA has basicConstraints cA=TRUE
// (pathLen 0) and keyUsage keyCertSign/cRLSign (4.2.1.9, 4.2.1.3); leaves have cA=FALSE, keyUsage
// digitalSignature and an extendedKeyUsage of serverAuth or clientAuth (4.2.1.12) — Go's TLS stack, which
// nats-server uses, verifies client certificates for clientAuth. Keys are ECDSA P-256 with SHA-256
// (RFC 5480, RFC 5758) from node's WebCrypto; private keys leave as PKCS#8 PEM, and are never logged.
import { randomBytes, webcrypto } from 'node:crypto';
import { isIP } from 'node:net';
import * as x509 from '@peculiar/x509';
import { ROUTE_SUBJECT, certificateSubject, type Identity } from './identity.js';

type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

const ALGORITHM = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
/** notBefore is set this far back so a peer whose clock runs a little behind still accepts a fresh certificate. */
export const CLOCK_SKEW_ALLOWANCE_MS = 5 * 60_000;

export interface IssuedCertificate {
  readonly certPem: string;
  /** PKCS#8 PEM. Secret: written 0600, never logged. */
  readonly keyPem: string;
  readonly serial: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
}

/** The CA's certificate and private key, as PEM (what `issue*` signs with). */
export interface CaMaterial {
  readonly certPem: string;
  readonly keyPem: string;
}

export interface Validity {
  /** Issue time (injected clock). */
  readonly now: number;
  readonly lifetimeMs: number;
}

/** RFC 5280 4.1.2.2: a positive serial of at most 20 octets; 16 random bytes with the top bit cleared. */
function serialNumber(): string {
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0] as number) & 0x7f;
  return bytes.toString('hex');
}

function window(v: Validity): { notBefore: Date; notAfter: Date } {
  if (!Number.isFinite(v.lifetimeMs) || v.lifetimeMs <= 0) throw new TypeError('lifetimeMs must be a positive number');
  return { notBefore: new Date(v.now - CLOCK_SKEW_ALLOWANCE_MS), notAfter: new Date(v.now + v.lifetimeMs) };
}

async function newKeyPair(): Promise<CryptoKeyPair> {
  return (await webcrypto.subtle.generateKey(ALGORITHM, true, ['sign', 'verify'])) as CryptoKeyPair;
}

async function privateKeyPem(key: CryptoKey): Promise<string> {
  const der = await webcrypto.subtle.exportKey('pkcs8', key);
  return x509.PemConverter.encode(der, 'PRIVATE KEY');
}

async function importCa(ca: CaMaterial): Promise<{ cert: x509.X509Certificate; key: CryptoKey }> {
  const cert = new x509.X509Certificate(ca.certPem);
  const der = x509.PemConverter.decode(ca.keyPem)[0];
  if (der === undefined) throw new TypeError('the CA key is not PEM');
  const key = await webcrypto.subtle.importKey('pkcs8', der, { name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign']);
  return { cert, key: key as CryptoKey };
}

function issued(cert: x509.X509Certificate, keyPem: string, serial: string): IssuedCertificate {
  return { certPem: cert.toString('pem'), keyPem, serial, notBefore: cert.notBefore, notAfter: cert.notAfter };
}

/** A self-signed development CA (`O=phi-broker, CN=<name>`). */
export async function createCa(v: Validity, name = 'phi-broker development CA'): Promise<IssuedCertificate> {
  const keys = await newKeyPair();
  const serial = serialNumber();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial,
    name: `O=phi-broker, CN=${name}`,
    ...window(v),
    signingAlgorithm: ALGORITHM,
    keys,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return issued(cert, await privateKeyPem(keys.privateKey), serial);
}

async function issueLeaf(
  ca: CaMaterial,
  subject: string,
  usage: 'server' | 'client' | 'route',
  v: Validity,
  sans: x509.JsonGeneralName[],
): Promise<IssuedCertificate> {
  const { cert: caCert, key: caKey } = await importCa(ca);
  const keys = await newKeyPair();
  const serial = serialNumber();
  const extensions: x509.Extension[] = [
    new x509.BasicConstraintsExtension(false, undefined, true),
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
    new x509.ExtendedKeyUsageExtension(
      usage === 'route'
        ? [x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]
        : [usage === 'server' ? x509.ExtendedKeyUsage.serverAuth : x509.ExtendedKeyUsage.clientAuth],
    ),
    await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    await x509.AuthorityKeyIdentifierExtension.create(caCert),
  ];
  if (sans.length > 0) extensions.push(new x509.SubjectAlternativeNameExtension(sans));
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial,
    subject,
    issuer: caCert.subject,
    ...window(v),
    signingAlgorithm: ALGORITHM,
    publicKey: keys.publicKey,
    signingKey: caKey,
    extensions,
  });
  return issued(cert, await privateKeyPem(keys.privateKey), serial);
}

function hostSans(hosts: readonly string[]): x509.JsonGeneralName[] {
  return hosts.map((h): x509.JsonGeneralName => (isIP(h) === 0 ? { type: 'dns', value: h } : { type: 'ip', value: h }));
}

/** nats-server's certificate: serverAuth, with a SAN per host (DNS name or IP address, RFC 6125). */
export async function issueServerCertificate(
  ca: CaMaterial,
  hosts: readonly string[],
  v: Validity,
): Promise<IssuedCertificate> {
  if (hosts.length === 0) throw new TypeError('a server certificate needs at least one host');
  return issueLeaf(ca, `O=phi-broker, OU=server, CN=${hosts[0] as string}`, 'server', v, hostSans(hosts));
}

/**
 * One cluster node's route certificate: a route is TLS both ways (the node dials its peers and accepts them), so
 * serverAuth and clientAuth; a SAN per host its peers dial it by (the dialling node checks it, RFC 6125); the
 * shared route subject, which the peers map to the route user (identity.ts ROUTE_SUBJECT).
 */
export async function issueRouteCertificate(
  ca: CaMaterial,
  hosts: readonly string[],
  v: Validity,
): Promise<IssuedCertificate> {
  if (hosts.length === 0) throw new TypeError('a route certificate needs at least one host');
  return issueLeaf(ca, ROUTE_SUBJECT, 'route', v, hostSans(hosts));
}

/**
 * A partner's TLS client certificate for the gateway (RFC 8705 mutual TLS): clientAuth, its subject the DN the
 * catalog registers (`partner.mtls.subjectDn`, RFC 4514 order, written here first RDN first). No NATS user maps
 * to it, so it opens no NATS connection.
 */
export async function issuePartnerCertificate(
  ca: CaMaterial,
  subjectDn: string,
  v: Validity,
): Promise<IssuedCertificate> {
  return issueLeaf(ca, subjectDn.split(',').reverse().join(', '), 'client', v, []);
}

/** A client certificate for one identity: clientAuth, no SAN, so nats-server maps its subject (identity.ts). */
export async function issueClientCertificate(
  ca: CaMaterial,
  identity: Identity,
  v: Validity,
): Promise<IssuedCertificate> {
  return issueLeaf(ca, certificateSubject(identity), 'client', v, []);
}
