// Percentiles of a run's latencies (ms).

export interface Latency {
  readonly count: number;
  readonly p50: number;
  readonly p95: number;
  readonly p99: number;
  readonly max: number;
}

export function percentiles(values: number[]): Latency {
  // No sample (subscribers still behind when the run ended): no figure rather than a made-up one.
  if (values.length === 0) return { count: 0, p50: NaN, p95: NaN, p99: NaN, max: NaN };
  const v = Float64Array.from(values).sort();
  const at = (q: number): number => v[Math.min(v.length - 1, Math.floor(q * v.length))] as number;
  return { count: v.length, p50: at(0.5), p95: at(0.95), p99: at(0.99), max: v[v.length - 1] as number };
}
