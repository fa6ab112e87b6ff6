// Runs nats-server (with JetStream) as a child process: the embedded default of `phi-broker up` and
// `demo`, and the real server every integration test starts on a free port with its own store dir.
import { spawn } from 'node:child_process';
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';
import { findNatsServerBinary } from './server-binary.js';
import { logConfigLines, type NatsServerLogOptions } from './server-config.js';
import { DEFAULT_MAX_PAYLOAD } from '../wire/max-payload.js';

export interface NatsServerOptions {
  /** Directory for the config file and the JetStream store (`<dir>/jetstream`). */
  readonly dir: string;
  /** Client port; a free port when omitted. */
  readonly port?: number;
  readonly host?: string;
  /** Largest message NATS accepts, bytes (nats-server default 1 MiB). */
  readonly maxPayload?: number;
  readonly binary?: string;
  /** nats-server's Go profiling port (`--profile`: /debug/pprof/ on 127.0.0.1), for the bench's CPU profiles. */
  readonly profilePort?: number;
  /** Milliseconds to wait for "Server is ready". */
  readonly startTimeoutMs?: number;
  /**
   * A complete config file to run instead of the generated plaintext one (e.g. `phi-broker nats-config`'s mTLS
   * config). `port` and `host` must then say where it listens; `maxPayload` is ignored.
   */
  readonly configFile?: string;
  /** Receives the server's log output (stderr) after it is ready; otherwise it is discarded. */
  readonly onLog?: (text: string) => void;
  /**
   * The server logs to this file instead of stderr (the generated config's `log_file`; a `configFile` must say so
   * itself), and readiness is then the ports file nats-server writes into `portsFileDir` once it accepts clients.
   */
  readonly log?: NatsServerLogOptions;
  /** Its own process group, so a terminal's Ctrl-C reaches only the parent, which stops the server in order. */
  readonly detached?: boolean;
}

export interface RunningNatsServer {
  readonly url: string;
  readonly port: number;
  readonly storeDir: string;
  readonly pid: number;
  /** Settles when the process exits, however it ends. */
  readonly exited: Promise<{ readonly code: number | null; readonly signal: NodeJS.Signals | null }>;
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

function configText(
  host: string,
  port: number,
  storeDir: string,
  maxPayload: number,
  log: NatsServerLogOptions | undefined,
): string {
  // nats-server configuration format (https://docs.nats.io/running-a-nats-service/configuration).
  return [
    `listen: "${host}:${port}"`,
    `server_name: "phi-broker-${port}"`,
    `max_payload: ${maxPayload}`,
    ...(log === undefined ? [] : logConfigLines(log)),
    'jetstream {',
    `  store_dir: ${JSON.stringify(storeDir)}`,
    '  max_memory_store: 268435456',
    '}',
    '',
  ].join('\n');
}

const PORTS_FILE = /_(\d+)\.ports$/;

/** Waits for the ports file nats-server writes once it accepts clients (`ports_file_dir`), polling the directory. */
function portsFileWritten(dir: string, pid: number, isDone: () => boolean): Promise<void> {
  return new Promise((resolveReady) => {
    const check = (): void => {
      if (isDone()) return;
      let names: string[] = [];
      try {
        names = readdirSync(dir);
      } catch {
        // not there yet
      }
      if (names.some((n) => PORTS_FILE.exec(n)?.[1] === String(pid))) resolveReady();
      else setTimeout(check, 25);
    };
    check();
  });
}

/** Removes ports files of servers that are gone (killed servers leave theirs). */
function removePortsFiles(dir: string): void {
  let names: string[] = [];
  try {
    names = readdirSync(dir);
  } catch {
    return;
  }
  for (const n of names) if (PORTS_FILE.test(n)) rmSync(join(dir, n), { force: true });
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
    writeFileSync(configFile, configText(host, port, storeDir, options.maxPayload ?? DEFAULT_MAX_PAYLOAD, options.log));
  }
  const log = options.log;
  if (log !== undefined) {
    mkdirSync(log.portsFileDir, { recursive: true });
    removePortsFiles(log.portsFileDir);
  }
  const binary = options.binary ?? findNatsServerBinary();
  // An absolute config path on the command line: how a later `up` recognises this server as ours (nats-orphans.ts).
  const profile = options.profilePort === undefined ? [] : ['--profile', String(options.profilePort)];
  const child = spawn(binary, ['-c', resolve(configFile), ...profile], {
    stdio: ['ignore', 'ignore', 'pipe'],
    detached: options.detached === true,
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((done) =>
    child.once('exit', (code, signal) => done({ code, signal })),
  );
  const running = (): boolean => child.exitCode === null && child.signalCode === null;

  let tail = '';
  const startTimeoutMs = options.startTimeoutMs ?? 15000;
  let settled = false;
  await new Promise<void>((resolveReady, reject) => {
    const where = log === undefined ? '' : ` (its log: ${log.logFile})`;
    const ready = (): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      child.stderr?.off('data', onData);
      const onLog = options.onLog;
      if (onLog === undefined) child.stderr?.resume();
      else child.stderr?.on('data', (c: Buffer) => onLog(c.toString('utf8')));
      resolveReady();
    };
    const fail = (err: Error): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      reject(err);
    };
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      fail(new Error(`nats-server did not become ready within ${startTimeoutMs} ms${where}:\n${tail}`));
    }, startTimeoutMs);
    const onData = (chunk: Buffer): void => {
      tail = (tail + chunk.toString('utf8')).slice(-4000);
      if (log === undefined && tail.includes('Server is ready')) ready();
    };
    child.stderr?.on('data', onData);
    child.once('error', fail);
    void exited.then(({ code, signal }) =>
      fail(new Error(`nats-server exited before ready (code ${code}, signal ${signal})${where}:\n${tail}`)),
    );
    if (log !== undefined && child.pid !== undefined)
      void portsFileWritten(log.portsFileDir, child.pid, () => settled).then(ready);
  });

  return {
    url: `nats://${host}:${port}`,
    port,
    storeDir,
    pid: child.pid ?? -1,
    exited,
    reload() {
      if (running()) child.kill('SIGHUP');
    },
    async stop() {
      if (running()) child.kill('SIGTERM');
      // JetStream flushes on SIGTERM; a server that has not exited after 10 s is killed.
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    },
    async kill() {
      if (running()) child.kill('SIGKILL');
      await exited;
    },
  };
}
