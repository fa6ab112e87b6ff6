// The per-sender quarantine quota's token buckets (src/broker/quarantine-quota.ts), on an injected clock.
import { describe, expect, it } from 'vitest';
import { QuarantineQuota } from '../../src/broker/quarantine-quota.js';

function quota(settings: { maxBytes: number; maxMessages: number; windowMs: number }): {
  q: QuarantineQuota;
  advance: (ms: number) => void;
} {
  let now = 1_000_000;
  return { q: new QuarantineQuota(settings, () => now), advance: (ms) => (now += ms) };
}

describe('QuarantineQuota', () => {
  it('admits a window of inputs by count, then refuses, then refills over the window', () => {
    const { q, advance } = quota({ maxBytes: 1_000_000, maxMessages: 3, windowMs: 60_000 });
    expect([1, 2, 3, 4].map(() => q.take('a', 10))).toEqual([true, true, true, false]);
    advance(20_000); // one third of the window: one input
    expect([q.take('a', 10), q.take('a', 10)]).toEqual([true, false]);
    advance(10 * 60_000); // full again, never more than one window's allowance
    expect([1, 2, 3, 4].map(() => q.take('a', 10))).toEqual([true, true, true, false]);
  });

  it('admits a window of bytes, refuses an input that does not fit, and keeps each sender apart', () => {
    const { q } = quota({ maxBytes: 1000, maxMessages: 100, windowMs: 60_000 });
    expect(q.take('a', 600)).toBe(true);
    expect(q.take('a', 600)).toBe(false); // a refused input is not charged
    expect(q.take('a', 400)).toBe(true);
    expect(q.take('a', 1)).toBe(false);
    expect(q.take('b', 1000)).toBe(true);
    expect(q.take('c', 1001)).toBe(false); // larger than the quota: never kept whole
  });
});
