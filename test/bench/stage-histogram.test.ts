import { Histogram, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { mergeSnapshots, quantile, snapshotOf, stagesBetween } from '../../bench/stage-histogram.js';

const BUCKETS = [0.001, 0.005, 0.01, 0.05];

function histogram(): Histogram<'stage'> {
  return new Histogram({
    name: 'phi_broker_stage_seconds',
    help: 'h',
    labelNames: ['stage'],
    buckets: BUCKETS,
    registers: [new Registry()],
  });
}

describe('stage histogram over a window', () => {
  it('takes only what was observed between the two snapshots, with Prometheus-style quantiles', async () => {
    const h = histogram();
    for (let i = 0; i < 50; i++) h.observe({ stage: 'audit_append' }, 0.04); // before the window
    const a = snapshotOf(await h.get());
    for (let i = 0; i < 99; i++) h.observe({ stage: 'audit_append' }, 0.002);
    h.observe({ stage: 'audit_append' }, 0.03);
    for (let i = 0; i < 10; i++) h.observe({ stage: 'receipt' }, 0.0005);
    const b = snapshotOf(await h.get());
    const s = stagesBetween(a, b);
    expect(s['audit_append']?.count).toBe(100);
    expect(s['audit_append']?.meanMs).toBeCloseTo((99 * 2 + 30) / 100, 6);
    // 99 in (1, 5] ms: the median at rank 50 interpolates to 1 + 4 × 50/99 ms; the p99 (rank 99) is that bucket's top.
    expect(s['audit_append']?.p50Ms).toBeCloseTo(1 + (4 * 50) / 99, 6);
    expect(s['audit_append']?.p99Ms).toBeCloseTo(5, 6);
    expect(s['receipt']).toMatchObject({ count: 10, p99Ms: 0.99 });
  });

  it('merges brokers by adding their buckets, and has no quantile of nothing', async () => {
    const [h1, h2] = [histogram(), histogram()];
    h1.observe({ stage: 'queued' }, 0.0005);
    h2.observe({ stage: 'queued' }, 0.02);
    const merged = mergeSnapshots([snapshotOf(await h1.get()), snapshotOf(await h2.get())]);
    expect(stagesBetween({}, merged)['queued']).toMatchObject({ count: 2, meanMs: 10.25 });
    expect(quantile(0.5, [0.001, Infinity], [0, 0])).toBeNaN();
  });
});
