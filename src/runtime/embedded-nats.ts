// `phi-broker up` (and `demo`): the embedded nats-server on the config `nats-config` generates (docs/security-model.md),
// with certificates issued under <data-dir>/tls (or the directory PHI_BROKER_NATS_TLS_DIR names) and the streams
// provisioned as the admin identity.
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Catalog } from '../catalog/types.js';
import type { BrokerConfig } from '../config/config.js';
import { ADMIN_INBOX_ID } from '../nats/permissions.js';
import { provisionStreams } from './provision.js';
import { natsServerConfig } from '../nats/server-config.js';
import { freePort, startNatsServer, type RunningNatsServer } from '../nats/server.js';
import { ADMIN_IDENTITY } from '../tls/identity.js';
import { defaultTlsDir, issueAll, tlsLayout } from '../tls/store.js';
import { connectNats, layout } from './data-dir.js';

/**
 * `up` (the default; `demo` too): the embedded nats-server on the generated mTLS config. Certificates are (re)issued at every start
 * (24 h), the config regenerated from the catalog, streams provisioned as the admin identity; server.json
 * records the TLS dir, so `publish`, `tail` and the operator commands (as the admin, or the read-only auditor) connect over mTLS too.
 * The TLS dir is `natsTlsDir` when set: the operator commands read certificates from there whenever the variable is
 * set (runtime.ts cliTlsDir), so the embedded server must issue into the same place — an existing CA there is kept.
 */
export async function startEmbeddedMtlsNats(
  config: BrokerConfig,
  catalog: Catalog,
  port?: number,
): Promise<RunningNatsServer & { readonly tlsDir: string }> {
  const l = layout(config);
  const tls = tlsLayout(config.natsTlsDir ?? defaultTlsDir(config.dataDir));
  await issueAll(tls, [...catalog.services.keys()].sort(), { now: Date.now(), createCaIfMissing: true });
  const host = '127.0.0.1';
  const listen = port ?? (await freePort(host));
  mkdirSync(l.nats, { recursive: true });
  const configFile = join(l.nats, 'nats-server.conf');
  writeFileSync(
    configFile,
    natsServerConfig(catalog, {
      tls: { caFile: tls.ca.certFile, certFile: tls.server.certFile, keyFile: tls.server.keyFile },
      storeDir: join(l.nats, 'jetstream'),
      host,
      port: listen,
      maxPayload: Math.max(config.maxMessageBytes * 2, 1024 * 1024),
    }),
  );
  const server = await startNatsServer({ dir: l.nats, configFile, host, port: listen });
  try {
    const admin = await connectNats(server.url, 'phi-broker-admin', {
      files: tls.identity(ADMIN_IDENTITY),
      inbox: `_INBOX.${ADMIN_INBOX_ID}`,
    });
    await provisionStreams(admin, config);
    await admin.close();
  } catch (err) {
    await server.stop();
    throw err;
  }
  writeFileSync(l.serverFile, JSON.stringify({ url: server.url, pid: server.pid, tlsDir: tls.dir }));
  return {
    ...server,
    tlsDir: tls.dir,
    async stop() {
      rmSync(l.serverFile, { force: true });
      await server.stop();
    },
  };
}
