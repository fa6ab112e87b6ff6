// Allocation and garbage-collection probe for a bench broker process, preloaded with
//   PHI_BENCH_HEAP_PROBE=<dir> node dist/bench/main.js … --broker-flags '--import=<root>/dist/bench/heap-probe.js'
// It works with any build's broker-process.js (--broker-build too), as it only listens on the IPC channel: the
// runner asks every broker for `stats` at the start and at the end of the measured window (bench/runs.ts), and
// between those two requests the probe samples allocations (V8 sampling heap profiler, counting objects already
// collected: `node --heap-prof` keeps only those still live at exit) and counts collections (perf_hooks 'gc').
// At the window's end it writes <dir>/broker-<pid>.heapprofile (bench/heap-profile-summary.ts reads it) and
// <dir>/broker-<pid>.gc.json.
import { Session } from 'node:inspector/promises';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { constants, PerformanceObserver, type PerformanceEntry } from 'node:perf_hooks';

/** What the collector did over the window: minor = scavenges, major = mark-compacts (perf_hooks 'gc' kinds). */
export interface GcCounts {
  windowMs: number;
  minor: number;
  minorMs: number;
  minorOver5Ms: number;
  minorMaxMs: number;
  major: number;
  majorMs: number;
  majorMaxMs: number;
}

export function emptyCounts(): GcCounts {
  return { windowMs: 0, minor: 0, minorMs: 0, minorOver5Ms: 0, minorMaxMs: 0, major: 0, majorMs: 0, majorMaxMs: 0 };
}

/** Adds one 'gc' performance entry to the counts; incremental marking and weak callbacks count as neither. */
export function countGc(c: GcCounts, kind: number, ms: number): void {
  if (kind === constants.NODE_PERFORMANCE_GC_MINOR) {
    c.minor++;
    c.minorMs += ms;
    if (ms > 5) c.minorOver5Ms++;
    c.minorMaxMs = Math.max(c.minorMaxMs, ms);
  } else if (kind === constants.NODE_PERFORMANCE_GC_MAJOR) {
    c.major++;
    c.majorMs += ms;
    c.majorMaxMs = Math.max(c.majorMaxMs, ms);
  }
}

function install(dir: string): void {
  const session = new Session();
  session.connect();
  let counts: GcCounts | undefined;
  let start = 0;
  let edges = 0;
  const observer = new PerformanceObserver((list) => {
    if (counts === undefined) return;
    for (const e of list.getEntries() as (PerformanceEntry & { detail?: { kind?: number } })[])
      countGc(counts, e.detail?.kind ?? 0, e.duration);
  });
  observer.observe({ entryTypes: ['gc'] });
  const begin = async (): Promise<void> => {
    await session.post('HeapProfiler.enable');
    await session.post('HeapProfiler.startSampling', {
      samplingInterval: 65_536,
      includeObjectsCollectedByMajorGC: true,
      includeObjectsCollectedByMinorGC: true,
    });
    counts = emptyCounts();
    start = performance.now();
  };
  const end = async (): Promise<void> => {
    const c = counts;
    counts = undefined;
    const { profile } = await session.post('HeapProfiler.stopSampling');
    if (c === undefined) return;
    c.windowMs = performance.now() - start;
    writeFileSync(join(dir, `broker-${process.pid}.heapprofile`), JSON.stringify(profile));
    writeFileSync(join(dir, `broker-${process.pid}.gc.json`), `${JSON.stringify(c)}\n`);
    process.stderr.write(`heap-probe: broker ${process.pid}: ${JSON.stringify(c)}\n`);
  };
  process.on('message', (m: { cmd?: unknown }) => {
    if (m.cmd !== 'stats') return;
    edges++;
    const step = edges === 1 ? begin() : edges === 2 ? end() : undefined;
    step?.catch((err: unknown) => process.stderr.write(`heap-probe: ${String(err)}\n`));
  });
}

const dir = process.env['PHI_BENCH_HEAP_PROBE'];
if (dir !== undefined && process.send !== undefined) install(dir);
