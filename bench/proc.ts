// CPU time and memory of a process from Linux procfs (proc(5)): utime + stime from /proc/<pid>/stat (fields 14
// and 15, in clock ticks), VmRSS and VmHWM (peak resident set) from /proc/<pid>/status, and context switches from
// each thread's /proc/<pid>/task/<tid>/status, read and write system calls from /proc/<pid>/io.
import { readdirSync, readFileSync } from 'node:fs';

/** Clock ticks per second (sysconf(_SC_CLK_TCK)); 100 on every Linux this runs on. */
const CLK_TCK = 100;

export interface ProcSample {
  readonly at: number;
  /** CPU seconds used so far (user + system). */
  readonly cpuSeconds: number;
  readonly rssMb: number;
  readonly peakRssMb: number;
  /** Context switches so far (voluntary + nonvoluntary) per thread id: how often the process slept and woke. */
  readonly switches: Readonly<Record<string, number>>;
  /** Read and write system calls so far, every thread's (`syscr`, `syscw`); NaN when /proc/<pid>/io is not readable. */
  readonly syscalls: { readonly reads: number; readonly writes: number };
}

function syscalls(pid: number): { reads: number; writes: number } {
  try {
    const io = readFileSync(`/proc/${pid}/io`, 'utf8');
    return {
      reads: Number(/^syscr:\s+(\d+)/m.exec(io)?.[1] ?? NaN),
      writes: Number(/^syscw:\s+(\d+)/m.exec(io)?.[1] ?? NaN),
    };
  } catch {
    return { reads: NaN, writes: NaN };
  }
}

export function sample(pid: number): ProcSample | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) is in parentheses and may contain spaces: split after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const utime = Number(fields[11]);
    const stime = Number(fields[12]);
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (name: string): number => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
    // Per thread (a Go nats-server wakes on many; Node's libuv pool and GC threads too): summed over the tasks.
    const switches: Record<string, number> = {};
    for (const task of readdirSync(`/proc/${pid}/task`)) {
      try {
        const t = readFileSync(`/proc/${pid}/task/${task}/status`, 'utf8');
        switches[task] =
          Number(/^voluntary_ctxt_switches:\s+(\d+)/m.exec(t)?.[1] ?? 0) +
          Number(/^nonvoluntary_ctxt_switches:\s+(\d+)/m.exec(t)?.[1] ?? 0);
      } catch {
        // the thread ended between the listing and the read
      }
    }
    return {
      at: Date.now(),
      cpuSeconds: (utime + stime) / CLK_TCK,
      rssMb: kb('VmRSS') / 1024,
      peakRssMb: kb('VmHWM') / 1024,
      switches,
      syscalls: syscalls(pid),
    };
  } catch {
    return undefined; // the process has exited
  }
}

/**
 * Context switches between two samples, summed over the threads alive at the second (one that started since
 * counts from zero; one that ended takes its switches with it: a slight undercount, never a negative figure).
 */
export function switchesBetween(a: ProcSample, b: ProcSample): number {
  let n = 0;
  for (const [task, count] of Object.entries(b.switches)) n += count - (a.switches[task] ?? 0);
  return n;
}

/** CPU % of one core between two samples. */
export function cpuPercent(a: ProcSample, b: ProcSample): number {
  const wall = (b.at - a.at) / 1000;
  return wall > 0 ? (100 * (b.cpuSeconds - a.cpuSeconds)) / wall : 0;
}

/** The whole machine's CPU time so far (proc(5) /proc/stat, first line), in seconds of one core. */
export interface MachineSample {
  readonly at: number;
  /** user + nice + system + irq + softirq: time the cores ran something. */
  readonly busySeconds: number;
  /** steal: time the hypervisor ran something else while a core of this VM wanted to run. */
  readonly stealSeconds: number;
}

export function machineSample(): MachineSample {
  const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0] as string;
  const f = line.trim().split(/\s+/).slice(1).map(Number);
  const [user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0, steal = 0] = f;
  return {
    at: Date.now(),
    busySeconds: (user + nice + system + irq + softirq) / CLK_TCK,
    stealSeconds: steal / CLK_TCK,
  };
}

/** Busy and stolen time between two machine samples, % of one core (2 cores fully busy = 200 %). */
export function machinePercent(a: MachineSample, b: MachineSample): { busy: number; steal: number } {
  const wall = (b.at - a.at) / 1000;
  if (wall <= 0) return { busy: 0, steal: 0 };
  return {
    busy: (100 * (b.busySeconds - a.busySeconds)) / wall,
    steal: (100 * (b.stealSeconds - a.stealSeconds)) / wall,
  };
}
