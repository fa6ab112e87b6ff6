// A nats-server left running on our JetStream store by an `up` that was killed (SIGKILL, OOM) must stop before a
// new one starts there: two servers on one store lose messages. A process counts as ours only when /proc says it
// is a nats-server whose command line names our config file (`-c <data-dir>/nats/nats-server.conf`); nothing
// else is ever signalled. Candidates: the pids in our pid files and, on Linux, every process /proc lists.
import { readFileSync } from 'node:fs';
import { basename, isAbsolute, resolve } from 'node:path';
import type { Logger } from '../log/log.js';
import { BrokerError } from '../wire/errors.js';
import { isProcessAlive, listPids, processArgv, processCwd } from './process-info.js';

export interface OrphanSearch {
  /** The absolute config file our nats-server runs with. */
  readonly configFile: string;
  /** Files that may hold the pid of an earlier server (nats-server's pid_file, server.json). */
  readonly pidFiles: readonly string[];
}

/** The config file named on a nats-server command line (`-c f`, `--config f`, `--config=f`), absolute. */
function configArg(pid: number, argv: readonly string[]): string | undefined {
  for (let i = 1; i < argv.length; i++) {
    const a = argv[i] ?? '';
    let value: string | undefined;
    if (a === '-c' || a === '--config' || a === '-config') value = argv[i + 1];
    else if (a.startsWith('--config=')) value = a.slice('--config='.length);
    if (value === undefined) continue;
    if (isAbsolute(value)) return value;
    const cwd = processCwd(pid);
    return cwd === undefined ? undefined : resolve(cwd, value);
  }
  return undefined;
}

/** True only for a live nats-server process whose command line names `configFile`. */
export function isOurNatsServer(pid: number, configFile: string): boolean {
  if (pid === process.pid || !isProcessAlive(pid)) return false;
  const argv = processArgv(pid);
  if (argv === undefined || argv.length === 0) return false;
  if (!basename(argv[0] ?? '').startsWith('nats-server')) return false;
  return configArg(pid, argv) === resolve(configFile);
}

function pidIn(file: string): number | undefined {
  let text: string;
  try {
    text = readFileSync(file, 'utf8').trim();
  } catch {
    return undefined;
  }
  if (/^\d+$/.test(text)) return Number(text);
  try {
    const pid = (JSON.parse(text) as { pid?: unknown }).pid;
    return typeof pid === 'number' ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** The nats-servers running on our config, by pid (pid files first, then a /proc scan). */
export function findOrphanNatsServers(search: OrphanSearch): number[] {
  const candidates = new Set<number>();
  for (const f of search.pidFiles) {
    const pid = pidIn(f);
    if (pid !== undefined) candidates.add(pid);
  }
  for (const pid of listPids()) candidates.add(pid);
  return [...candidates].filter((pid) => isOurNatsServer(pid, search.configFile)).sort((a, b) => a - b);
}

async function waitGone(pids: readonly number[], timeoutMs: number): Promise<number[]> {
  const deadline = Date.now() + timeoutMs;
  let alive = pids.filter(isProcessAlive);
  while (alive.length > 0 && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50)); // no exit event for a process that is not our child
    alive = alive.filter(isProcessAlive);
  }
  return alive;
}

/**
 * Stops every orphan found: SIGTERM (JetStream flushes its store), SIGKILL after `termTimeoutMs`. Returns the pids
 * stopped; throws E_NATS_SERVER_FAILED when one is still alive after SIGKILL.
 */
export async function stopOrphanNatsServers(
  search: OrphanSearch,
  opts: { readonly logger?: Logger; readonly termTimeoutMs?: number; readonly killTimeoutMs?: number } = {},
): Promise<number[]> {
  const pids = findOrphanNatsServers(search);
  if (pids.length === 0) return [];
  opts.logger?.warn(
    { event: 'nats.orphan.stopping', pids, configFile: search.configFile },
    'a nats-server left by an earlier phi-broker runs on this store; stopping it before starting ours',
  );
  const signal = (pid: number, sig: NodeJS.Signals): void => {
    // Checked again right before each signal: the pid must still be that nats-server.
    if (!isOurNatsServer(pid, search.configFile)) return;
    try {
      process.kill(pid, sig);
    } catch {
      // gone meanwhile
    }
  };
  for (const pid of pids) signal(pid, 'SIGTERM');
  let alive = await waitGone(pids, opts.termTimeoutMs ?? 10_000);
  for (const pid of alive) signal(pid, 'SIGKILL');
  alive = await waitGone(alive, opts.killTimeoutMs ?? 5_000);
  if (alive.length > 0) {
    throw new BrokerError(
      'E_NATS_SERVER_FAILED',
      `a nats-server left on this store (pid ${alive.join(', ')}) did not stop after SIGKILL; stop it, then start again`,
      { path: search.configFile },
    );
  }
  opts.logger?.warn({ event: 'nats.orphan.stopped', pids }, 'stopped the nats-server left by an earlier phi-broker');
  return pids;
}
