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
import { inboxPrefix } from '../nats/names.js';
import { BROKER_IDENTITY } from '../tls/identity.js';
import { tlsLayout } from '../tls/store.js';
import type { RunningNatsServer } from '../nats/server.js';
import { startEmbeddedMtlsNats } from './embedded-mtls.js';
import { connectNats, devKeys, layout, loadConfiguredCatalog, startEmbeddedNats } from './runtime.js';

export async function runUp(config: BrokerConfig, port?: number, opts: { readonly mtls?: boolean } = {}): Promise<void> {
  const logger = createLogger({ level: config.logLevel });
  const catalog = loadConfiguredCatalog(config); // refuses to start on an invalid catalog
  const { dir, peers } = await devKeys(config, catalog);
  const secrets = ensureBrokerSecrets(dir);
  let server: RunningNatsServer | undefined;
  let url = config.natsUrl;
  let tlsDir = config.natsTlsDir;
  if (url === undefined && opts.mtls === true) {
    const mtls = await startEmbeddedMtlsNats(config, catalog, port);
    server = mtls;
    url = mtls.url;
    tlsDir = mtls.tlsDir;
  } else if (url === undefined) {
    server = await startEmbeddedNats(config, port);
    url = server.url;
  }
  // With a TLS dir, the broker identity over mTLS (streams provisioned beforehand by the admin identity:
  // `phi-broker nats-provision`, or `up --mtls` itself); otherwise the plaintext development connection.
  const nc = await connectNats(url, 'phi-broker', tlsDir === undefined ? undefined : { files: tlsLayout(tlsDir).identity(BROKER_IDENTITY), inbox: inboxPrefix(BROKER_ID) });
  let broker: Broker | undefined;
  let desk: AccessDesk;
  try {
    broker = await Broker.start({ config, catalog, nc, keys: readServiceKeys(dir, BROKER_ID), peers, secrets, logger });
    // Right of access (45 CFR 164.524): this broker process also serves phi.control.access and retries unanswered services.
    desk = await AccessDesk.start({
      nc,
      catalog,
      keys: readServiceKeys(dir, BROKER_ID),
      peers,
      secrets,
      logger,
      answerTimeoutMs: config.accessAnswerTimeoutMs,
      audit: broker.auditTrail,
      retryIntervalMs: config.accessRetryIntervalMs,
      clockSkewMs: config.clockSkewMs,
    });
  } catch (err) {
    // e.g. streams not provisioned under the mTLS permissions: exit with the error instead of hanging on the open connection
    await broker?.stop();
    await nc.close();
    await server?.stop();
    throw err;
  }
  process.stdout.write(`phi-broker ready: nats ${url}${tlsDir === undefined ? '' : ' (mTLS)'}, data dir ${layout(config).root}, catalog ${catalog.hash.slice(0, 12)}\n`);

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
