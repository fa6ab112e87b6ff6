// `phi-broker up`: one machine, everything needed — embedded nats-server with JetStream on the generated mTLS
// config (unless NATS_URL), streams and consumers, development keys for the catalog's services, the broker.
// Plaintext only with --insecure-plaintext (nats-transport.ts). Prints a line with `ready` once it accepts
// messages; SIGINT/SIGTERM stop it cleanly (in-flight messages finish first).
import { AccessDesk } from '../access/desk/desk.js';
import { Broker } from '../broker/broker.js';
import { ensureBrokerSecrets } from '../runtime/broker-secrets.js';
import { BROKER_ID } from '../wire/ids.js';
import type { BrokerConfig } from '../config/config.js';
import { readServiceKeys } from '../runtime/key-files.js';
import { createLogger } from '../log/log.js';
import { BROKER_IDENTITY } from '../tls/identity.js';
import { openNatsTransport } from '../runtime/nats-transport.js';
import { devKeys, layout, loadConfiguredCatalog } from '../runtime/data-dir.js';

export async function runUp(
  config: BrokerConfig,
  port?: number,
  opts: { readonly insecurePlaintext?: boolean } = {},
): Promise<void> {
  const logger = createLogger({ level: config.logLevel });
  const catalog = loadConfiguredCatalog(config); // refuses to start on an invalid catalog
  const { dir, peers } = await devKeys(config, catalog);
  const secrets = ensureBrokerSecrets(dir);
  const transport = await openNatsTransport(config, catalog, {
    insecurePlaintext: opts.insecurePlaintext === true,
    ...(port === undefined ? {} : { port }),
  });
  const { server, url, tlsDir } = transport;
  // The broker identity over mTLS (streams provisioned beforehand by the admin identity: the embedded server's
  // start, or `phi-broker nats-provision` for NATS_URL); plaintext only with --insecure-plaintext.
  const nc = await transport.connect(BROKER_IDENTITY, 'phi-broker').catch(async (err: unknown) => {
    await server?.stop();
    throw err;
  });
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
      replicas: config.replicas,
    });
  } catch (err) {
    // e.g. streams not provisioned under the mTLS permissions: exit with the error instead of hanging on the open connection
    await broker?.stop();
    await nc.close();
    await server?.stop();
    throw err;
  }
  process.stdout.write(
    `phi-broker ready: nats ${url}${tlsDir === undefined ? ' (INSECURE PLAINTEXT)' : ' (mTLS)'}, data dir ${layout(config).root}, catalog ${catalog.hash.slice(0, 12)}\n`,
  );

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
