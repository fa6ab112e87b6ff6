// Where end-to-end latency goes, per delivery, from four clocks of one machine (ms): the publisher's start of
// `publish`, the publisher's seal (the original envelope's iat), the broker's seal of the copy (the delivery
// envelope's iat) and the subscriber's handler. For the slowest 1 % of deliveries it also gives each segment's
// mean, so a tail can be laid at one stage's door rather than guessed at.
import { percentiles, type Latency } from './latency.js';

/** One delivery's clocks, ms since the epoch. */
export interface DeliveryClocks {
  readonly start: number;
  readonly published: number;
  readonly sealed: number;
  readonly received: number;
}

export const SEGMENTS = ['publisher', 'broker', 'after'] as const;
export type Segment = (typeof SEGMENTS)[number];

export interface LatencySplit {
  /** start → the publisher's seal; → the broker's seal of the copy; → the subscriber's handler. */
  readonly segments: Readonly<Record<Segment, Latency>>;
  /** Each segment's mean over the deliveries whose end-to-end latency is at or above the p99. */
  readonly tailMeans: Readonly<Record<Segment, number>>;
  readonly tailCount: number;
}

const segmentsOf = (c: DeliveryClocks): Record<Segment, number> => ({
  publisher: c.published - c.start,
  broker: c.sealed - c.published,
  after: c.received - c.sealed,
});

export function latencySplit(clocks: readonly DeliveryClocks[]): LatencySplit | undefined {
  if (clocks.length === 0) return undefined;
  const each = clocks.map((c) => ({ total: c.received - c.start, seg: segmentsOf(c) }));
  const p99 = percentiles(each.map((e) => e.total)).p99;
  const tail = each.filter((e) => e.total >= p99);
  const mean = (s: Segment): number => tail.reduce((a, e) => a + e.seg[s], 0) / tail.length;
  const segments = Object.fromEntries(SEGMENTS.map((s) => [s, percentiles(each.map((e) => e.seg[s]))])) as Record<
    Segment,
    Latency
  >;
  const tailMeans = Object.fromEntries(SEGMENTS.map((s) => [s, mean(s)])) as Record<Segment, number>;
  return { segments, tailMeans, tailCount: tail.length };
}
