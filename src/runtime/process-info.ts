// What `up` may know about another process before trusting a lock or stopping a nats-server: is it alive, is it the
// same process that wrote a pid down (Linux proc(5): start time in clock ticks since boot, so a reused pid is told
// apart), and what command line it runs. Off Linux only liveness is known (`process.kill(pid, 0)`).
import { readFileSync, readdirSync, readlinkSync } from 'node:fs';

/** Field 3 (state) and field 22 (starttime) of /proc/<pid>/stat, or undefined when there is no such process or no /proc. */
function procStat(pid: number): { state: string; startTicks: string } | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // `pid (comm) state ppid …`: comm may hold spaces and parentheses, so fields are counted after the last ')'.
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  const state = fields[0];
  const startTicks = fields[19];
  return state === undefined || startTicks === undefined ? undefined : { state, startTicks };
}

/** True when /proc describes processes here (Linux). */
export function hasProcfs(): boolean {
  return procStat(process.pid) !== undefined;
}

/** The process's start time in clock ticks after boot (proc(5) stat field 22); undefined off Linux or when it is gone. */
export function processStartTicks(pid: number): string | undefined {
  return procStat(pid)?.startTicks;
}

/** Alive and not a zombie (a zombie has exited; only its parent has not reaped it yet). */
export function isProcessAlive(pid: number): boolean {
  if (!Number.isSafeInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false; // EPERM: alive, another user's
  }
  const stat = procStat(pid);
  return stat === undefined ? !hasProcfs() : stat.state !== 'Z' && stat.state !== 'X';
}

/** argv of a live process (proc(5) cmdline), or undefined. */
export function processArgv(pid: number): string[] | undefined {
  try {
    const raw = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    if (raw === '') return undefined;
    return raw.replace(/\0$/, '').split('\0');
  } catch {
    return undefined;
  }
}

/** The working directory of a process (to resolve a relative path on its command line), or undefined. */
export function processCwd(pid: number): string | undefined {
  try {
    return readlinkSync(`/proc/${pid}/cwd`);
  } catch {
    return undefined;
  }
}

/** Every pid /proc lists (empty off Linux). */
export function listPids(): number[] {
  try {
    return readdirSync('/proc')
      .filter((name) => /^\d+$/.test(name))
      .map(Number);
  } catch {
    return [];
  }
}
