// Route authentication of the generated cluster configs (src/nats/cluster-config.ts) on real nats-server processes:
// a node presenting a route certificate joins; a node presenting a client certificate from the same CA (a service's)
// is refused with an authorization violation, so holding any phi-broker certificate is not enough to join the
// cluster and see its traffic.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { clusterNodeNames, clusterServerConfigs, type NodeConfig } from '../../src/nats/cluster-config.js';
import { freePort, startNatsServer, type RunningNatsServer } from '../../src/nats/server.js';
import { loadCatalog } from '../../src/runtime/catalog-dir.js';
import { serviceIdentity } from '../../src/tls/identity.js';
import { readCa } from '../../src/tls/store.js';
import { Waiter, ROOT } from '../helpers/stack.js';
import { testCertificates } from '../helpers/test-pki.js';

const catalog = loadCatalog({ subjects: join(ROOT, 'subjects'), profiles: join(ROOT, 'fhir-profiles') });
let dir: string;
let configs: NodeConfig[];
let rogueConfig: NodeConfig;
const running: RunningNatsServer[] = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'phi-broker-routes-'));
  const tls = await testCertificates(join(dir, 'tls'), [...catalog.services.keys()], { inspector: false });
  const { issueRouteCertificate } = await import('../../src/tls/certificates.js');
  const names = clusterNodeNames(3);
  mkdirSync(join(dir, 'tls', 'routes'), { recursive: true });
  for (const name of names) {
    const cert = await issueRouteCertificate(readCa(tls), ['127.0.0.1'], { now: Date.now(), lifetimeMs: 3_600_000 });
    writeFileSync(tls.route(name).keyFile, cert.keyPem, { mode: 0o600 });
    writeFileSync(tls.route(name).certFile, cert.certPem);
  }
  const nodes = [];
  for (const name of names) {
    nodes.push({
      name,
      host: '127.0.0.1',
      port: await freePort(),
      clusterPort: await freePort(),
      storeDir: join(dir, name, 'jetstream'),
      routeTls: tls.route(name),
    });
  }
  const plan = {
    clusterName: 'phi-broker',
    listenHost: '127.0.0.1',
    tls: { caFile: tls.ca.certFile, certFile: tls.server.certFile, keyFile: tls.server.keyFile },
    tlsTimeoutSeconds: 15,
  };
  configs = clusterServerConfigs(catalog, { ...plan, nodes });
  // nats-3's place, but its "route certificate" is the registration service's client certificate.
  const rogue = nodes.map((n) =>
    n.name === 'nats-3' ? { ...n, routeTls: tls.identity(serviceIdentity('registration')) } : n,
  );
  rogueConfig = clusterServerConfigs(catalog, { ...plan, nodes: rogue }).find((c) => c.name === 'nats-3') as NodeConfig;
});

afterAll(async () => {
  await Promise.all(running.map((s) => s.stop()));
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
});

async function start(config: NodeConfig, port: number, onLog: (t: string) => void): Promise<void> {
  const nodeDir = join(dir, `${config.name}-${running.length}`);
  mkdirSync(nodeDir, { recursive: true });
  const file = join(nodeDir, 'nats-server.conf');
  writeFileSync(file, config.text);
  running.push(await startNatsServer({ dir: nodeDir, configFile: file, port, onLog, startTimeoutMs: 30_000 }));
}

const portOf = (config: NodeConfig): number => Number(/^listen: "127\.0\.0\.1:(\d+)"/m.exec(config.text)?.[1]);

it('a node with a route certificate joins; a client certificate from the same CA is refused as a route', async () => {
  const [one, two] = configs as [NodeConfig, NodeConfig];
  let oneLog = '';
  let rogueLog = '';
  const logs = new Waiter();
  await start(one, portOf(one), (t) => {
    oneLog += t;
    logs.signal();
  });
  await start(rogueConfig, portOf(rogueConfig), (t) => {
    rogueLog += t;
    logs.signal();
  });
  // The rogue dials nats-1 (and nats-1 dials it): refused both ways, on every retry.
  await logs.until(() => /Authorization Violation/.test(rogueLog + oneLog), 30_000, 'the rogue route refused');
  await start(two, portOf(two), (t) => {
    oneLog += t;
    logs.signal();
  });
  // nats-1 and nats-2 form a JetStream meta group of the three configured peers (a majority of two).
  await logs.until(
    () => /JetStream cluster new metadata leader|Self is new JetStream cluster metadata leader/.test(oneLog),
    30_000,
    'nats-1 and nats-2 to elect a meta leader',
  );
  expect(rogueLog).not.toMatch(/metadata leader/);
});
