// `phi-broker nats-config [--out file]`: the mTLS nats-server config generated from the catalog
// (src/nats/server-config.ts), pointing at the certificates `certs init` wrote.
import { writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Writable } from 'node:stream';
import type { BrokerConfig } from '../config/config.js';
import { natsServerConfig } from '../nats/server-config.js';
import { defaultTlsDir, tlsLayout } from '../tls/store.js';
import { maxPayloadFor } from '../wire/max-payload.js';
import { loadConfiguredCatalog } from './data-dir.js';

export interface NatsConfigOptions {
  readonly out?: string;
  /** TLS directory (default `<dataDir>/tls`); paths in the config are as given, so a container can mount it. */
  readonly tlsDir?: string;
  readonly storeDir?: string;
  readonly host?: string;
  readonly port?: number;
}

export function runNatsConfig(config: BrokerConfig, opts: NatsConfigOptions, out: Writable): void {
  const catalog = loadConfiguredCatalog(config);
  const layout = tlsLayout(opts.tlsDir ?? resolve(defaultTlsDir(config.dataDir)));
  const text = natsServerConfig(catalog, {
    tls: { caFile: layout.ca.certFile, certFile: layout.server.certFile, keyFile: layout.server.keyFile },
    storeDir: opts.storeDir ?? resolve(join(config.dataDir, 'nats', 'jetstream')),
    maxPayload: maxPayloadFor(config.maxMessageBytes),
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
