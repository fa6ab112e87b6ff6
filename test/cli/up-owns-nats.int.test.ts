// `phi-broker up` owns its nats-server (docs/operations.md), shown on real processes killed by pid: a second `up` on
// the data dir refuses and starts nothing; nats-server logs to <data-dir>/nats/nats-server.log (a provoked permission
// violation lands there, the PHI that went through does not); `kill -9` of `up` leaves an orphan nats-server that
// the next `up` stops before starting its own on the store, which keeps its sequence; `kill -9` of the nats-server
// under `up` is answered by a restart and the broker processes the next message; SIGTERM ends `up` with exit code 0
// while NATS is down; past the restart bound `up` exits 1 with E_NATS_SERVER_FAILED.
// Restarts are made to fail by a wrapper (NATS_SERVER_BIN) that refuses while a marker file exists.
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, StringCodec, type NatsConnection } from 'nats';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mtlsConnectionOptions } from '../../src/nats/connect-options.js';
import { identityInbox } from '../../src/nats/permissions.js';
import { findNatsServerBinary } from '../../src/nats/server-binary.js';
import { ADMIN_IDENTITY, serviceIdentity, type Identity } from '../../src/tls/identity.js';
import { tlsLayout } from '../../src/tls/store.js';
import { STREAMS } from '../../src/wire/names.js';
import { EXAMPLE_PHI, ROOT, killLeftovers, runCli, startUp, type UpProcess } from './run-cli.js';
import { until } from '../helpers/poll.js';

let dir: string;
let dataDir: string;
let failMark: string;
let env: Record<string, string>;
const data = (): string[] => ['--data-dir', dataDir];
const natsDir = (): string => join(dataDir, 'nats');
const configFile = (): string => join(natsDir(), 'nats-server.conf');
const logFile = (): string => join(natsDir(), 'nats-server.log');
const PLANTED = 'Zephyrine-Oakhollow-4471'; // a value no log may ever hold

/** Running (not zombie) per /proc: a reparented orphan may stay a zombie where pid 1 does not reap. */
function running(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0];
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

/** Every running nats-server whose command line names this data dir's config. */
function natsServersOnStore(): number[] {
  const pids: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    let argv: string[];
    try {
      argv = readFileSync(`/proc/${name}/cmdline`, 'utf8').split('\0');
    } catch {
      continue;
    }
    if ((argv[0] ?? '').endsWith('nats-server') && argv.includes(configFile()) && running(Number(name)))
      pids.push(Number(name));
  }
  return pids.sort((a, b) => a - b);
}

function serverJson(): { url: string; pid: number; tlsDir: string } {
  return JSON.parse(readFileSync(join(natsDir(), 'server.json'), 'utf8')) as {
    url: string;
    pid: number;
    tlsDir: string;
  };
}

async function connectAs(identity: Identity): Promise<NatsConnection> {
  const files = tlsLayout(join(dataDir, 'tls')).identity(identity);
  return connect({
    ...mtlsConnectionOptions(serverJson().url, files, identityInbox(identity), 'test'),
    reconnect: false,
  });
}

async function ingestState(): Promise<{ lastSeq: number; audit: number }> {
  const nc = await connectAs(ADMIN_IDENTITY);
  try {
    const jsm = await nc.jetstreamManager();
    const ingest = await jsm.streams.info(STREAMS.ingest);
    const audit = await jsm.streams.info(STREAMS.audit);
    return { lastSeq: ingest.state.last_seq, audit: audit.state.messages };
  } finally {
    await nc.close();
  }
}

async function publishPatient(): Promise<void> {
  const pub = await runCli(['publish', '--as', 'registration', join(ROOT, 'examples', 'patient.json'), ...data()], {
    env,
  });
  expect({ code: pub.code, stderr: pub.stderr }).toEqual({ code: 0, stderr: '' });
  expect(pub.stdout).toMatch(/^accepted [0-9a-f-]{36} \(\d+ deliveries\)\n$/);
}

let up: UpProcess;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'phi-broker-up-owns-'));
  dataDir = join(dir, 'data');
  failMark = join(dir, 'refuse-to-start');
  const bin = join(dir, 'bin');
  mkdirSync(bin);
  // Named nats-server and exec'ing the real one: the process keeps the pid and the command line `up` checks.
  writeFileSync(
    join(bin, 'nats-server'),
    `#!/bin/sh\nif [ -e '${failMark}' ]; then echo 'refused by the test marker' >&2; exit 1; fi\nexec '${findNatsServerBinary()}' "$@"\n`,
  );
  chmodSync(join(bin, 'nats-server'), 0o755);
  env = { NATS_SERVER_BIN: join(bin, 'nats-server') };
  up = await startUp(data(), { env });
}, 90_000);

afterAll(async () => {
  await killLeftovers();
  for (const pid of natsServersOnStore()) process.kill(pid, 'SIGKILL'); // only ones this file's data dir names
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
});

describe('phi-broker up owns its nats-server', () => {
  it('a second up on the same data dir refuses, naming the first, and starts nothing', async () => {
    const before = serverJson();
    const second = await runCli(['up', ...data()], { env });
    expect(second.code).toBe(1);
    expect(second.stdout).toBe('');
    expect(second.stderr).toMatch(
      /^phi-broker: E_DATA_DIR_LOCKED: the data directory is in use by phi-broker up \(pid /,
    );
    expect(second.stderr).toContain(`(pid ${up.pid},`);
    expect(natsServersOnStore()).toEqual([before.pid]);
    expect(serverJson()).toEqual(before);
    expect((JSON.parse(readFileSync(join(dataDir, 'up.lock'), 'utf8')) as { pid: number }).pid).toBe(up.pid);
  });

  it("nats-server's log file records a provoked permission violation and a refused handshake, and holds no PHI", async () => {
    await publishPatient(); // the example patient's PHI passes through as ciphertext
    // A service publishing on another service's ingest subject: refused by the generated permissions.
    const notification = await connectAs(serviceIdentity('notification'));
    notification.publish('phi.ingest.registration.Patient', StringCodec().encode(`{"family":"${PLANTED}"}`));
    await notification.flush().catch(() => {});
    await notification.close();
    // A client that trusts the CA but has no certificate of its own: refused by the server at the TLS handshake.
    const caFile = tlsLayout(join(dataDir, 'tls')).ca.certFile;
    const refused = await connect({
      servers: serverJson().url,
      reconnect: false,
      timeout: 3_000,
      tls: { caFile },
    }).then(
      (nc) => nc.close().then(() => false),
      () => true,
    );
    expect(refused).toBe(true);
    await until('the violation and the refused handshake in the log', () => {
      const text = readFileSync(logFile(), 'utf8');
      return text.includes('Publish Violation') && text.includes('TLS handshake error');
    });
    const log = readFileSync(logFile(), 'utf8');
    expect(log).toMatch(/Publish Violation.*CN=notification.*phi\.ingest\.registration\.Patient/);
    expect(log).toMatch(/TLS handshake error: .*certificate/);
    expect(log).toMatch(/Server is ready/);
    for (const s of [...EXAMPLE_PHI, PLANTED]) expect(log).not.toContain(s);
  });

  it('kill -9 of up: the next up stops the orphan nats-server first, runs exactly one, and the store keeps its sequence', async () => {
    const before = await ingestState();
    expect(before.lastSeq).toBeGreaterThan(0);
    const orphan = serverJson().pid;
    process.kill(up.pid, 'SIGKILL');
    const killed = await up.stop();
    expect(killed.signal).toBe('SIGKILL');
    expect(running(orphan)).toBe(true); // left behind, still on the store
    // Stored by the orphan while no broker runs: JetStream acknowledges it, no receipt comes.
    const stored = await runCli(
      ['publish', '--as', 'registration', '--deadline', '1500', join(ROOT, 'examples', 'patient.json'), ...data()],
      { env },
    );
    expect(stored.code).toBe(3); // stored, no verdict yet
    const storedId = /^stored ([0-9a-f-]{36}): .*\n$/.exec(stored.stdout)?.[1];
    expect(storedId).toBeDefined();

    up = await startUp(data(), { env: { ...env, PHI_BROKER_HEAP_GROWING_PERCENT: '150' } });
    expect(running(orphan)).toBe(false);
    expect(up.stderr()).toContain('"event":"nats.orphan.stopped"');
    // up sets V8's old-generation growing factor from its configuration (test/runtime/heap-growing.test.ts: its effect).
    expect(up.stderr()).toContain('"event":"memory.heap_growing","percent":150');
    const now = serverJson().pid;
    expect(now).not.toBe(orphan);
    expect(natsServersOnStore()).toEqual([now]);

    await publishPatient(); // the broker consumes new messages
    const after = await ingestState();
    expect(after.lastSeq).toBe(before.lastSeq + 2); // no sequence reset: the orphan's message and the new one
    expect(after.audit).toBeGreaterThan(before.audit); // the audit trail kept its records and grew
    // The message the orphan stored was handed over with the store and processed by the new broker.
    const audit = await runCli(['audit', 'query', '--service', 'registration', '--json', ...data()], { env });
    expect({ code: audit.code, stderr: audit.stderr }).toEqual({ code: 0, stderr: '' });
    expect(audit.stdout).toContain(storedId);
  });

  it('kill -9 of the nats-server under up: up restarts it and the next message is processed', async () => {
    const first = serverJson().pid;
    process.kill(first, 'SIGKILL');
    await until('the restart', () => up.stderr().includes('"event":"nats.restarted"'));
    const restarted = serverJson().pid;
    expect(restarted).not.toBe(first);
    expect(natsServersOnStore()).toEqual([restarted]);
    await publishPatient();
  });

  it('SIGTERM ends up with exit code 0 while NATS is down; no nats-server left, lock released', async () => {
    writeFileSync(failMark, '');
    process.kill(serverJson().pid, 'SIGKILL');
    await until('a failed restart', () => up.stderr().includes('"event":"nats.restart.failed"'));
    expect(natsServersOnStore()).toEqual([]);
    const r = await up.stop('SIGTERM');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('phi-broker stopping');
    expect(existsSync(join(dataDir, 'up.lock'))).toBe(false);
    expect(existsSync(join(natsDir(), 'server.json'))).toBe(false);
    for (const s of EXAMPLE_PHI) expect(r.stderr).not.toContain(s);
  });

  it('past the restart bound up exits 1 with E_NATS_SERVER_FAILED', async () => {
    rmSync(failMark);
    up = await startUp(data(), { env: { ...env, PHI_BROKER_NATS_RESTART_ATTEMPTS: '2' } });
    writeFileSync(failMark, '');
    process.kill(serverJson().pid, 'SIGKILL');
    const r = await up.exited(); // on its own, after the first restart and one more were refused
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      /phi-broker: E_NATS_SERVER_FAILED: the embedded nats-server exited \(code null, signal SIGKILL\) and did not start again after 2 attempts \(last attempt: refused by the test marker\); its log: /,
    );
    expect(r.stderr.match(/"event":"nats\.restart\.failed"/g)?.length).toBe(2);
    expect(natsServersOnStore()).toEqual([]);
    expect(existsSync(join(dataDir, 'up.lock'))).toBe(false);
  });
});
