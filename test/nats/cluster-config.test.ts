// The cluster configs `phi-broker nats-config --cluster` writes (src/nats/cluster-config.ts) with the route certificates
// `certs init --cluster-nodes` issues: nats-server 2.9 accepts each (`nats-server -t`), every node has its own
// server_name and store, routes to the other nodes over mutual TLS mapped to the route user, and the same users,
// permissions and client TLS as the single-node config.
import { spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadCatalog } from '../../src/runtime/catalog-dir.js';
import { clusterNodeNames, clusterServerConfigs } from '../../src/nats/cluster-config.js';
import { natsServerConfig } from '../../src/nats/server-config.js';
import { findNatsServerBinary } from '../../src/nats/server-binary.js';
import { ROUTE_USER } from '../../src/tls/identity.js';
import { tlsLayout } from '../../src/tls/store.js';
import { NOT_BUILT, ROOT, runCli } from '../cli/run-cli.js';

const catalog = loadCatalog({ subjects: join(ROOT, 'subjects'), profiles: join(ROOT, 'fhir-profiles') });
const NODES = ['nats-1', 'nats-2', 'nats-3'];
let dir: string;
const texts = new Map<string, string>();

/** The top-level `authorization { … }` block: users and permissions. */
function authorization(text: string): string {
  const start = text.indexOf('\nauthorization {');
  expect(start).toBeGreaterThan(0);
  return text.slice(start);
}

beforeAll(async () => {
  if (NOT_BUILT !== undefined) throw new Error(NOT_BUILT);
  dir = mkdtempSync(join(tmpdir(), 'phi-broker-cluster-conf-'));
  const data = join(dir, 'data');
  const certs = await runCli(['certs', 'init', '--data-dir', data, '--cluster-nodes', '3']);
  expect(certs.stderr).toBe('');
  expect(certs.code).toBe(0);
  const conf = await runCli([
    'nats-config',
    '--data-dir',
    data,
    '--cluster',
    '--nodes',
    '3',
    '--out-dir',
    join(dir, 'nats'),
    '--store-dir',
    '/jetstream',
  ]);
  expect(conf.stderr).toBe('');
  expect(conf.code).toBe(0);
  for (const node of NODES) texts.set(node, readFileSync(join(dir, 'nats', `${node}.conf`), 'utf8'));
}, 60_000);

afterAll(() => {
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
});

describe('nats-config --cluster --nodes 3', () => {
  it.each(NODES)('nats-server 2.9 accepts %s.conf (`nats-server -t` exits 0)', (node) => {
    const r = spawnSync(findNatsServerBinary(), ['-t', '-c', join(dir, 'nats', `${node}.conf`)], { encoding: 'utf8' });
    expect(`${r.stdout}${r.stderr}`).toContain('is valid');
    expect(r.status).toBe(0);
  });

  it('each node: its own server_name, store and route certificate; routes to the two others; advertised by name', () => {
    for (const node of NODES) {
      const text = texts.get(node) ?? '';
      const others = NODES.filter((n) => n !== node);
      expect(text).toContain(`server_name: "${node}"`);
      expect(text).toContain(`store_dir: "/jetstream/${node}"`);
      expect(text).toContain(`client_advertise: "${node}:4222"`);
      expect(text).toContain(`advertise: "${node}:6222"`);
      expect(text).toContain(`routes: [${others.map((o) => `"nats-route://${o}:6222"`).join(', ')}]`);
      expect(text).toContain(`cert_file: "${join(dir, 'data', 'tls', 'routes', `${node}.cert.pem`)}"`);
      // Routes: mutual TLS mapped to the single route user.
      expect(text).toMatch(/cluster \{[^]*tls \{[^}]*verify_and_map: true[^}]*\}/);
      expect(text).toContain(`authorization { user: "${ROUTE_USER}" }`);
      expect(text.match(/^listen: /gm)).toHaveLength(1);
      for (const key of ['no_auth_user', 'http', 'https', 'http_port', 'leafnodes', 'gateway', 'websocket', 'mqtt'])
        expect(text, key).not.toMatch(new RegExp(`^\\s*${key}\\s*[:{=]`, 'm'));
    }
  });

  it('the same users, permissions and client TLS as the single-node config', () => {
    const layout = tlsLayout(join(dir, 'data', 'tls'));
    const single = natsServerConfig(catalog, {
      tls: { caFile: layout.ca.certFile, certFile: layout.server.certFile, keyFile: layout.server.keyFile },
      storeDir: '/jetstream',
    });
    const clientTls = /\ntls \{[^}]*\}/.exec(single)?.[0];
    expect(clientTls).toBeDefined();
    for (const node of NODES) {
      const text = texts.get(node) ?? '';
      expect(authorization(text)).toBe(authorization(single));
      expect(text).toContain(clientTls);
    }
  });

  it('certs init --cluster-nodes 3: a route certificate per node (serverAuth + clientAuth, SAN its name), the nodes in the server certificate', () => {
    const layout = tlsLayout(join(dir, 'data', 'tls'));
    const ca = new X509Certificate(readFileSync(layout.ca.certFile));
    for (const node of NODES) {
      const cert = new X509Certificate(readFileSync(layout.route(node).certFile));
      expect(cert.verify(ca.publicKey)).toBe(true);
      expect(cert.subject.split('\n').sort()).toEqual(['CN=route', 'O=phi-broker', 'OU=route']);
      expect(cert.subjectAltName).toContain(`DNS:${node}`);
      expect(cert.keyUsage?.sort()).toEqual(['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2']);
    }
    const server = new X509Certificate(readFileSync(layout.server.certFile));
    for (const node of NODES) expect(server.subjectAltName).toContain(`DNS:${node}`);
  });
});

describe('clusterServerConfigs', () => {
  it('refuses a cluster of another size than 3 or 5, and duplicate node names', () => {
    expect(() => clusterNodeNames(2)).toThrow(/3 or 5 nodes/);
    expect(() => clusterNodeNames(4)).toThrow(/3 or 5 nodes/);
    expect(clusterNodeNames(5)).toEqual(['nats-1', 'nats-2', 'nats-3', 'nats-4', 'nats-5']);
    const tls = { caFile: '/ca', certFile: '/c', keyFile: '/k' };
    const node = { name: 'a', host: 'a', port: 1, clusterPort: 2, storeDir: '/s', routeTls: tls };
    expect(() =>
      clusterServerConfigs(catalog, {
        clusterName: 'x',
        listenHost: '0.0.0.0',
        tls,
        nodes: [node, node, { ...node, name: 'b' }],
      }),
    ).toThrow(/unique/);
  });
});
