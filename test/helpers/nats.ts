// Test harness: a real nats-server (JetStream) per test file, on a free port with its own store dir. By default it
// runs the deployment's own configuration: mutual TLS only, one user per identity with the default-deny permissions
// generated from the catalog (src/nats/server-config.ts, permissions.ts), with its own copy of certificates issued
// once per vitest run and service list (test/helpers/test-pki.ts; issuing per server cost each harness file ~1 s of
// CPU). Beside the deployment's identities the test server has one more user that no deployment has: the test's
// own inspector, allowed every subject, so a test can tap the wire, forge input or look into any stream as before.
// `{ tls: false }` runs the plaintext development server instead (tests of the plaintext path).
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type NatsConnection } from 'nats';
import { loadCatalog } from '../../src/runtime/catalog-dir.js';
import type { Catalog } from '../../src/catalog/types.js';
import { mtlsConnectionOptions } from '../../src/nats/connect-options.js';
import { identityInbox, natsPermissions, type IdentityPermissions } from '../../src/nats/permissions.js';
import { natsServerConfig } from '../../src/nats/server-config.js';
import { freePort, startNatsServer, type RunningNatsServer } from '../../src/nats/server.js';
import { natsUser, type Identity } from '../../src/tls/identity.js';
import type { TlsLayout } from '../../src/tls/store.js';
import { TEST_INSPECTOR, testCertificates } from './test-pki.js';

const ROOT = new URL('../../', import.meta.url).pathname;

export { TEST_INSPECTOR };

export interface TestNats {
  /** The running server (another process after `restart()`, on the same port and store). */
  readonly server: RunningNatsServer;
  readonly dir: string;
  /** The certificates (TLS dir as `PHI_BROKER_NATS_TLS_DIR` expects it); undefined when the server is plaintext. */
  readonly tls: TlsLayout | undefined;
  /** What the CLI needs to reach this server: NATS_URL, and PHI_BROKER_NATS_TLS_DIR when it is mTLS. */
  readonly env: Readonly<Record<string, string>>;
  /** The test inspector over mTLS (every subject), or a plaintext connection. */
  connect(name?: string): Promise<NatsConnection>;
  /** One of the deployment's identities over mTLS, held to its generated permissions (mTLS servers only). */
  connectAs(identity: Identity, name?: string): Promise<NatsConnection>;
  /** Kills the server with SIGKILL (by its PID) and waits for it to exit: a crash, JetStream unflushed. */
  kill(): Promise<void>;
  /** Starts the server again on the same port, config and JetStream store (after `kill()`). */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

export interface TestNatsOptions {
  /** Largest message, bytes (default 1 MiB). */
  readonly maxPayload?: number;
  /** false: the plaintext development server, no users (tests of the plaintext path). Default true. */
  readonly tls?: boolean;
  /** The catalog the permissions are generated from (default the shipped one). */
  readonly catalog?: Catalog;
}

/** The inbox prefix an identity must connect with under the generated permissions. */
export function inboxOf(identity: Identity): string {
  if (identity === TEST_INSPECTOR) return '_INBOX';
  return identityInbox(identity);
}

const INSPECTOR_PERMISSIONS: IdentityPermissions = {
  identity: TEST_INSPECTOR,
  user: natsUser(TEST_INSPECTOR),
  inboxPrefix: '_INBOX',
  publish: { allow: ['>'], deny: [] },
  subscribe: { allow: ['>'], deny: [] },
};

export async function startTestNats(options: TestNatsOptions = {}): Promise<TestNats> {
  const dir = mkdtempSync(join(tmpdir(), 'phi-broker-test-'));
  const natsDir = join(dir, 'nats');
  const maxPayload = options.maxPayload === undefined ? {} : { maxPayload: options.maxPayload };
  let server: RunningNatsServer;
  let tls: TlsLayout | undefined;
  let start: (port?: number) => Promise<RunningNatsServer>;
  if (options.tls === false) {
    start = (port) => startNatsServer({ dir: natsDir, ...maxPayload, ...(port === undefined ? {} : { port }) });
    server = await start();
  } else {
    const catalog =
      options.catalog ?? loadCatalog({ subjects: join(ROOT, 'subjects'), profiles: join(ROOT, 'fhir-profiles') });
    tls = await testCertificates(join(dir, 'tls'), [...catalog.services.keys()], { inspector: true });
    const port = await freePort();
    mkdirSync(natsDir, { recursive: true });
    const configFile = join(natsDir, 'nats-server.conf');
    const text = natsServerConfig(catalog, {
      tls: { caFile: tls.ca.certFile, certFile: tls.server.certFile, keyFile: tls.server.keyFile },
      storeDir: join(natsDir, 'jetstream'),
      host: '127.0.0.1',
      port,
      identities: [...natsPermissions(catalog), INSPECTOR_PERMISSIONS],
      // Handshakes on a loaded 2-core machine running several suites can take seconds (the deployment default is 2 s).
      tlsTimeoutSeconds: 15,
      ...maxPayload,
    });
    writeFileSync(configFile, text);
    start = () => startNatsServer({ dir: natsDir, configFile, port });
    server = await start();
  }
  const connections: NatsConnection[] = [];
  const connectAs = async (identity: Identity, name = identity.id): Promise<NatsConnection> => {
    if (tls === undefined) throw new TypeError('connectAs: this test server is plaintext ({ tls: false })');
    const nc = await connect({
      ...mtlsConnectionOptions(server.url, tls.identity(identity), inboxOf(identity), name),
      reconnectTimeWait: 100,
    });
    connections.push(nc);
    return nc;
  };
  return {
    get server() {
      return server;
    },
    dir,
    tls,
    env: tls === undefined ? { NATS_URL: server.url } : { NATS_URL: server.url, PHI_BROKER_NATS_TLS_DIR: tls.dir },
    async connect(name = 'test') {
      if (tls !== undefined) return connectAs(TEST_INSPECTOR, name);
      const nc = await connect({ servers: server.url, name, maxReconnectAttempts: -1, reconnectTimeWait: 100 });
      connections.push(nc);
      return nc;
    },
    connectAs,
    kill: () => server.kill(),
    async restart() {
      server = await start(server.port);
    },
    async stop() {
      await Promise.allSettled(connections.map((nc) => (nc.isClosed() ? Promise.resolve() : nc.close())));
      await server.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
