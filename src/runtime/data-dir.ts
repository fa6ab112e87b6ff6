// What every CLI command shares: the data dir layout, dev keys, the catalog, and finding (or starting)
// NATS. `up` writes `<data-dir>/nats/server.json` (url, pid, TLS dir) so `publish` and `tail` find the embedded server;
// NATS_URL points every command at an existing NATS instead.
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect, type NatsConnection } from 'nats';
import { loadCatalog } from './catalog-dir.js';
import { type Catalog } from '../catalog/types.js';
import { BROKER_ID, GATEWAY_AUDIT_ID, OPERATOR_AUDIT_ID } from '../wire/ids.js';
import type { BrokerConfig } from '../config/config.js';
import { type PublicKeyRecord, type ServiceKeys } from '../crypto/keys.js';
import { ensureKeys, openServiceKeyVersions, readJwks } from './key-files.js';
import { configuredKeyProtection, type KeyProtection } from './key-protection.js';
import { initCrypto } from '../crypto/sodium.js';
import { mtlsConnectionOptions, type NatsTlsFiles } from '../nats/connect-options.js';
import { inboxPrefix } from '../wire/names.js';
import { identityInbox } from '../nats/permissions.js';
import {
  ADMIN_IDENTITY,
  AUDITOR_IDENTITY,
  OPERATOR_IDENTITY,
  serviceIdentity,
  type Identity,
} from '../tls/identity.js';
import { tlsLayout } from '../tls/store.js';
import { isProcessAlive } from './process-info.js';
import { BrokerError } from '../wire/errors.js';

export interface DataDirLayout {
  readonly root: string;
  readonly keys: string;
  readonly nats: string;
  readonly serverFile: string;
  /** The embedded nats-server's config, log file (rotated beside it) and pid file. */
  readonly natsConfig: string;
  readonly natsLog: string;
  readonly natsPid: string;
}

export function layout(config: BrokerConfig): DataDirLayout {
  const root = config.dataDir;
  const nats = join(root, 'nats');
  return {
    root,
    keys: join(root, 'keys'),
    nats,
    serverFile: join(nats, 'server.json'),
    natsConfig: join(nats, 'nats-server.conf'),
    natsLog: join(nats, 'nats-server.log'),
    natsPid: join(nats, 'nats-server.pid'),
  };
}

export function loadConfiguredCatalog(config: BrokerConfig): Catalog {
  return loadCatalog({ subjects: config.subjectsDir, profiles: config.profilesDir });
}

/**
 * Keys for the broker, the gateways' and operator commands' audit signing, and every catalog service (created when missing, kept otherwise), through the configured key
 * protection (plain development files unless config.keyProvider says otherwise).
 */
export async function devKeys(
  config: BrokerConfig,
  catalog: Catalog,
  protection: KeyProtection = configuredKeyProtection(config),
): Promise<{ dir: string; peers: PublicKeyRecord[]; protection: KeyProtection }> {
  await initCrypto();
  const dir = layout(config).keys;
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  await ensureKeys(dir, [BROKER_ID, GATEWAY_AUDIT_ID, OPERATOR_AUDIT_ID, ...catalog.services.keys()], protection);
  return { dir, peers: readJwks(dir), protection };
}

/**
 * Every key version a service's key file holds, current first (a previous version opens the deliveries sealed to it
 * that wait in PHI_DELIVER until `keys prune` destroys it), and the data dir's public keys.
 */
export async function serviceKeys(
  config: BrokerConfig,
  service: string,
): Promise<{ keys: ServiceKeys[]; peers: PublicKeyRecord[] }> {
  await initCrypto();
  const dir = layout(config).keys;
  if (!existsSync(join(dir, 'jwks.json'))) {
    throw new BrokerError(
      'E_SETUP_MISSING',
      `no keys in ${dir}: run \`phi-broker up --data-dir ${config.dataDir}\` first (it creates development keys)`,
    );
  }
  return { keys: await openServiceKeyVersions(dir, service, configuredKeyProtection(config)), peers: readJwks(dir) };
}

/** NATS_URL when set, else the embedded server that `up` started in this data dir. */
export function natsUrl(config: BrokerConfig): string {
  if (config.natsUrl !== undefined) return config.natsUrl;
  const file = layout(config).serverFile;
  if (!existsSync(file)) {
    throw new BrokerError(
      'E_SETUP_MISSING',
      `no running phi-broker in ${config.dataDir}: start one with \`phi-broker up --data-dir ${config.dataDir}\`, or set NATS_URL`,
    );
  }
  const server = JSON.parse(readFileSync(file, 'utf8')) as { url: string; pid?: number };
  if (server.pid !== undefined && !isProcessAlive(server.pid)) {
    throw new BrokerError(
      'E_SETUP_MISSING',
      `no running phi-broker in ${config.dataDir} (${file} is left from one that did not stop cleanly): start one with \`phi-broker up --data-dir ${config.dataDir}\`, or set NATS_URL`,
    );
  }
  return server.url;
}

/**
 * A service's connection for `publish`/`tail`: mTLS as that service when there is a TLS dir (PHI_BROKER_NATS_TLS_DIR, or the running `up`'s), else the
 * plaintext development connection — for which PhiClient needs (and warns about) `insecure: true`.
 */
export async function connectService(
  config: BrokerConfig,
  service: string,
  name: string,
): Promise<{ nc: NatsConnection; insecure: boolean }> {
  const url = natsUrl(config);
  const tlsDir = cliTlsDir(config);
  if (tlsDir === undefined) return { nc: await connectNats(url, name), insecure: true };
  const files = tlsLayout(tlsDir).identity(serviceIdentity(service));
  return { nc: await connectNats(url, name, { files, inbox: inboxPrefix(service) }), insecure: false };
}

/** What an operator command does: `read`, `write`, or `admin` (`audit --stream <copy>`); docs/cli.md lists which is which. */
export type OperatorAccess = 'read' | 'write' | 'admin';

/**
 * The identity an operator command connects as over mTLS: `write` the operator; `read` per `operatorIdentity` (the
 * auditor when its certificate is there, else the operator); `admin` break-glass (docs/configuration.md).
 */
export function operatorIdentity(config: BrokerConfig, access: OperatorAccess): Identity | undefined {
  const tlsDir = cliTlsDir(config);
  if (tlsDir === undefined) return undefined;
  if (access === 'admin' || config.operatorIdentity === 'admin') return ADMIN_IDENTITY;
  if (access === 'write' || config.operatorIdentity === 'operator') return OPERATOR_IDENTITY;
  if (config.operatorIdentity === 'auditor' || existsSync(tlsLayout(tlsDir).identity(AUDITOR_IDENTITY).certFile))
    return AUDITOR_IDENTITY;
  return OPERATOR_IDENTITY;
}

/** An operator's connection (quarantine, audit, disclosures, consent, registry, access): over mTLS as operatorIdentity when there is a TLS dir. */
export async function connectOperator(
  config: BrokerConfig,
  name: string,
  access: OperatorAccess,
): Promise<NatsConnection> {
  const url = natsUrl(config);
  const tlsDir = cliTlsDir(config);
  const identity = operatorIdentity(config, access);
  if (tlsDir === undefined || identity === undefined) return connectNats(url, name);
  return connectNats(url, name, { files: tlsLayout(tlsDir).identity(identity), inbox: identityInbox(identity) });
}

/** The inbox prefix connectOperator's connection uses: its identity's under mTLS, nats.js's default in plaintext. */
export function operatorInbox(config: BrokerConfig, access: OperatorAccess): string {
  const identity = operatorIdentity(config, access); // undefined exactly when there is no TLS dir
  return identity === undefined ? '_INBOX' : identityInbox(identity);
}

/** PHI_BROKER_NATS_TLS_DIR, or the TLS dir of the embedded server `up` started (in server.json; none under --insecure-plaintext). */
export function cliTlsDir(config: BrokerConfig): string | undefined {
  if (config.natsTlsDir !== undefined || config.natsUrl !== undefined) return config.natsTlsDir;
  const file = layout(config).serverFile;
  if (!existsSync(file)) return undefined;
  const server = JSON.parse(readFileSync(file, 'utf8')) as { tlsDir?: unknown };
  return typeof server.tlsDir === 'string' ? server.tlsDir : undefined;
}

/** With `mtls`, connects as that identity over mutual TLS (src/nats/connect-options.ts); else plaintext. */
export async function connectNats(
  url: string,
  name: string,
  mtls?: { readonly files: NatsTlsFiles; readonly inbox: string },
): Promise<NatsConnection> {
  // NATS_URL may list several servers, comma-separated (a cluster's nodes); nats.js tries them in turn and learns
  // the rest from the cluster.
  const servers = url
    .split(',')
    .map((u) => u.trim())
    .filter((u) => u !== '');
  try {
    // noAsyncTraces: no stack captured per request (every JetStream publish is one); errors keep their codes,
    // which is all phi-broker reads (src/log/log.ts errorFields). Profiled: ~7 % of the broker's CPU (docs/performance.md).
    if (mtls !== undefined)
      return await connect({ ...mtlsConnectionOptions(servers, mtls.files, mtls.inbox, name), noAsyncTraces: true });
    return await connect({ servers, name, maxReconnectAttempts: -1, reconnectTimeWait: 250, noAsyncTraces: true });
  } catch (err) {
    // nats.js says only e.g. CONNECTION_REFUSED; say where.
    throw new BrokerError(
      'E_NATS_UNREACHABLE',
      `cannot connect to NATS at ${url}: ${err instanceof Error ? err.message : String(err)}`,
      { cause: err },
    );
  }
}
