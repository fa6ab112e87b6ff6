// Load shapes shared by every publisher of the bench: a closed loop (a fixed number of operations in flight,
// for saturation) and an open loop (a fixed offered rate, whatever the system does, for latency at 500/s and
// 1,000/s — an open loop does not hide queueing the way a closed one does). Timestamps are absolute
// milliseconds (performance.timeOrigin + performance.now()), comparable across the bench's processes.
import { performance } from 'node:perf_hooks';

export function now(): number {
  return performance.timeOrigin + performance.now();
}

export type LoadShape =
  | { readonly kind: 'closed'; readonly concurrency: number }
  | {
      readonly kind: 'open';
      readonly rate: number;
      /**
       * Offered instead of `rate` over the first two thirds of the warm-up: the processes' JIT warms up as in a
       * long-running service (at 10/s a 10 s warm-up is too few messages for V8 to optimise the validation),
       * then the last third settles at `rate` before the measured window.
       */
      readonly warmRate?: number;
    };

export interface LoadWindow {
  /** Absolute start (ms); the measured window is [start + warmupMs, start + warmupMs + measureMs). */
  readonly start: number;
  readonly warmupMs: number;
  readonly measureMs: number;
}

export interface Driven {
  /** Operations started. */
  readonly started: number;
  /** Open loop: scheduled operations not started because `maxInFlight` were already in flight (overload). */
  readonly shed: number;
}

/**
 * Runs `op(i)` under `shape` until the window ends, then waits up to `graceMs` for started ops to settle (an
 * overloaded system may never catch up inside a run; the caller counts what is still open). An open loop
 * keeps at most `maxInFlight` ops in flight and sheds the rest, so overload shows as shed load, not as a
 * publisher holding tens of thousands of requests.
 */
export async function drive(
  shape: LoadShape,
  window: LoadWindow,
  op: (i: number) => Promise<void>,
  graceMs: number,
  maxInFlight = 2_000,
): Promise<Driven> {
  const end = window.start + window.warmupMs + window.measureMs;
  let started = 0;
  let shed = 0;
  const pending = new Set<Promise<void>>();
  const launch = (): void => {
    const p = op(started++)
      .catch(() => undefined)
      .finally(() => pending.delete(p));
    pending.add(p);
  };
  const wait = window.start - now();
  if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  if (shape.kind === 'closed') {
    while (now() < end) {
      while (pending.size < shape.concurrency) launch();
      await Promise.race(pending);
    }
  } else {
    // Each wake-up starts every op whose scheduled time has come (catching up after a stall), then sleeps until
    // the next one is due, but at least 5 ms: above 200/s that is ticks of 5 ms, below it one wake-up per op —
    // so that at low rates the publisher's CPU per message is the SDK's, not a timer ticking in between. Rate 0
    // offers nothing (after any warm-up): what the processes cost idle.
    const t0 = now();
    const warm = shape.warmRate ?? shape.rate;
    const tw = shape.warmRate === undefined ? t0 : Math.max(t0, window.start + (window.warmupMs * 2) / 3);
    const warmCount = Math.floor(((tw - t0) / 1000) * warm);
    const dueAt = (t: number): number =>
      t < tw ? Math.floor(((t - t0) / 1000) * warm) : warmCount + Math.floor(((t - tw) / 1000) * shape.rate);
    const timeOf = (k: number): number =>
      k <= warmCount ? t0 + (k * 1000) / warm : shape.rate > 0 ? tw + ((k - warmCount) * 1000) / shape.rate : end;
    let scheduled = 0;
    while (now() < end) {
      const due = dueAt(now());
      while (scheduled < due) {
        scheduled++;
        if (pending.size < maxInFlight) launch();
        else shed++;
      }
      await new Promise((r) => setTimeout(r, Math.max(5, Math.ceil(Math.min(end, timeOf(scheduled + 1)) - now()))));
    }
  }
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([Promise.allSettled([...pending]), new Promise((r) => (timer = setTimeout(r, graceMs)))]);
  clearTimeout(timer);
  return { started, shed };
}

export function inWindow(t: number, w: LoadWindow): boolean {
  return t >= w.start + w.warmupMs && t < w.start + w.warmupMs + w.measureMs;
}
