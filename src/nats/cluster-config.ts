// The nats-server configs of a NATS cluster (pure: catalog + plan → one config per node), the production shape of
// docs/deployment.md: each node the single-node mTLS config of server-config.ts — same users, permissions and client
// TLS — plus its own server_name and JetStream store, and a cluster block whose routes run mutual TLS on the route
// certificates `certs init --cluster-nodes` issues. JetStream clustering (RAFT) needs unique server names and a
// cluster name; streams then run with `replicas` copies (src/nats/setup.ts).
import type { Catalog } from '../catalog/types.js';
import type { IdentityPermissions } from './permissions.js';
import { natsServerConfig, type ServerTlsPaths } from './server-config.js';

export const DEFAULT_CLUSTER_NAME = 'phi-broker';
export const DEFAULT_CLUSTER_PORT = 6222;
/** Node counts a JetStream cluster runs well with: an odd count keeps a RAFT majority after (n - 1) / 2 losses. */
export const CLUSTER_SIZES: readonly number[] = [3, 5];

/** `nats-1` … `nats-<count>`: the names `certs init --cluster-nodes` and `nats-config --cluster` agree on. */
export function clusterNodeNames(count: number): string[] {
  if (!CLUSTER_SIZES.includes(count)) throw new TypeError(`a cluster has ${CLUSTER_SIZES.join(' or ')} nodes`);
  return Array.from({ length: count }, (_, i) => `nats-${i + 1}`);
}

export interface ClusterNode {
  /** server_name, and the route certificate's name. */
  readonly name: string;
  /** The host peers and clients reach this node by (named in its certificates). */
  readonly host: string;
  readonly port: number;
  readonly clusterPort: number;
  readonly storeDir: string;
  /** This node's route certificate and key (with the CA). */
  readonly routeTls: ServerTlsPaths;
}

export interface ClusterPlan {
  readonly clusterName: string;
  /** Listen address of every node's client and route listeners (0.0.0.0 in containers, 127.0.0.1 in tests). */
  readonly listenHost: string;
  /** Client TLS (the server certificate names every node's host). */
  readonly tls: ServerTlsPaths;
  readonly nodes: readonly ClusterNode[];
  readonly maxPayload?: number;
  readonly tlsTimeoutSeconds?: number;
  readonly identities?: readonly IdentityPermissions[];
}

export interface NodeConfig {
  readonly name: string;
  readonly text: string;
}

/** One config per node; each routes to every other node. */
export function clusterServerConfigs(catalog: Catalog, plan: ClusterPlan): NodeConfig[] {
  const names = new Set(plan.nodes.map((n) => n.name));
  if (names.size !== plan.nodes.length) throw new TypeError('cluster node names must be unique');
  if (!CLUSTER_SIZES.includes(plan.nodes.length))
    throw new TypeError(`a cluster has ${CLUSTER_SIZES.join(' or ')} nodes`);
  return plan.nodes.map((node) => ({
    name: node.name,
    text: natsServerConfig(catalog, {
      tls: plan.tls,
      storeDir: node.storeDir,
      host: plan.listenHost,
      port: node.port,
      serverName: node.name,
      ...(plan.maxPayload === undefined ? {} : { maxPayload: plan.maxPayload }),
      ...(plan.tlsTimeoutSeconds === undefined ? {} : { tlsTimeoutSeconds: plan.tlsTimeoutSeconds }),
      ...(plan.identities === undefined ? {} : { identities: plan.identities }),
      cluster: {
        name: plan.clusterName,
        listen: `${plan.listenHost}:${node.clusterPort}`,
        routeAdvertise: `${node.host}:${node.clusterPort}`,
        clientAdvertise: `${node.host}:${node.port}`,
        routes: plan.nodes.filter((n) => n !== node).map((n) => `nats-route://${n.host}:${n.clusterPort}`),
        tls: node.routeTls,
      },
    }),
  }));
}
