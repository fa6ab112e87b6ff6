// `phi-broker up`: one machine, everything needed — embedded nats-server with JetStream on the generated mTLS
// config (unless NATS_URL), streams and consumers, keys for the catalog's services (plain development files, or
// sealed under --key-provider: docs/keys-at-rest.md), the broker.
// Plaintext only with --insecure-plaintext (nats-transport.ts). Prints a line with `ready` once it accepts
// messages. It owns its nats-server (docs/operations.md): an exclusive lock on the data directory, restarts of a
// server that exits (bounded), and a stop on SIGINT/SIGTERM within `stopTimeoutMs`, exit code 0 — or 1 when the
// server could not be kept running or the stop ran past its bound.
import type { NatsConnection } from 'nats';
import { AccessDesk } from '../access/desk/desk.js';
import { Broker, type BrokerOptions } from '../broker/broker.js';
import type { Catalog } from '../catalog/types.js';
import {
  directoryRootKey,
  ensureOperatorRootKey,
  operatorRootFile,
  publishDirectory,
  signingRootKey,
} from '../runtime/key-directory.js';
import type { NatsTransport } from '../runtime/nats-transport.js';
import { openBrokerSecrets } from '../runtime/broker-secrets.js';
import { BROKER_ID } from '../wire/ids.js';
import type { BrokerConfig } from '../config/config.js';
import { openServiceKeyVersions } from '../runtime/key-files.js';
import type { ServiceKeys } from '../crypto/keypairs.js';
import {
  announceKeyProtection,
  keysAtRest,
  registerKeyProtectionMetric,
  type KeyProtection,
} from '../runtime/key-protection.js';
import { createLogger, errorFields, type Logger } from '../log/log.js';
import { ADMIN_IDENTITY, BROKER_IDENTITY } from '../tls/identity.js';
import { openNatsTransport } from '../runtime/nats-transport.js';
import { acquireDataDirLock, type DataDirLock } from '../runtime/data-dir-lock.js';
import type { EmbeddedNats } from '../runtime/embedded-nats.js';
import { devKeys, layout, loadConfiguredCatalog } from '../runtime/data-dir.js';
import type { BrokerError } from '../wire/errors.js';
import { logStart } from '../runtime/log-follower.js';
import { rotatedLogs } from '../runtime/nats-log.js';
import { startSecurityLog, type SecurityLog } from '../runtime/security-log.js';
import { announceHeapGrowing, applyHeapGrowing } from '../runtime/heap-growing.js';

const STOP_SIGNALS = ['SIGINT', 'SIGTERM'] as const;

/** Resolves with `fallback` when `work` has not settled within `ms`. */
async function within<T>(ms: number, work: Promise<T>, fallback: T): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<T>((resolve) => (timer = setTimeout(() => resolve(fallback), ms)));
  try {
    return await Promise.race([work, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** Follows the broker connection's state (nats.js status events), so a stop with NATS down does not wait to drain. */
function trackConnection(nc: NatsConnection): { connected(): boolean } {
  let connected = true;
  void (async () => {
    for await (const s of nc.status()) {
      if (s.type === 'disconnect') connected = false;
      else if (s.type === 'reconnect') connected = true;
    }
  })().catch(() => {});
  return { connected: () => connected && !nc.isClosed() };
}

export async function runUp(
  config: BrokerConfig,
  port?: number,
  opts: { readonly insecurePlaintext?: boolean } = {},
): Promise<void> {
  const logger = createLogger({ level: config.logLevel });
  // Signals are taken from the first line: a stop asked for while starting ends the start, within the same bound.
  let signalled: (sig: NodeJS.Signals) => void = () => {};
  const stopRequested = new Promise<NodeJS.Signals>((resolve) => (signalled = resolve));
  let lock: DataDirLock | undefined;
  let server: EmbeddedNats | undefined;
  let deadline: NodeJS.Timeout | undefined;
  const armDeadline = (): void => {
    deadline ??= setTimeout(() => {
      // The last resort: the orderly stop did not finish in time.
      void server?.kill(); // SIGKILL is sent before kill() first awaits
      lock?.release();
      process.stderr.write(`phi-broker: stop took longer than ${config.stopTimeoutMs} ms; nats-server killed\n`);
      process.exit(1);
    }, config.stopTimeoutMs);
  };
  const onSignal = (sig: NodeJS.Signals): void => {
    armDeadline();
    signalled(sig);
  };
  for (const s of STOP_SIGNALS) process.on(s, onSignal);

  try {
    // Only the embedded server needs the lock: brokers on NATS_URL share a data dir's keys and scale out.
    if (config.natsUrl === undefined) lock = acquireDataDirLock(config.dataDir, 'phi-broker up');
    const starting = start(config, logger, port, opts.insecurePlaintext === true, lock, (s) => (server = s));
    const started = await Promise.race([starting, stopRequested.then(() => undefined)]);
    if (started === undefined) {
      // Stopped while starting: let the start settle (the deadline bounds it), then stop what it started.
      logger.warn({ event: 'up.stop.during_start' }, 'stop requested while starting');
      const r = await starting.catch(() => undefined);
      if (r !== undefined) await stopRunning(config, logger, r);
      return;
    }
    process.stdout.write(`${started.readyLine}\n`);
    const failed = server?.failed ?? new Promise<BrokerError>(() => {});
    const outcome = await Promise.race([
      stopRequested.then((signal) => ({ signal }) as const),
      failed.then((error) => ({ error }) as const),
    ]);
    armDeadline();
    if ('signal' in outcome) process.stdout.write('phi-broker stopping\n');
    await stopRunning(config, logger, started);
    if ('error' in outcome) throw outcome.error;
  } finally {
    // Reached on every path; the server's stop is idempotent.
    await server?.stop();
    lock?.release();
    if (deadline !== undefined) clearTimeout(deadline);
    for (const s of STOP_SIGNALS) process.off(s, onSignal);
  }
}

/**
 * The key directory (docs/keys.md): the development operator root key (created when missing, and said so), every
 * party's keys published as the admin identity, and what the broker watches. Undefined when it cannot be published
 * (NATS_URL without the admin identity): the broker then runs on jwks.json alone, and says so.
 */
async function publishKeyDirectory(
  config: BrokerConfig,
  catalog: Catalog,
  keysDir: string,
  transport: NatsTransport,
  logger: Logger,
  protection: KeyProtection,
): Promise<BrokerOptions['keyDirectory']> {
  const { created } = await ensureOperatorRootKey(keysDir, protection);
  if (created)
    process.stdout.write(
      `phi-broker: created a DEVELOPMENT operator root key in ${operatorRootFile(keysDir)}; for production pin its public half in the catalog (keyDirectory.operatorRootKey, docs/keys.md) and keep the private half offline\n`,
    );
  const { root, pinned } = await directoryRootKey(catalog, keysDir, protection);
  if (!pinned)
    logger.warn(
      { event: 'keys.root.development' },
      "the catalog pins no operator root key: the key directory is verified under the data dir's development key",
    );
  try {
    const admin = await transport.connect(ADMIN_IDENTITY, 'phi-broker keys publish');
    try {
      const signing = await signingRootKey(catalog, keysDir, protection);
      const written = await publishDirectory(admin, catalog, keysDir, signing, { create: true, protection });
      logger.info({ event: 'keys.directory.published', parties: written.length }, 'key directory published');
    } finally {
      await admin.close();
    }
  } catch (err) {
    if (config.natsUrl === undefined) throw err;
    logger.warn(
      { event: 'keys.directory.unpublished', ...errorFields(err) },
      'key directory not published (run `phi-broker keys publish`); the broker uses jwks.json only',
    );
    return undefined;
  }
  return {
    root,
    reloadOwnKeys: () => openServiceKeyVersions(keysDir, BROKER_ID, protection),
    reloadSecrets: () => openBrokerSecrets(keysDir, protection, false),
  };
}

interface Running {
  readonly readyLine: string;
  readonly nc: NatsConnection;
  readonly broker: Broker;
  readonly desk: AccessDesk;
  readonly security: SecurityLog | undefined;
  readonly link: { connected(): boolean };
}

async function start(
  config: BrokerConfig,
  logger: Logger,
  port: number | undefined,
  insecurePlaintext: boolean,
  lock: DataDirLock | undefined,
  onServer: (s: EmbeddedNats) => void,
): Promise<Running> {
  const catalog = loadConfiguredCatalog(config); // refuses to start on an invalid catalog
  const { dir, peers, protection } = await devKeys(config, catalog);
  const secrets = await openBrokerSecrets(dir, protection, true);
  // Every held version: retained ingest sealed to a previous one opens until it is pruned.
  const brokerVersions = await openServiceKeyVersions(dir, BROKER_ID, protection);
  const brokerKeys = brokerVersions[0] as ServiceKeys;
  // nats-server's log, followed for security incidents (docs/audit.md): the embedded server's, or natsLogFile's.
  const natsLog = config.natsUrl === undefined ? layout(config).natsLog : config.natsLogFile;
  const natsLogFrom = natsLog === undefined ? undefined : logStart(natsLog, rotatedLogs);
  const transport = await openNatsTransport(config, catalog, {
    insecurePlaintext,
    logger,
    ...(lock === undefined ? {} : { lock }),
    ...(port === undefined ? {} : { port }),
  });
  // Said once NATS is reachable as configured, so a refused configuration prints its error alone.
  announceKeyProtection(protection, logger);
  const { server, url, tlsDir } = transport;
  if (server !== undefined) onServer(server);
  // The broker identity over mTLS (streams provisioned beforehand by the admin identity: the embedded server's
  // start, or `phi-broker nats-provision` for NATS_URL); plaintext only with --insecure-plaintext.
  const keyDirectory = await publishKeyDirectory(config, catalog, dir, transport, logger, protection);
  const nc = await transport.connect(BROKER_IDENTITY, 'phi-broker');
  // Once every refusal is past (their message is the first line), before the broker's load.
  announceHeapGrowing(applyHeapGrowing(config.heapGrowingPercent), logger);
  let broker: Broker | undefined;
  let security: SecurityLog | undefined;
  try {
    broker = await Broker.start({
      config,
      catalog,
      nc,
      keys: brokerVersions,
      peers,
      secrets,
      logger,
      processMetrics: true,
      ...(keyDirectory === undefined ? {} : { keyDirectory }),
    });
    registerKeyProtectionMetric(broker.metrics.registry, protection);
    // Right of access (45 CFR 164.524): this broker process also serves phi.control.access and retries unanswered services.
    const desk = await AccessDesk.start({
      nc,
      catalog,
      keys: brokerKeys,
      peers,
      secrets,
      logger,
      answerTimeoutMs: config.accessAnswerTimeoutMs,
      audit: broker.auditTrail,
      retryIntervalMs: config.accessRetryIntervalMs,
      clockSkewMs: config.clockSkewMs,
      replicas: config.replicas,
    });
    security =
      natsLog === undefined
        ? undefined
        : startSecurityLog({
            file: natsLog,
            ...(natsLogFrom === undefined ? {} : { from: natsLogFrom }),
            catalog,
            trail: broker.auditTrail,
            metrics: broker.metrics,
            intervalMs: config.securityLogIntervalMs,
            logger,
          });
    const readyLine = `phi-broker ready: nats ${url}${tlsDir === undefined ? ' (INSECURE PLAINTEXT)' : ' (mTLS)'}, data dir ${layout(config).root}, keys ${keysAtRest(protection)}, catalog ${catalog.hash.slice(0, 12)}${broker.healthPort === undefined ? '' : `, health http://${config.healthHost}:${broker.healthPort}/readyz`}`;
    return { readyLine, nc, broker, desk, security, link: trackConnection(nc) };
  } catch (err) {
    await security?.stop();
    // e.g. streams not provisioned under the mTLS permissions: exit with the error instead of hanging on the open connection
    await broker?.stop();
    await nc.close();
    throw err;
  }
}

/**
 * Drains the broker (in-flight messages finish and are acknowledged) within the stop bound less the time kept for
 * nats-server's own stop. With NATS down there is nothing to drain into: the connection closes first, and the
 * unacknowledged messages stay in PHI_INGEST for the next start.
 */
async function stopRunning(config: BrokerConfig, logger: Logger, r: Running): Promise<void> {
  const drainMs = config.stopTimeoutMs - Math.min(5000, Math.floor(config.stopTimeoutMs / 3));
  const connected = r.link.connected();
  if (!connected) await r.nc.close();
  const drained = await within(
    drainMs,
    (async () => {
      await r.desk.stop();
      await r.security?.stop(); // its last aggregates go into the trail before the broker closes it
      await r.broker.stop();
      if (!r.nc.isClosed()) await r.nc.drain();
      return true;
    })().catch((err: unknown) => {
      logger.warn({ event: 'up.stop.drain_failed', ...errorFields(err) }, 'stopping the broker failed');
      return false;
    }),
    false,
  );
  if (!drained) {
    logger.warn({ event: 'up.stop.drain_incomplete', connected }, 'stopping without a full drain');
    await r.nc.close().catch(() => {});
  }
  logger.info({ event: 'broker.stopped', ...r.broker.stats }, 'stopped');
}
