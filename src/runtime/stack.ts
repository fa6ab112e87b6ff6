// A whole phi-broker on one machine in one process: embedded nats-server on the generated mTLS config (or
// NATS_URL with its TLS dir), dev keys, the broker as the broker identity, and SDK clients for any catalog
// service, each as its own identity. Plaintext only with `insecurePlaintext`. Used by `demo`; tests compose
// the same parts.
import { Broker } from '../broker/broker.js';
import { openBrokerSecrets } from './broker-secrets.js';
import { type Catalog } from '../catalog/types.js';
import { BROKER_ID } from '../wire/ids.js';
import type { BrokerConfig } from '../config/config.js';
import { type PublicKeyRecord } from '../crypto/keys.js';
import { openServiceKeyVersions } from './key-files.js';
import type { Logger } from '../log/log.js';
import { PhiClient } from '../sdk/client.js';
import { BROKER_IDENTITY, serviceIdentity } from '../tls/identity.js';
import { openNatsTransport, type NatsTransport } from './nats-transport.js';
import { acquireDataDirLock } from './data-dir-lock.js';
import { devKeys, loadConfiguredCatalog } from './data-dir.js';
import type { NatsConnection } from 'nats';

export interface LocalStack {
  readonly url: string;
  /** The certificates, or undefined on plaintext. */
  readonly tlsDir: string | undefined;
  readonly catalog: Catalog;
  readonly broker: Broker;
  readonly nc: NatsConnection;
  client(service: string): Promise<PhiClient>;
  stop(): Promise<void>;
}

export async function startLocalStack(
  config: BrokerConfig,
  logger: Logger,
  opts: { readonly insecurePlaintext?: boolean } = {},
): Promise<LocalStack> {
  const catalog = loadConfiguredCatalog(config);
  const { dir, peers, protection } = await devKeys(config, catalog);
  const secrets = await openBrokerSecrets(dir, protection, true);
  const brokerKeys = await openServiceKeyVersions(dir, BROKER_ID, protection);
  // The embedded server runs under the data-dir lock, as `up`'s does (data-dir-lock.ts).
  const lock = config.natsUrl === undefined ? acquireDataDirLock(config.dataDir, 'phi-broker demo') : undefined;
  let transport: NatsTransport;
  try {
    transport = await openNatsTransport(config, catalog, {
      insecurePlaintext: opts.insecurePlaintext === true,
      logger,
      ...(lock === undefined ? {} : { lock }),
    });
  } catch (err) {
    lock?.release();
    throw err;
  }
  const { url, tlsDir, server } = transport;
  let nc: NatsConnection | undefined;
  let broker: Broker;
  try {
    nc = await transport.connect(BROKER_IDENTITY, 'phi-broker');
    broker = await Broker.start({ config, catalog, nc, keys: brokerKeys, peers, secrets, logger });
  } catch (err) {
    await nc?.close();
    await server?.stop();
    lock?.release();
    throw err;
  }
  const clients: PhiClient[] = [];
  const extra: NatsConnection[] = [];
  const brokerPeers: PublicKeyRecord[] = peers;
  return {
    url,
    tlsDir,
    catalog,
    broker,
    nc,
    async client(service: string) {
      const cnc = await transport.connect(serviceIdentity(service), `phi-broker ${service}`);
      extra.push(cnc);
      const c = await PhiClient.connect({
        nc: cnc,
        service,
        keys: await openServiceKeyVersions(dir, service, protection),
        peers: brokerPeers,
        logger,
        ...(tlsDir === undefined ? { insecure: true } : {}),
      });
      clients.push(c);
      return c;
    },
    async stop() {
      for (const c of clients) await c.close();
      await broker.stop();
      for (const c of extra) await c.drain();
      await nc.drain();
      await server?.stop();
      lock?.release();
    },
  };
}
