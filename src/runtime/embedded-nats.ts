// The nats-server `up` (and `demo`) own: the generated mTLS config (`nats-config`, docs/security-model.md) or, with
// --insecure-plaintext, the plaintext development config; certificates under <data-dir>/tls (or the directory
// PHI_BROKER_NATS_TLS_DIR names); streams provisioned as the admin identity. Under the data-dir lock it stops a
// nats-server an earlier, killed `up` left on the store, logs to <data-dir>/nats/nats-server.log (size-rotated),
// and restarts the server when it exits unexpectedly, within a bound. docs/operations.md.
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Catalog } from '../catalog/types.js';
import type { BrokerConfig } from '../config/config.js';
import type { Logger } from '../log/log.js';
import { ADMIN_INBOX_ID } from '../nats/permissions.js';
import { natsServerConfig, type NatsServerLogOptions } from '../nats/server-config.js';
import { freePort, startNatsServer, type RunningNatsServer } from '../nats/server.js';
import { ADMIN_IDENTITY } from '../tls/identity.js';
import { defaultTlsDir, issueAll, tlsLayout } from '../tls/store.js';
import { BrokerError } from '../wire/errors.js';
import type { DataDirLock } from './data-dir-lock.js';
import { connectNats, layout } from './data-dir.js';
import { pruneRotatedLogs } from './nats-log.js';
import { isOurNatsServer, stopOrphanNatsServers } from './nats-orphans.js';
import { provisionStreams } from './provision.js';

/** Backoff before restart n (1-based): 0.25 s doubling, at most 4 s. */
export function restartDelayMs(n: number): number {
  return Math.min(250 * 2 ** (n - 1), 4000);
}

/** A server that has run this long without exiting has recovered: its restart count starts again. */
export const STABLE_RUN_MS = 60_000;

export interface EmbeddedNats extends RunningNatsServer {
  /** The certificates every identity connects with; undefined on plaintext. */
  readonly tlsDir: string | undefined;
  readonly logFile: string;
  /** Settles with E_NATS_SERVER_FAILED once the server exited and could not be restarted within the bound. */
  readonly failed: Promise<BrokerError>;
  /** SIGKILLs the current nats-server at once (the last resort of a stop past its time bound). */
  kill(): Promise<void>;
}

interface EmbeddedOptions {
  readonly port?: number;
  /** Held by the caller for its lifetime: orphans are stopped and servers started only under it. */
  readonly lock: DataDirLock;
  readonly logger?: Logger;
}

/** The nats-server's log, pid and ports files, all under <data-dir>/nats. */
export function embeddedLogOptions(config: BrokerConfig): NatsServerLogOptions {
  const l = layout(config);
  return {
    logFile: l.natsLog,
    sizeLimit: config.natsLogMaxBytes,
    pidFile: l.natsPid,
    portsFileDir: l.nats,
  };
}

/** The mTLS default (`up`, `demo`). */
export async function startEmbeddedMtlsNats(
  config: BrokerConfig,
  catalog: Catalog,
  opts: EmbeddedOptions,
): Promise<EmbeddedNats & { readonly tlsDir: string }> {
  const l = layout(config);
  const tls = tlsLayout(config.natsTlsDir ?? defaultTlsDir(config.dataDir));
  // Certificates are (re)issued at every start (24 h); the TLS dir is `natsTlsDir` when set, since the operator
  // commands read certificates from there whenever the variable is set — an existing CA there is kept.
  await issueAll(tls, [...catalog.services.keys()].sort(), { now: Date.now(), createCaIfMissing: true });
  const host = '127.0.0.1';
  const port = opts.port ?? (await freePort(host));
  const log = embeddedLogOptions(config);
  const spawn = (): Promise<RunningNatsServer> => {
    writeFileSync(
      l.natsConfig,
      natsServerConfig(catalog, {
        tls: { caFile: tls.ca.certFile, certFile: tls.server.certFile, keyFile: tls.server.keyFile },
        storeDir: join(l.nats, 'jetstream'),
        host,
        port,
        maxPayload: Math.max(config.maxMessageBytes * 2, 1024 * 1024),
        log,
      }),
    );
    return startNatsServer({ dir: l.nats, configFile: l.natsConfig, host, port, log, detached: true });
  };
  return supervise(config, opts, spawn, tls.dir, async (server) => {
    const admin = await connectNats(server.url, 'phi-broker-admin', {
      files: tls.identity(ADMIN_IDENTITY),
      inbox: `_INBOX.${ADMIN_INBOX_ID}`,
    });
    await provisionStreams(admin, config);
    await admin.close();
  });
}

/** `--insecure-plaintext`: the plaintext development server (streams are set up by the broker's own connection). */
export async function startEmbeddedPlaintextNats(config: BrokerConfig, opts: EmbeddedOptions): Promise<EmbeddedNats> {
  const l = layout(config);
  const port = opts.port ?? (await freePort());
  const log = embeddedLogOptions(config);
  const spawn = (): Promise<RunningNatsServer> =>
    startNatsServer({
      dir: l.nats,
      port,
      maxPayload: Math.max(config.maxMessageBytes * 2, 1024 * 1024),
      log,
      detached: true,
    });
  return supervise(config, opts, spawn, undefined, async () => {});
}

async function supervise<T extends string | undefined>(
  config: BrokerConfig,
  opts: EmbeddedOptions,
  spawn: () => Promise<RunningNatsServer>,
  tlsDir: T,
  provision: (server: RunningNatsServer) => Promise<void>,
): Promise<EmbeddedNats & { readonly tlsDir: T }> {
  const l = layout(config);
  const logger = opts.logger;
  mkdirSync(l.nats, { recursive: true });
  // Never two servers on one store: whatever an earlier, killed `up` left running there stops first.
  await stopOrphanNatsServers(
    { configFile: l.natsConfig, pidFiles: [l.natsPid, l.serverFile] },
    { ...(logger === undefined ? {} : { logger }) },
  );
  pruneRotatedLogs(l.natsLog, config.natsLogFiles);
  opts.lock.verify();

  const writeServerFile = (s: RunningNatsServer): void =>
    writeFileSync(
      l.serverFile,
      JSON.stringify({ url: s.url, pid: s.pid, ...(tlsDir === undefined ? {} : { tlsDir }), log: l.natsLog }),
    );
  let current = await spawn();
  try {
    await provision(current);
  } catch (err) {
    await current.stop();
    throw err;
  }
  writeServerFile(current);

  let stopping = false;
  let startedAt = Date.now();
  let failures = 0;
  let wake: (() => void) | undefined;
  let restarting: Promise<void> | undefined;
  let reportFailure: (e: BrokerError) => void = () => {};
  const failed = new Promise<BrokerError>((resolve) => (reportFailure = resolve));
  const pruner = setInterval(() => pruneRotatedLogs(l.natsLog, config.natsLogFiles), 60_000);
  pruner.unref();

  const sleep = (ms: number): Promise<void> =>
    new Promise((resolve) => {
      const t = setTimeout(resolve, ms);
      wake = () => {
        clearTimeout(t);
        resolve();
      };
    });

  const restart = async (exit: { code: number | null; signal: NodeJS.Signals | null }): Promise<void> => {
    logger?.error(
      { event: 'nats.exited', pid: current.pid, exitCode: exit.code, signal: exit.signal, log: l.natsLog },
      'the embedded nats-server exited unexpectedly',
    );
    if (Date.now() - startedAt >= STABLE_RUN_MS) failures = 0;
    let last = '';
    while (!stopping) {
      failures += 1;
      if (failures > config.natsRestartAttempts) {
        const why = last === '' ? '' : ` (last attempt: ${last})`;
        reportFailure(
          new BrokerError(
            'E_NATS_SERVER_FAILED',
            `the embedded nats-server exited (code ${exit.code}, signal ${exit.signal}) and did not start again after ${config.natsRestartAttempts} attempts${why}; its log: ${l.natsLog}`,
            { path: l.natsConfig },
          ),
        );
        return;
      }
      await sleep(restartDelayMs(failures));
      if (stopping) return;
      try {
        const next = await spawn();
        current = next;
        startedAt = Date.now();
        writeServerFile(next);
        logger?.warn(
          { event: 'nats.restarted', pid: next.pid, attempt: failures },
          'restarted the embedded nats-server',
        );
        watch(next);
        if (stopping) await next.stop();
        return;
      } catch (err) {
        // nats-server's own start-up diagnostics (config file, port, store): no message content.
        last = (err instanceof Error ? err.message : String(err)).split('\n').filter(Boolean).slice(-1)[0] ?? '';
        logger?.error(
          { event: 'nats.restart.failed', attempt: failures, log: l.natsLog },
          'the embedded nats-server did not start',
        );
      }
    }
  };

  const watch = (server: RunningNatsServer): void => {
    void server.exited.then((exit) => {
      if (stopping || server !== current) return;
      restarting = restart(exit).finally(() => (restarting = undefined));
    });
  };
  watch(current);

  return {
    url: current.url,
    port: current.port,
    storeDir: current.storeDir,
    get pid() {
      return current.pid;
    },
    get exited() {
      return current.exited;
    },
    tlsDir,
    logFile: l.natsLog,
    failed,
    reload() {
      current.reload();
    },
    async kill() {
      stopping = true;
      if (!isOurNatsServer(current.pid, l.natsConfig)) return; // exited already; the pid may be another's now
      try {
        process.kill(current.pid, 'SIGKILL');
      } catch {
        return; // gone meanwhile
      }
      await current.exited;
    },
    async stop() {
      stopping = true;
      wake?.();
      clearInterval(pruner);
      await restarting;
      rmSync(l.serverFile, { force: true });
      await current.stop();
    },
  };
}
