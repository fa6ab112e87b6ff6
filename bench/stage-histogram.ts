// The broker's per-stage times over the measured window, from its `phi_broker_stage_seconds` histogram
// (src/broker/metrics.ts) read at the window's two edges: the difference of the cumulative bucket counts, with
// quantiles interpolated within a bucket as Prometheus's histogram_quantile() does. Coarse (the buckets run 1, 2.5,
// 5, 10, 25, 50 ms …), but the same figures an operator's dashboard shows.

/** One stage's histogram: cumulative counts per upper bound (seconds, ascending, +Inf last), sum and count. */
export interface StageHistogram {
  readonly le: readonly number[];
  readonly cumulative: readonly number[];
  readonly sum: number;
  readonly count: number;
}

export type StageSnapshot = Readonly<Record<string, StageHistogram>>;

/** What prom-client's `Histogram.get()` returns, as far as this reads it. */
export interface PromValues {
  readonly values: readonly {
    readonly metricName?: string;
    readonly labels: Readonly<Record<string, string | number>>;
    readonly value: number;
  }[];
}

export function snapshotOf(h: PromValues, name = 'phi_broker_stage_seconds'): StageSnapshot {
  const out: Record<string, { le: number[]; cumulative: number[]; sum: number; count: number }> = {};
  const of = (stage: string) => (out[stage] ??= { le: [], cumulative: [], sum: 0, count: 0 });
  for (const v of h.values) {
    const stage = String(v.labels['stage']);
    if (v.metricName === `${name}_bucket`) {
      const le = v.labels['le'];
      of(stage).le.push(le === '+Inf' ? Infinity : Number(le));
      of(stage).cumulative.push(v.value);
    } else if (v.metricName === `${name}_sum`) of(stage).sum = v.value;
    else if (v.metricName === `${name}_count`) of(stage).count = v.value;
  }
  return out;
}

export interface StageFigures {
  readonly count: number;
  readonly meanMs: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
}

/** The q-quantile of cumulative bucket counts, interpolated linearly within its bucket (histogram_quantile). */
export function quantile(q: number, le: readonly number[], cumulative: readonly number[]): number {
  const total = cumulative[cumulative.length - 1] ?? 0;
  if (total === 0) return NaN;
  const rank = q * total;
  const i = cumulative.findIndex((c) => c >= rank);
  const upper = le[i] as number;
  const lower = i === 0 ? 0 : (le[i - 1] as number);
  if (upper === Infinity) return lower; // Prometheus answers the highest finite bound
  const below = i === 0 ? 0 : (cumulative[i - 1] as number);
  const inBucket = (cumulative[i] as number) - below;
  return lower + (upper - lower) * (inBucket === 0 ? 1 : (rank - below) / inBucket);
}

/** Each stage's figures between two snapshots of one broker (ms). */
export function stagesBetween(a: StageSnapshot, b: StageSnapshot): Record<string, StageFigures> {
  const out: Record<string, StageFigures> = {};
  for (const [stage, h1] of Object.entries(b)) {
    const h0 = a[stage];
    const cumulative = h1.cumulative.map((c, i) => c - (h0?.cumulative[i] ?? 0));
    const count = h1.count - (h0?.count ?? 0);
    if (count === 0) continue;
    out[stage] = {
      count,
      meanMs: ((h1.sum - (h0?.sum ?? 0)) / count) * 1e3,
      p50Ms: quantile(0.5, h1.le, cumulative) * 1e3,
      p99Ms: quantile(0.99, h1.le, cumulative) * 1e3,
    };
  }
  return out;
}

/** Several brokers' snapshots as one (their buckets are the same). */
export function mergeSnapshots(all: readonly StageSnapshot[]): StageSnapshot {
  const out: Record<string, StageHistogram> = {};
  for (const s of all)
    for (const [stage, h] of Object.entries(s)) {
      const m = out[stage];
      out[stage] =
        m === undefined
          ? h
          : {
              le: m.le,
              cumulative: m.cumulative.map((c, i) => c + (h.cumulative[i] ?? 0)),
              sum: m.sum + h.sum,
              count: m.count + h.count,
            };
    }
  return out;
}
