// The development PKI on disk, under `<dataDir>/tls/` (directory 0700, private keys 0600, certificates 0644):
//
//   ca.cert.pem      ca.key.pem          the development CA (longer-lived; `certs rotate` keeps it)
//   server.cert.pem  server.key.pem      nats-server (serverAuth; SAN localhost, 127.0.0.1)
//   gateway.cert.pem gateway.key.pem     the partner gateway's HTTPS (serverAuth; the same SANs)
//   broker.cert.pem  broker.key.pem      the broker processes
//   admin.cert.pem   admin.key.pem       provisioning: stream, bucket and consumer management
//   operator.cert.pem operator.key.pem   the routine operator commands (consent, access, registry, audit, ...)
//   auditor.cert.pem auditor.key.pem     the read-only operator commands (audit, registry show, disclosures, ...)
//   gateway-client.cert.pem gateway-client.key.pem   the partner gateways' NATS identity
//   services/<id>.cert.pem, services/<id>.key.pem    one per catalog service
//   routes/<node>.cert.pem, routes/<node>.key.pem     one per cluster node (`certs init --cluster-nodes 3`)
//
// Files are replaced atomically (write to a temporary name, then rename), so a nats-server reloading on SIGHUP
// or a reconnecting client reads either the old or the new file, never half of one. The pure building is in
// certificates.ts; this module only decides names and writes.
import {
  chmodSync,
  existsSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { X509Certificate } from 'node:crypto';
import { join } from 'node:path';
// Issuing loads @peculiar/x509 (~20 MB and up to a second to import): only issueAll needs it, so a process
// that merely connects with existing files (the broker, every CLI command) does not load it.
import type { CaMaterial, IssuedCertificate } from './certificates.js';
import {
  ADMIN_IDENTITY,
  AUDITOR_IDENTITY,
  BROKER_IDENTITY,
  GATEWAY_IDENTITY,
  OPERATOR_IDENTITY,
  serviceIdentity,
  type Identity,
} from './identity.js';
import { BrokerError } from '../wire/errors.js';

export const DEFAULT_LEAF_LIFETIME_MS = 24 * 3_600_000;
export const DEFAULT_CA_LIFETIME_MS = 90 * 86_400_000;
export const DEFAULT_SERVER_HOSTS: readonly string[] = ['localhost', '127.0.0.1'];

/** A certificate/key file pair, and the CA that verifies the peer — what a TLS client or server loads. */
export interface TlsFiles {
  readonly caFile: string;
  readonly certFile: string;
  readonly keyFile: string;
}

export interface TlsLayout {
  readonly dir: string;
  readonly ca: { readonly certFile: string; readonly keyFile: string };
  readonly server: TlsFiles;
  /** The partner gateway's HTTPS server certificate (`phi-broker gateway`). */
  readonly gateway: TlsFiles;
  /** A partner's client certificate for the gateway (`partner.mtls`), by service id. */
  partner(service: string): TlsFiles;
  /** Files an identity connects to NATS with. */
  identity(identity: Identity): TlsFiles;
  /** A cluster node's route certificate and key (docs/deployment.md). */
  route(node: string): TlsFiles;
}

/** `<dataDir>/tls`, where `certs init` writes unless told otherwise. */
export function defaultTlsDir(dataDir: string): string {
  return join(dataDir, 'tls');
}

/** File names inside a TLS directory (see the top of this file). */
export function tlsLayout(dir: string): TlsLayout {
  const caFile = join(dir, 'ca.cert.pem');
  const pair = (base: string): TlsFiles => ({ caFile, certFile: `${base}.cert.pem`, keyFile: `${base}.key.pem` });
  return {
    dir,
    ca: { certFile: caFile, keyFile: join(dir, 'ca.key.pem') },
    server: pair(join(dir, 'server')),
    gateway: pair(join(dir, 'gateway')),
    // The gateway's NATS client pair is not `gateway.*`: those are its HTTPS server certificate.
    identity: (identity) =>
      pair(
        identity.kind === 'service'
          ? join(dir, 'services', identity.id)
          : join(dir, identity.kind === 'gateway' ? 'gateway-client' : identity.kind),
      ),
    route: (node) => pair(join(dir, 'routes', node)),
    partner: (service) => pair(join(dir, 'partners', service)),
  };
}

export interface IssueOptions {
  readonly now: number;
  /** Lifetime of the server and client certificates (default 24 h). */
  readonly lifetimeMs?: number;
  /** Lifetime of a newly created CA (default 90 days). */
  readonly caLifetimeMs?: number;
  readonly serverHosts?: readonly string[];
  /** Cluster nodes to issue route certificates for, each with the hosts its peers dial it by. */
  readonly clusterNodes?: readonly ClusterNodeHosts[];
  /** Partners registered with `mtls`: a gateway client certificate each, with the registered subject DN. */
  readonly partners?: readonly { readonly service: string; readonly subjectDn: string }[];
}

export interface ClusterNodeHosts {
  readonly name: string;
  readonly hosts: readonly string[];
}

export interface IssueReport {
  readonly dir: string;
  readonly caCreated: boolean;
  readonly caNotAfter: Date;
  /** `server`, `gateway`, `route:<node>`, `partner:<id>`, `broker`, `admin`, `operator`, `auditor`, `gateway-client`, `service:<id>` with the expiry of each certificate issued. */
  readonly issued: readonly { readonly name: string; readonly serial: string; readonly notAfter: Date }[];
  /** Service certificates deleted because the service is no longer in the catalog. */
  readonly removed: readonly string[];
}

function writeAtomically(file: string, text: string, mode: number): void {
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, text, { mode });
  chmodSync(tmp, mode); // the umask may have narrowed or (for 0644) kept it; make it exact
  renameSync(tmp, file);
}

function writePair(files: { certFile: string; keyFile: string }, cert: IssuedCertificate): void {
  writeAtomically(files.keyFile, cert.keyPem, 0o600);
  writeAtomically(files.certFile, cert.certPem, 0o644);
}

function ensureDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
}

export function readCa(layout: TlsLayout): CaMaterial {
  if (!existsSync(layout.ca.certFile) || !existsSync(layout.ca.keyFile)) {
    throw new BrokerError('E_SETUP_MISSING', `no development CA in ${layout.dir}: run \`phi-broker certs init\` first`);
  }
  return { certPem: readFileSync(layout.ca.certFile, 'utf8'), keyPem: readFileSync(layout.ca.keyFile, 'utf8') };
}

/**
 * Issues the server certificates (nats-server, partner gateway) and a client certificate for the broker, the admin, the
 * operator, the auditor, the partner gateways and every service in
 * `services`, signed by the CA in the layout — creating the CA first when `createCaIfMissing` and there is none.
 * Certificates of services no longer listed are deleted, so a removed service cannot connect once NATS
 * reloads (its user is gone from the generated config too).
 */
export async function issueAll(
  layout: TlsLayout,
  services: readonly string[],
  opts: IssueOptions & { readonly createCaIfMissing: boolean },
): Promise<IssueReport> {
  const { createCa, issueClientCertificate, issuePartnerCertificate, issueRouteCertificate, issueServerCertificate } =
    await import('./certificates.js');
  ensureDir(layout.dir);
  ensureDir(join(layout.dir, 'services'));
  let caCreated = false;
  if (!existsSync(layout.ca.certFile) && opts.createCaIfMissing) {
    writePair(layout.ca, await createCa({ now: opts.now, lifetimeMs: opts.caLifetimeMs ?? DEFAULT_CA_LIFETIME_MS }));
    caCreated = true;
  }
  const ca = readCa(layout);
  const validity = { now: opts.now, lifetimeMs: opts.lifetimeMs ?? DEFAULT_LEAF_LIFETIME_MS };
  const issued: { name: string; serial: string; notAfter: Date }[] = [];

  const server = await issueServerCertificate(ca, opts.serverHosts ?? DEFAULT_SERVER_HOSTS, validity);
  writePair(layout.server, server);
  issued.push({ name: 'server', serial: server.serial, notAfter: server.notAfter });
  const gateway = await issueServerCertificate(ca, opts.serverHosts ?? DEFAULT_SERVER_HOSTS, validity);
  writePair(layout.gateway, gateway);
  issued.push({ name: 'gateway', serial: gateway.serial, notAfter: gateway.notAfter });
  if ((opts.clusterNodes ?? []).length > 0) ensureDir(join(layout.dir, 'routes'));
  for (const node of opts.clusterNodes ?? []) {
    const route = await issueRouteCertificate(ca, node.hosts, validity);
    writePair(layout.route(node.name), route);
    issued.push({ name: `route:${node.name}`, serial: route.serial, notAfter: route.notAfter });
  }
  if ((opts.partners ?? []).length > 0) ensureDir(join(layout.dir, 'partners'));
  for (const p of opts.partners ?? []) {
    const cert = await issuePartnerCertificate(ca, p.subjectDn, validity);
    writePair(layout.partner(p.service), cert);
    issued.push({ name: `partner:${p.service}`, serial: cert.serial, notAfter: cert.notAfter });
  }
  const identities: Identity[] = [
    BROKER_IDENTITY,
    ADMIN_IDENTITY,
    OPERATOR_IDENTITY,
    AUDITOR_IDENTITY,
    GATEWAY_IDENTITY,
    ...services.map(serviceIdentity),
  ];
  for (const identity of identities) {
    const cert = await issueClientCertificate(ca, identity, validity);
    writePair(layout.identity(identity), cert);
    issued.push({
      name:
        identity.kind === 'service'
          ? `service:${identity.id}`
          : identity.kind === 'gateway'
            ? 'gateway-client'
            : identity.kind,
      serial: cert.serial,
      notAfter: cert.notAfter,
    });
  }

  const keep = new Set(services);
  const removed: string[] = [];
  for (const file of readdirSync(join(layout.dir, 'services'))) {
    const m = /^(.+)\.(cert|key)\.pem$/.exec(file);
    if (m !== null && !keep.has(m[1] as string)) {
      rmSync(join(layout.dir, 'services', file), { force: true });
      if (m[2] === 'cert') removed.push(m[1] as string);
    }
  }
  const caNotAfter = new Date(new X509Certificate(ca.certPem).validTo);
  return { dir: layout.dir, caCreated, caNotAfter, issued, removed: removed.sort() };
}
