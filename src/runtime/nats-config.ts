// `phi-broker nats-config [--out file]`: the mTLS nats-server config generated from the catalog
// (src/nats/server-config.ts), pointing at the certificates `certs init` wrote. With `--cluster`, one config per node
// of a 3- or 5-node cluster (src/nats/cluster-config.ts) into `--out-dir`: `<node>.conf`, nodes `nats-1` … `nats-<n>`,
// each reached by its node name (docs/deployment.md).
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Writable } from 'node:stream';
import type { BrokerConfig } from '../config/config.js';
import {
  DEFAULT_CLUSTER_NAME,
  DEFAULT_CLUSTER_PORT,
  clusterNodeNames,
  clusterServerConfigs,
} from '../nats/cluster-config.js';
import { DEFAULT_NATS_PORT, natsServerConfig } from '../nats/server-config.js';
import { defaultTlsDir, tlsLayout } from '../tls/store.js';
import { maxPayloadFor } from '../wire/max-payload.js';
import { loadConfiguredCatalog } from './data-dir.js';

export interface NatsConfigOptions {
  readonly out?: string;
  /** TLS directory (default `<dataDir>/tls`); paths in the config are as given, so a container can mount it. */
  readonly tlsDir?: string;
  /** JetStream store directory; a cluster node stores under `<storeDir>/<node>`. */
  readonly storeDir?: string;
  readonly host?: string;
  readonly port?: number;
  /** Generate the configs of a cluster instead of one server. */
  readonly cluster?: boolean;
  /** Cluster size, 3 or 5 (default 3). */
  readonly nodes?: number;
  /** Where the cluster's configs go, one `<node>.conf` each. */
  readonly outDir?: string;
  readonly clusterPort?: number;
  readonly clusterName?: string;
}

export function runNatsConfig(config: BrokerConfig, opts: NatsConfigOptions, out: Writable): void {
  const catalog = loadConfiguredCatalog(config);
  const layout = tlsLayout(opts.tlsDir ?? resolve(defaultTlsDir(config.dataDir)));
  const tls = { caFile: layout.ca.certFile, certFile: layout.server.certFile, keyFile: layout.server.keyFile };
  const storeDir = opts.storeDir ?? resolve(join(config.dataDir, 'nats', 'jetstream'));
  const maxPayload = maxPayloadFor(config.maxMessageBytes);
  if (opts.cluster === true) {
    if (opts.outDir === undefined) throw new TypeError('nats-config --cluster needs --out-dir <dir>');
    const port = opts.port ?? DEFAULT_NATS_PORT;
    const clusterPort = opts.clusterPort ?? DEFAULT_CLUSTER_PORT;
    const configs = clusterServerConfigs(catalog, {
      clusterName: opts.clusterName ?? DEFAULT_CLUSTER_NAME,
      listenHost: opts.host ?? '0.0.0.0',
      tls,
      maxPayload,
      nodes: clusterNodeNames(opts.nodes ?? 3).map((name) => ({
        name,
        host: name,
        port,
        clusterPort,
        storeDir: join(storeDir, name),
        routeTls: layout.route(name),
      })),
    });
    mkdirSync(opts.outDir, { recursive: true });
    for (const c of configs) writeFileSync(join(opts.outDir, `${c.name}.conf`), c.text, { mode: 0o644 });
    out.write(
      `wrote ${configs.map((c) => join(opts.outDir as string, `${c.name}.conf`)).join(', ')}: ` +
        `cluster ${opts.clusterName ?? DEFAULT_CLUSTER_NAME}, routes on ${clusterPort} (mTLS), ` +
        `${catalog.services.size} services + broker + admin + auditor, JetStream; provision with PHI_BROKER_REPLICAS=${configs.length === 5 ? 5 : 3}\n`,
    );
    return;
  }
  const text = natsServerConfig(catalog, {
    tls,
    storeDir,
    maxPayload,
    ...(opts.host === undefined ? {} : { host: opts.host }),
    ...(opts.port === undefined ? {} : { port: opts.port }),
  });
  if (opts.out === undefined) {
    out.write(text);
    return;
  }
  writeFileSync(opts.out, text, { mode: 0o644 });
  out.write(
    `wrote ${opts.out}: ${catalog.services.size} services + broker + admin, mTLS (verify_and_map), JetStream\n`,
  );
}
