import { describe, expect, it } from 'vitest';
import { latencySplit, type DeliveryClocks } from '../../bench/latency-split.js';

// 200 deliveries: 1 ms at the publisher, 2 in the broker, 3 after; two of them 40 ms late after the broker's seal.
const clocks = (): DeliveryClocks[] =>
  Array.from({ length: 200 }, (_, i) => {
    const start = 1_000 * i;
    const late = i === 17 || i === 150 ? 40 : 0;
    return { start, published: start + 1, sealed: start + 3, received: start + 6 + late };
  });

describe('latencySplit', () => {
  it('gives each segment its percentiles and lays the tail at the segment that caused it', () => {
    const s = latencySplit(clocks());
    expect(s?.segments.publisher.p50).toBe(1);
    expect(s?.segments.broker.p99).toBe(2);
    expect(s?.segments.after.p50).toBe(3);
    expect(s?.segments.after.max).toBe(43);
    // The p99 of 200 is the 199th value (46): the two late deliveries are the tail.
    expect(s?.tailCount).toBe(2);
    expect(s?.tailMeans).toEqual({ publisher: 1, broker: 2, after: 43 });
  });

  it('gives nothing for no deliveries', () => {
    expect(latencySplit([])).toBeUndefined();
  });
});
