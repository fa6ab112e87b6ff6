// A whole phi-broker on one machine in one process: embedded nats-server (or NATS_URL), dev keys, the
// broker, and SDK clients for any catalog service. Used by `demo`; tests compose the same parts.
import { Broker } from '../broker/broker.js';
import { ensureBrokerSecrets } from '../broker/secrets.js';
import { BROKER_ID, type Catalog } from '../catalog/types.js';
import type { BrokerConfig } from '../config.js';
import { readServiceKeys, type PublicKeyRecord } from '../crypto/keys.js';
import type { Logger } from '../log.js';
import type { RunningNatsServer } from '../nats/server.js';
import { PhiClient } from '../sdk/client.js';
import { connectNats, devKeys, loadConfiguredCatalog, startEmbeddedNats } from './runtime.js';
import type { NatsConnection } from 'nats';

export interface LocalStack {
  readonly url: string;
  readonly catalog: Catalog;
  readonly broker: Broker;
  readonly nc: NatsConnection;
  client(service: string): Promise<PhiClient>;
  stop(): Promise<void>;
}

export async function startLocalStack(config: BrokerConfig, logger: Logger): Promise<LocalStack> {
  const catalog = loadConfiguredCatalog(config);
  const { dir, peers } = await devKeys(config, catalog);
  const secrets = ensureBrokerSecrets(dir);
  let server: RunningNatsServer | undefined;
  const url = config.natsUrl ?? (server = await startEmbeddedNats(config)).url;
  const nc = await connectNats(url, 'phi-broker');
  const broker = await Broker.start({ config, catalog, nc, keys: readServiceKeys(dir, BROKER_ID), peers, secrets, logger });
  const clients: PhiClient[] = [];
  const extra: NatsConnection[] = [];
  const brokerPeers: PublicKeyRecord[] = peers;
  return {
    url,
    catalog,
    broker,
    nc,
    async client(service: string) {
      const cnc = await connectNats(url, `phi-broker ${service}`);
      extra.push(cnc);
      const c = await PhiClient.connect({ nc: cnc, service, keys: readServiceKeys(dir, service), peers: brokerPeers, logger, insecure: true });
      clients.push(c);
      return c;
    },
    async stop() {
      for (const c of clients) await c.close();
      await broker.stop();
      for (const c of extra) await c.drain();
      await nc.drain();
      await server?.stop();
    },
  };
}
