// Runs nats-server (with JetStream) as a child process: the embedded default of `phi-broker up` and
// `demo`, and the real server every integration test starts on a free port with its own store dir.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { findNatsServerBinary } from './server-binary.js';

export interface NatsServerOptions {
  /** Directory for the config file and the JetStream store (`<dir>/jetstream`). */
  readonly dir: string;
  /** Client port; a free port when omitted. */
  readonly port?: number;
  readonly host?: string;
  /** Largest message NATS accepts, bytes (nats-server default 1 MiB). */
  readonly maxPayload?: number;
  readonly binary?: string;
  /** Milliseconds to wait for "Server is ready". */
  readonly startTimeoutMs?: number;
  /**
   * A complete config file to run instead of the generated plaintext one (e.g. `phi-broker nats-config`'s mTLS
   * config). `port` and `host` must then say where it listens; `maxPayload` is ignored.
   */
  readonly configFile?: string;
  /** Receives the server's log output (stderr) after it is ready; otherwise it is discarded. */
  readonly onLog?: (text: string) => void;
}

export interface RunningNatsServer {
  readonly url: string;
  readonly port: number;
  readonly storeDir: string;
  readonly pid: number;
  /** Sends SIGHUP: nats-server reloads its config file (certificates, users, permissions). */
  reload(): void;
  /** Stops with SIGTERM (JetStream flushes) and waits for the process to exit. */
  stop(): Promise<void>;
  /** Kills with SIGKILL (no flush: a crash, for fault tests) and waits for the process to exit. */
  kill(): Promise<void>;
}

export async function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, host, () => {
      const address = srv.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

function configText(host: string, port: number, storeDir: string, maxPayload: number): string {
  // nats-server configuration format (https://docs.nats.io/running-a-nats-service/configuration).
  return [
    `listen: "${host}:${port}"`,
    `server_name: "phi-broker-${port}"`,
    `max_payload: ${maxPayload}`,
    'jetstream {',
    `  store_dir: ${JSON.stringify(storeDir)}`,
    '  max_memory_store: 268435456',
    '}',
    '',
  ].join('\n');
}

function waitForExit(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

export async function startNatsServer(options: NatsServerOptions): Promise<RunningNatsServer> {
  const host = options.host ?? '127.0.0.1';
  if (options.configFile !== undefined && options.port === undefined)
    throw new TypeError('startNatsServer: configFile needs the port it listens on');
  const port = options.port ?? (await freePort(host));
  const storeDir = join(options.dir, 'jetstream');
  mkdirSync(storeDir, { recursive: true });
  let configFile = options.configFile;
  if (configFile === undefined) {
    configFile = join(options.dir, 'nats-server.conf');
    writeFileSync(configFile, configText(host, port, storeDir, options.maxPayload ?? 1024 * 1024));
  }
  const binary = options.binary ?? findNatsServerBinary();
  const child = spawn(binary, ['-c', configFile], { stdio: ['ignore', 'ignore', 'pipe'] });

  let tail = '';
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`nats-server did not become ready within ${options.startTimeoutMs ?? 15000} ms:\n${tail}`));
    }, options.startTimeoutMs ?? 15000);
    const onData = (chunk: Buffer): void => {
      tail = (tail + chunk.toString('utf8')).slice(-4000);
      if (tail.includes('Server is ready')) {
        clearTimeout(timer);
        child.stderr?.off('data', onData);
        const onLog = options.onLog;
        if (onLog === undefined) child.stderr?.resume();
        else child.stderr?.on('data', (c: Buffer) => onLog(c.toString('utf8')));
        resolve();
      }
    };
    child.stderr?.on('data', onData);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`nats-server exited before ready (code ${code}, signal ${signal}):\n${tail}`));
    });
  });

  return {
    url: `nats://${host}:${port}`,
    port,
    storeDir,
    pid: child.pid ?? -1,
    reload() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGHUP');
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      // JetStream flushes on SIGTERM; a server that has not exited after 10 s is killed.
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await waitForExit(child);
      clearTimeout(timer);
    },
    async kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await waitForExit(child);
    },
  };
}
