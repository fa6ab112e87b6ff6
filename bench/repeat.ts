// Repetitions of the bench (`--repeat N`, docs/performance.md *Repetitions*): the rounds' figures and their pure
// summary — each figure's median over the rounds, and the spread (min–max) the report prints next to the key
// figures. A round is every selected run once, then the stage profiles, with the ratios of that round's own
// figures; runs are repeated round-robin (run1, run2, …, run1, run2, …) so that a shared machine's slow drift
// in load falls on every run alike.
import type { Comparison } from './compare.js';
import type { RunResult } from './runs.js';
import type { StageProfile } from './stages.js';

/** One repetition: every selected run once, the stage profiles after them, and the ratios of those figures. */
export interface Round {
  readonly runs: readonly RunResult[];
  readonly stages: Readonly<Record<string, StageProfile>>;
  readonly comparisons: readonly Comparison[];
}

export interface Spread {
  readonly min: number;
  readonly max: number;
}

/** The values that are figures: NaN (and a missing value) means "no figure" in the bench and is left out. */
function figures(values: readonly (number | undefined)[]): number[] {
  return values.filter((v): v is number => v !== undefined && !Number.isNaN(v));
}

/** The median of the figures among `values` (the mean of the middle two for an even count); NaN when there are none. */
export function median(values: readonly (number | undefined)[]): number {
  const v = figures(values).sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  const mid = v.length >> 1;
  return v.length % 2 === 1 ? (v[mid] as number) : ((v[mid - 1] as number) + (v[mid] as number)) / 2;
}

/** The smallest and largest of the figures among `values`; undefined when there are none. */
export function spread(values: readonly (number | undefined)[]): Spread | undefined {
  const v = figures(values);
  return v.length === 0 ? undefined : { min: Math.min(...v), max: Math.max(...v) };
}

function medianOfUnknown(values: readonly unknown[]): unknown {
  const present: readonly unknown[] = values.filter((v) => v !== undefined);
  const first = present[0];
  if (typeof first === 'number') return median(present as number[]);
  if (Array.isArray(first)) {
    const arrays = present as readonly (readonly unknown[])[];
    const length = Math.min(...arrays.map((a) => a.length));
    return Array.from({ length }, (_, i) => medianOfUnknown(arrays.map((a) => a[i])));
  }
  if (typeof first === 'object' && first !== null) {
    const records = present as readonly Readonly<Record<string, unknown>>[];
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(first)) out[k] = medianOfUnknown(records.map((r) => r[k]));
    return out;
  }
  return first;
}

/**
 * Figure by figure, the median of records of one shape: every number is the median of that number across the
 * records, arrays item by item (up to the shortest: the soak's RSS samples), objects member by member (the
 * first record's members); strings and other values are the first record's. The figures of one result may thus
 * come from different rounds — a median of each, not the median round.
 */
export function medianOf<T>(values: readonly T[]): T {
  if (values.length === 0) throw new TypeError('medianOf needs at least one value');
  return medianOfUnknown(values) as T;
}

/** The same item in every round, matched by position and checked by name (every round runs the same plan). */
function aligned<T>(rounds: readonly Round[], items: (r: Round) => readonly T[], name: (x: T) => string): T[][] {
  const first = items(rounds[0] as Round);
  return first.map((x, i) =>
    rounds.map((r) => {
      const y = items(r)[i];
      if (y === undefined || name(y) !== name(x))
        throw new TypeError(`rounds differ at ${name(x)}: every round must run the same plan`);
      return y;
    }),
  );
}

/**
 * The figures the report's tables show: each run's, stage profile's and comparison's figures as their median over
 * the rounds. Ratios are not recomputed from these medians: each is the median of the ratios each round computed
 * from its own figures (bench/compare.ts), so that a round's slow passthrough never meets another round's fast broker.
 */
export function summarize(rounds: readonly Round[]): Round {
  if (rounds.length === 0) throw new TypeError('summarize needs at least one round');
  const stages: Record<string, StageProfile> = {};
  for (const key of Object.keys((rounds[0] as Round).stages)) {
    stages[key] = medianOf(
      rounds.map((r) => {
        const s = r.stages[key];
        if (s === undefined)
          throw new TypeError(`rounds differ at stage profile ${key}: every round must run the same plan`);
        return s;
      }),
    );
  }
  return {
    runs: aligned(
      rounds,
      (r) => r.runs,
      (x) => x.name,
    ).map((xs) => medianOf(xs)),
    stages,
    comparisons: aligned(
      rounds,
      (r) => r.comparisons,
      (x) => x.run,
    ).map((xs) => medianOf(xs)),
  };
}
