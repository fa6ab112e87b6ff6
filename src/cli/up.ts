// `phi-broker up`: one machine, everything needed — embedded nats-server with JetStream (unless NATS_URL),
// streams and consumers, development keys for the catalog's services, the broker. Prints a line with
// `ready` once it accepts messages; SIGINT/SIGTERM stop it cleanly (in-flight messages finish first).
import { AccessDesk } from '../access/desk.js';
import { Broker } from '../broker/broker.js';
import { ensureBrokerSecrets } from '../broker/secrets.js';
import { BROKER_ID } from '../catalog/types.js';
import type { BrokerConfig } from '../config.js';
import { readServiceKeys } from '../crypto/keys.js';
import { createLogger } from '../log.js';
import type { RunningNatsServer } from '../nats/server.js';
import { connectNats, devKeys, layout, loadConfiguredCatalog, startEmbeddedNats } from './runtime.js';

export async function runUp(config: BrokerConfig, port?: number): Promise<void> {
  const logger = createLogger({ level: config.logLevel });
  const catalog = loadConfiguredCatalog(config); // refuses to start on an invalid catalog
  const { dir, peers } = await devKeys(config, catalog);
  const secrets = ensureBrokerSecrets(dir);
  let server: RunningNatsServer | undefined;
  let url = config.natsUrl;
  if (url === undefined) {
    server = await startEmbeddedNats(config, port);
    url = server.url;
  }
  const nc = await connectNats(url, 'phi-broker');
  const broker = await Broker.start({ config, catalog, nc, keys: readServiceKeys(dir, BROKER_ID), peers, secrets, logger });
  // Right of access (45 CFR 164.524): this broker process also serves phi.control.access and retries unanswered services.
  const desk = await AccessDesk.start({
    nc,
    catalog,
    keys: readServiceKeys(dir, BROKER_ID),
    peers,
    secrets,
    logger,
    answerTimeoutMs: config.accessAnswerTimeoutMs,
    retryIntervalMs: config.accessRetryIntervalMs,
  });
  process.stdout.write(`phi-broker ready: nats ${url}, data dir ${layout(config).root}, catalog ${catalog.hash.slice(0, 12)}\n`);

  await new Promise<void>((resolve) => {
    const stop = (): void => resolve();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  process.stdout.write('phi-broker stopping\n');
  await desk.stop();
  await broker.stop();
  await nc.drain();
  await server?.stop();
  logger.info({ event: 'broker.stopped', ...broker.stats }, 'stopped');
}
