// `phi-broker certs init|rotate`: the development PKI (src/tls/). Prints what it issued — names, serials,
// expiry — never key material. `init` creates the CA when there is none; `rotate` needs the CA and issues
// fresh server and client certificates (new keys) from it, then nats-server reloads on SIGHUP.
import { resolve } from 'node:path';
import type { Writable } from 'node:stream';
import type { BrokerConfig } from '../config/config.js';
import { parseDuration } from '../tls/duration.js';
import {
  DEFAULT_CA_LIFETIME_MS,
  DEFAULT_LEAF_LIFETIME_MS,
  DEFAULT_SERVER_HOSTS,
  defaultTlsDir,
  issueAll,
  readCa,
  tlsLayout,
  type IssueReport,
} from '../tls/store.js';
import { loadConfiguredCatalog } from '../runtime/data-dir.js';
import { clusterNodeNames } from '../nats/cluster-config.js';

export interface CertsOptions {
  readonly dir?: string;
  readonly lifetime?: string;
  readonly caLifetime?: string;
  readonly serverHost?: readonly string[];
  /** Issue route certificates for a cluster of this many nodes (nats-1 … nats-<n>). */
  readonly clusterNodes?: number;
  readonly now?: number;
}

function report(out: Writable, r: IssueReport): void {
  out.write(
    `CA ${r.caCreated ? 'created' : 'kept'}: ${r.dir}/ca.cert.pem, valid until ${r.caNotAfter.toISOString()}\n`,
  );
  for (const i of r.issued)
    out.write(`issued ${i.name}: serial ${i.serial}, valid until ${i.notAfter.toISOString()}\n`);
  for (const s of r.removed) out.write(`removed service:${s} (no longer in the catalog)\n`);
  out.write(`private keys: mode 0600 in ${r.dir} (directory 0700)\n`);
}

export async function runCerts(
  config: BrokerConfig,
  mode: 'init' | 'rotate',
  opts: CertsOptions,
  out: Writable,
): Promise<void> {
  const catalog = loadConfiguredCatalog(config);
  const layout = tlsLayout(resolve(opts.dir ?? defaultTlsDir(config.dataDir)));
  if (mode === 'rotate') readCa(layout); // throws, naming `certs init`, when there is no CA
  const hosts = opts.serverHost ?? DEFAULT_SERVER_HOSTS;
  const nodes = opts.clusterNodes === undefined ? [] : clusterNodeNames(opts.clusterNodes);
  const r = await issueAll(layout, [...catalog.services.keys()].sort(), {
    now: opts.now ?? Date.now(),
    lifetimeMs: opts.lifetime === undefined ? DEFAULT_LEAF_LIFETIME_MS : parseDuration(opts.lifetime),
    caLifetimeMs: opts.caLifetime === undefined ? DEFAULT_CA_LIFETIME_MS : parseDuration(opts.caLifetime),
    createCaIfMissing: mode === 'init',
    // Clients reach a cluster node by its name: the server certificate names every node.
    serverHosts: [...new Set([...nodes, ...hosts])],
    clusterNodes: nodes.map((name) => ({ name, hosts: [...new Set([name, ...hosts])] })),
    // Development client certificates of the partners that authenticate with mutual TLS (docs/partner-gateway.md).
    partners: [...catalog.services.values()].flatMap((s) =>
      s.partner?.mtls === undefined ? [] : [{ service: s.id, subjectDn: s.partner.mtls.subjectDn }],
    ),
  });
  report(out, r);
}
