// Test harness: the production shape of docs/deployment.md on one machine — a 3-node NATS JetStream cluster as three
// local nats-server processes on free loopback ports, each with its own store dir, running the configs
// src/nats/cluster-config.ts generates (client mTLS with the catalog's users and permissions, routes over mTLS with
// route certificates from the same CA). It waits for a JetStream meta leader and for stream leaders, kills a node
// with SIGKILL by PID, restarts it on the same ports and store, and finds a stream's leader (stream info
// `cluster.leader`). Connections list all three nodes, as a deployment's NATS_URL does.
import { appendFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type JetStreamManager, type NatsConnection } from 'nats';
import type { Catalog } from '../../src/catalog/types.js';
import { clusterNodeNames, clusterServerConfigs, DEFAULT_CLUSTER_NAME } from '../../src/nats/cluster-config.js';
import { mtlsConnectionOptions } from '../../src/nats/connect-options.js';
import { identityInbox } from '../../src/nats/permissions.js';
import { freePort, startNatsServer, type RunningNatsServer } from '../../src/nats/server.js';
import { ADMIN_IDENTITY, type Identity } from '../../src/tls/identity.js';
import { readCa, type TlsLayout } from '../../src/tls/store.js';
import { testCertificates } from './test-pki.js';

const HOST = '127.0.0.1';

export interface ClusterNodeHandle {
  readonly name: string;
  readonly port: number;
  readonly url: string;
  /** The running process (undefined while killed). */
  server: RunningNatsServer | undefined;
}

export interface TestCluster {
  readonly dir: string;
  readonly nodes: readonly ClusterNodeHandle[];
  readonly tls: TlsLayout;
  /** NATS_URL (every node, comma-separated) and PHI_BROKER_NATS_TLS_DIR, for `phi-broker` child processes. */
  readonly env: Readonly<Record<string, string>>;
  /** An identity over mTLS, with every node as a server (held to its generated permissions). */
  connectAs(identity: Identity, name?: string): Promise<NatsConnection>;
  /** Resolves once JetStream answers (a meta leader is elected); rejects after `timeoutMs`. */
  waitForMetaLeader(timeoutMs?: number): Promise<void>;
  /** Resolves once each stream has a leader and every replica is current; rejects after `timeoutMs`. */
  waitForStreamLeaders(streams: readonly string[], timeoutMs?: number): Promise<void>;
  /** The server_name of the stream's leader (undefined while it has none). */
  streamLeader(stream: string): Promise<string | undefined>;
  /** SIGKILL (kill -9) by PID; resolves once the process has exited. */
  kill(node: string): Promise<number>;
  /** Starts a killed node again on its ports and store; resolves once it is ready. */
  restart(node: string): Promise<void>;
  stop(): Promise<void>;
}

/** Bounded polling of a condition NATS cannot push (leader elections): at most `timeoutMs`, every 100 ms. */
async function poll<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (let attempt = 0; attempt < Math.ceil(timeoutMs / 100) + 1; attempt++) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(
    `timed out after ${timeoutMs} ms waiting for ${what}${last === undefined ? '' : `: ${String(last)}`}`,
  );
}

export async function startTestCluster(catalog: Catalog, size = 3): Promise<TestCluster> {
  const dir = mkdtempSync(join(tmpdir(), 'phi-broker-cluster-'));
  const tls = await testCertificates(join(dir, 'tls'), [...catalog.services.keys()], { inspector: false });
  // Route certificates from the same CA (what `certs init --cluster-nodes` issues), naming the loopback address.
  const { issueRouteCertificate } = await import('../../src/tls/certificates.js');
  const ca = readCa(tls);
  const names = clusterNodeNames(size);
  mkdirSync(join(dir, 'tls', 'routes'), { recursive: true, mode: 0o700 });
  for (const name of names) {
    const cert = await issueRouteCertificate(ca, [HOST, 'localhost'], { now: Date.now(), lifetimeMs: 24 * 3_600_000 });
    writeFileSync(tls.route(name).keyFile, cert.keyPem, { mode: 0o600 });
    writeFileSync(tls.route(name).certFile, cert.certPem);
  }
  const ports = new Map<string, { port: number; clusterPort: number }>();
  for (const name of names) ports.set(name, { port: await freePort(HOST), clusterPort: await freePort(HOST) });
  const configs = clusterServerConfigs(catalog, {
    clusterName: DEFAULT_CLUSTER_NAME,
    listenHost: HOST,
    tls: { caFile: tls.ca.certFile, certFile: tls.server.certFile, keyFile: tls.server.keyFile },
    // Handshakes on a loaded 2-core machine can take seconds (the deployment default is 2 s).
    tlsTimeoutSeconds: 15,
    nodes: names.map((name) => ({
      name,
      host: HOST,
      port: ports.get(name)?.port ?? 0,
      clusterPort: ports.get(name)?.clusterPort ?? 0,
      storeDir: join(dir, name, 'jetstream'),
      routeTls: tls.route(name),
    })),
  });
  const files = new Map<string, string>();
  for (const c of configs) {
    mkdirSync(join(dir, c.name), { recursive: true });
    const file = join(dir, c.name, 'nats-server.conf');
    writeFileSync(file, c.text);
    files.set(c.name, file);
  }
  const nodes: ClusterNodeHandle[] = names.map((name) => {
    const port = ports.get(name)?.port ?? 0;
    return { name, port, url: `nats://${HOST}:${port}`, server: undefined };
  });
  const node = (name: string): ClusterNodeHandle => {
    const n = nodes.find((x) => x.name === name);
    if (n === undefined) throw new TypeError(`no cluster node ${name}`);
    return n;
  };
  const start = async (n: ClusterNodeHandle): Promise<void> => {
    n.server = await startNatsServer({
      dir: join(dir, n.name),
      configFile: files.get(n.name) ?? '',
      port: n.port,
      startTimeoutMs: 30_000,
      // Each node's log in its dir: what a failed fault test is read against (PHI_CLUSTER_KEEP=1 keeps the dir).
      onLog: (text) => appendFileSync(join(dir, n.name, 'server.log'), text),
    });
  };
  await Promise.all(nodes.map(start));

  const connections: NatsConnection[] = [];
  const urls = nodes.map((n) => n.url);
  const connectAs = async (identity: Identity, name = identity.id): Promise<NatsConnection> => {
    const nc = await connect({
      ...mtlsConnectionOptions(urls, tls.identity(identity), identityInbox(identity), name),
      reconnectTimeWait: 100,
    });
    connections.push(nc);
    return nc;
  };
  let admin: { nc: NatsConnection; jsm: JetStreamManager } | undefined;
  const adminJsm = async (): Promise<JetStreamManager> => {
    if (admin === undefined) {
      const nc = await connectAs(ADMIN_IDENTITY, 'cluster-harness');
      admin = { nc, jsm: await nc.jetstreamManager({ timeout: 2_000 }) };
    }
    return admin.jsm;
  };

  const cluster: TestCluster = {
    dir,
    nodes,
    tls,
    env: { NATS_URL: urls.join(','), PHI_BROKER_NATS_TLS_DIR: tls.dir },
    connectAs,
    async waitForMetaLeader(timeoutMs = 30_000) {
      // In a clustered JetStream the meta leader answers account info; without one the request fails.
      await poll('a JetStream meta leader', timeoutMs, async () => {
        await (await adminJsm()).getAccountInfo();
        return true;
      });
    },
    async waitForStreamLeaders(streams, timeoutMs = 30_000) {
      const jsm = await adminJsm();
      for (const stream of streams) {
        await poll(`a leader and current replicas of ${stream}`, timeoutMs, async () => {
          const { cluster: c } = await jsm.streams.info(stream);
          const replicas = c?.replicas ?? [];
          return c?.leader !== undefined && c.leader !== '' && replicas.every((r) => r.current && !r.offline)
            ? true
            : undefined;
        });
      }
    },
    async streamLeader(stream) {
      const { cluster: c } = await (await adminJsm()).streams.info(stream);
      return c?.leader === undefined || c.leader === '' ? undefined : c.leader;
    },
    async kill(name) {
      const n = node(name);
      const server = n.server;
      if (server === undefined) throw new TypeError(`${name} is not running`);
      process.kill(server.pid, 'SIGKILL');
      await server.stop(); // the process is gone: this only waits for its exit
      n.server = undefined;
      return server.pid;
    },
    async restart(name) {
      const n = node(name);
      if (n.server !== undefined) throw new TypeError(`${name} is running`);
      await start(n);
    },
    async stop() {
      await Promise.allSettled(connections.map((nc) => (nc.isClosed() ? Promise.resolve() : nc.close())));
      await Promise.all(nodes.map((n) => n.server?.stop() ?? Promise.resolve()));
      if (process.env['PHI_CLUSTER_KEEP'] !== '1') rmSync(dir, { recursive: true, force: true });
    },
  };
  return cluster;
}
