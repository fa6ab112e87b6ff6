// Test harness for the mTLS deployment: development certificates, the generated nats-server config, a real
// nats-server running it, streams provisioned by the admin identity, and connections as any identity. The
// certificates are the deployment's set (issueAll: CA, server, broker, admin, auditor, services; no test inspector),
// copied from the run's cache (test/helpers/test-pki.ts); tests of expiry, other CAs, removed services and rotation
// issue those certificates themselves from this CA.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type NatsConnection, type NatsError } from 'nats';
import { expect } from 'vitest';
import { Broker } from '../../src/broker/broker.js';
import { ensureBrokerSecrets } from '../../src/runtime/broker-secrets.js';
import { loadCatalog } from '../../src/runtime/catalog-dir.js';
import { type Catalog } from '../../src/catalog/types.js';
import { BROKER_ID, GATEWAY_AUDIT_ID, OPERATOR_AUDIT_ID } from '../../src/wire/ids.js';
import { parseConfig, type BrokerConfig } from '../../src/config/config.js';
import { type PublicKeyRecord } from '../../src/crypto/keys.js';
import { ensureDevKeys, readJwks, readServiceKeys } from '../../src/runtime/key-files.js';
import { initCrypto } from '../../src/crypto/sodium.js';
import type { Logger } from '../../src/log/log.js';
import { mtlsConnectionOptions } from '../../src/nats/connect-options.js';
import { identityInbox } from '../../src/nats/permissions.js';
import { provisionStreams } from '../../src/runtime/provision.js';
import { natsServerConfig } from '../../src/nats/server-config.js';
import { freePort, startNatsServer, type RunningNatsServer } from '../../src/nats/server.js';
import { ADMIN_IDENTITY, BROKER_IDENTITY, serviceIdentity, type Identity } from '../../src/tls/identity.js';
import { PhiClient, type PhiClientOptions } from '../../src/sdk/client.js';
import type { TlsLayout } from '../../src/tls/store.js';
import { ROOT } from './stack.js';
import { testCertificates } from './test-pki.js';

export interface MtlsStack {
  readonly dir: string;
  readonly server: RunningNatsServer;
  readonly layout: TlsLayout;
  readonly catalog: Catalog;
  readonly config: BrokerConfig;
  readonly keysDir: string;
  readonly peers: PublicKeyRecord[];
  /** The server's log since it became ready. */
  log(): string;
  connectAs(identity: Identity): Promise<NatsConnection>;
  startBroker(logger: Logger): Promise<{ broker: Broker; nc: NatsConnection }>;
  /** An SDK client of `service` over mTLS as its own identity (the caller closes it). */
  connectClient(service: string, logger: Logger, extra?: Partial<PhiClientOptions>): Promise<PhiClient>;
  stop(): Promise<void>;
}

export function inboxOf(identity: Identity): string {
  return identityInbox(identity);
}

export async function startMtlsStack(onLog?: (text: string) => void): Promise<MtlsStack> {
  await initCrypto();
  const dir = mkdtempSync(join(tmpdir(), 'phi-broker-mtls-'));
  const config = parseConfig({
    dataDir: join(dir, 'data'),
    subjectsDir: join(ROOT, 'subjects'),
    profilesDir: join(ROOT, 'fhir-profiles'),
  });
  const catalog = loadCatalog({ subjects: config.subjectsDir, profiles: config.profilesDir });
  const layout = await testCertificates(join(dir, 'tls'), [...catalog.services.keys()], { inspector: false });
  const port = await freePort();
  const natsDir = join(dir, 'nats');
  mkdirSync(natsDir, { recursive: true });
  const configFile = join(natsDir, 'nats-server.conf');
  const tls = { caFile: layout.ca.certFile, certFile: layout.server.certFile, keyFile: layout.server.keyFile };
  writeFileSync(
    configFile,
    natsServerConfig(catalog, { tls, storeDir: join(natsDir, 'jetstream'), host: '127.0.0.1', port }),
  );
  let log = '';
  const server = await startNatsServer({
    dir: natsDir,
    configFile,
    port,
    onLog: (t) => {
      log += t;
      onLog?.(t);
    },
  });
  const connections: NatsConnection[] = [];
  const brokers: Broker[] = [];
  const connectAs = async (identity: Identity): Promise<NatsConnection> => {
    const nc = await connect(
      mtlsConnectionOptions(server.url, layout.identity(identity), inboxOf(identity), identity.id),
    );
    connections.push(nc);
    return nc;
  };
  const admin = await connectAs(ADMIN_IDENTITY);
  await provisionStreams(admin, config, catalog);
  await admin.close();
  const keysDir = join(dir, 'keys');
  mkdirSync(keysDir, { recursive: true });
  ensureDevKeys(keysDir, [BROKER_ID, GATEWAY_AUDIT_ID, OPERATOR_AUDIT_ID, ...catalog.services.keys()]);
  const peers = readJwks(keysDir);
  return {
    dir,
    server,
    layout,
    catalog,
    config,
    keysDir,
    peers,
    log: () => log,
    connectAs,
    connectClient: (service, logger, extra = {}) =>
      PhiClient.connect({
        servers: server.url,
        tls: layout.identity(serviceIdentity(service)),
        service,
        keys: readServiceKeys(keysDir, service),
        peers,
        logger,
        ...extra,
      }),
    async startBroker(logger) {
      const nc = await connectAs(BROKER_IDENTITY);
      const broker = await Broker.start({
        config,
        catalog,
        nc,
        keys: readServiceKeys(keysDir, BROKER_ID),
        peers,
        secrets: ensureBrokerSecrets(keysDir),
        logger,
      });
      brokers.push(broker);
      return { broker, nc };
    },
    async stop() {
      for (const b of brokers) await b.stop();
      await Promise.allSettled(connections.map((nc) => (nc.isClosed() ? Promise.resolve() : nc.close())));
      await server.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * Expects `attempt` (a request or JetStream call) to be refused by the server's
 * `-ERR 'Permissions Violation for Publish to "<subject>"'`, as nats.js rejects it.
 */
export async function publishDenied(attempt: Promise<unknown>, subject: string): Promise<void> {
  const err = await attempt.then(
    () => {
      throw new Error(`allowed: ${subject}`);
    },
    (e: unknown) => e as NatsError,
  );
  expect(err.code, String(err.message)).toBe('PERMISSIONS_VIOLATION');
  expect(err.permissionContext).toEqual({ operation: 'publish', subject });
}
