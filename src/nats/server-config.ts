// The nats-server configuration phi-broker runs on (pure: catalog + paths → config text), in the nats-server
// configuration format (https://docs.nats.io/running-a-nats-service/configuration). One client listener, TLS
// required on it with client certificates verified and mapped to users (`verify_and_map`); no plaintext
// listener, no monitoring port, no leafnode/websocket/MQTT listeners; JetStream on; one user per identity with
// the default-deny permissions of permissions.ts; no `no_auth_user`, so a client no user maps to is refused at
// connect. A cluster node (cluster-config.ts) adds a route listener: mutual TLS, the peer's certificate mapped to
// the one route user, so a client certificate from the same CA cannot join as a route.
//
// No user has `allow_responses`: nats-server then remembers every reply subject delivered to that user (each pulled
// JetStream message's ack subject) until it expires, and past 4,096 scans them all per message delivered (client.go
// pruneReplyPerms); replies are allowed by subject instead (src/wire/names.ts `replies`).
//
// TLS version: nats-server 2.9.10 does not accept `min_version` in a tls block ("unknown field"); it sets Go's
// tls.Config MinVersion to TLS 1.2 itself (server/opts.go GenTLSConfig), so TLS 1.0/1.1 are refused anyway.
// 45 CFR 164.312(e)(1) transmission security; 164.312(d) entity authentication.
import type { Catalog } from '../catalog/types.js';
import { ROUTE_USER } from '../tls/identity.js';
import { natsPermissions, type IdentityPermissions, type SubjectRule } from './permissions.js';
import { DEFAULT_MAX_PAYLOAD } from '../wire/max-payload.js';

export interface ServerTlsPaths {
  /** The CA that client certificates must chain to. */
  readonly caFile: string;
  readonly certFile: string;
  readonly keyFile: string;
}

export interface NatsServerConfigOptions {
  readonly tls: ServerTlsPaths;
  readonly storeDir: string;
  readonly host?: string;
  readonly port?: number;
  readonly serverName?: string;
  /** Largest message, bytes (nats-server default 1 MiB). */
  readonly maxPayload?: number;
  /** Seconds allowed for the TLS handshake. */
  readonly tlsTimeoutSeconds?: number;
  /** The users to write (default every identity of the catalog, natsPermissions). */
  readonly identities?: readonly IdentityPermissions[];
  /** This server as one node of a cluster (cluster-config.ts builds it). */
  readonly cluster?: ClusterBlock;
  /** Log to a size-rotated file, with a pid file and a ports file (the embedded server of `up`); default stderr. */
  readonly log?: NatsServerLogOptions;
}

/** A node's NATS cluster block (https://docs.nats.io/running-a-nats-service/configuration/clustering/cluster_config). */
export interface ClusterBlock {
  readonly name: string;
  /** Route listener, host:port. */
  readonly listen: string;
  /** host:port the peers and clients learn for this node (hostnames its certificates name). */
  readonly routeAdvertise: string;
  readonly clientAdvertise: string;
  /** `nats-route://host:port` of every other node. */
  readonly routes: readonly string[];
  /** This node's route certificate and key, and the CA that peers' route certificates chain to. */
  readonly tls: ServerTlsPaths;
}

export interface NatsServerLogOptions {
  readonly logFile: string;
  /** nats-server `logfile_size_limit`: bytes after which it renames the file and starts a new one. */
  readonly sizeLimit: number;
  /** nats-server `pid_file`. */
  readonly pidFile: string;
  /** nats-server `ports_file_dir`: it writes `<binary>_<pid>.ports` there once ready. */
  readonly portsFileDir: string;
}

/** The nats-server config lines for NatsServerLogOptions. */
export function logConfigLines(log: NatsServerLogOptions): string[] {
  return [
    `log_file: ${JSON.stringify(log.logFile)}`,
    `logfile_size_limit: ${log.sizeLimit}`,
    'logtime: true',
    `pid_file: ${JSON.stringify(log.pidFile)}`,
    `ports_file_dir: ${JSON.stringify(log.portsFileDir)}`,
  ];
}

export const DEFAULT_NATS_PORT = 4222;

const q = (s: string): string => JSON.stringify(s);
const list = (items: readonly string[]): string => `[${items.map(q).join(', ')}]`;

function rule(name: string, r: SubjectRule, indent: string): string[] {
  const lines = [`${indent}${name}: {`, `${indent}  allow: ${list(r.allow)}`];
  if (r.deny.length > 0) lines.push(`${indent}  deny: ${list(r.deny)}`);
  lines.push(`${indent}}`);
  return lines;
}

function user(p: IdentityPermissions): string[] {
  const i = '      ';
  return [
    `    # ${p.identity.kind} ${p.identity.id}: connects with inboxPrefix ${q(p.inboxPrefix)}`,
    '    {',
    `      user: ${q(p.user)}`,
    '      permissions: {',
    ...rule('publish', p.publish, `${i}  `),
    ...rule('subscribe', p.subscribe, `${i}  `),
    '      }',
    '    }',
  ];
}

function clusterLines(c: ClusterBlock, tlsTimeoutSeconds: number): string[] {
  return [
    '',
    '# Routes: mutual TLS with the route certificates (serverAuth + clientAuth); a peer is accepted only when its',
    '# certificate maps to the route user, so no client certificate from this CA can join as a route.',
    'cluster {',
    `  name: ${q(c.name)}`,
    `  listen: ${q(c.listen)}`,
    `  advertise: ${q(c.routeAdvertise)}`,
    '  tls {',
    `    cert_file: ${q(c.tls.certFile)}`,
    `    key_file: ${q(c.tls.keyFile)}`,
    `    ca_file: ${q(c.tls.caFile)}`,
    '    verify_and_map: true',
    `    timeout: ${tlsTimeoutSeconds}`,
    '  }',
    `  authorization { user: ${q(ROUTE_USER)} }`,
    `  routes: ${list(c.routes)}`,
    '}',
  ];
}

export function natsServerConfig(catalog: Catalog, opts: NatsServerConfigOptions): string {
  const host = opts.host ?? '0.0.0.0';
  const port = opts.port ?? DEFAULT_NATS_PORT;
  const tlsTimeout = opts.tlsTimeoutSeconds ?? 2;
  return [
    `# Generated by \`phi-broker nats-config\` from catalog ${catalog.hash.slice(0, 12)}; regenerate, do not edit.`,
    '# mTLS only: every client presents a certificate from the phi-broker CA, mapped to one user below.',
    `listen: ${q(`${host}:${port}`)}`,
    `server_name: ${q(opts.serverName ?? `phi-broker-${port}`)}`,
    ...(opts.cluster === undefined ? [] : [`client_advertise: ${q(opts.cluster.clientAdvertise)}`]),
    `max_payload: ${opts.maxPayload ?? DEFAULT_MAX_PAYLOAD}`,
    ...(opts.log === undefined ? [] : logConfigLines(opts.log)),
    '',
    "# TLS 1.2 is the minimum: 2.9.10 has no min_version option and fixes Go's MinVersion at TLS 1.2.",
    'tls {',
    `  cert_file: ${q(opts.tls.certFile)}`,
    `  key_file: ${q(opts.tls.keyFile)}`,
    `  ca_file: ${q(opts.tls.caFile)}`,
    '  verify_and_map: true',
    `  timeout: ${tlsTimeout}`,
    '}',
    ...(opts.cluster === undefined ? [] : clusterLines(opts.cluster, tlsTimeout)),
    '',
    'jetstream {',
    `  store_dir: ${q(opts.storeDir)}`,
    '  max_memory_store: 268435456',
    '}',
    '',
    'authorization {',
    '  users = [',
    ...(opts.identities ?? natsPermissions(catalog)).flatMap(user),
    '  ]',
    '}',
    '',
  ].join('\n');
}
