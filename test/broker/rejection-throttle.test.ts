// The per-sender rejection rate limit (src/broker/rejection-throttle.ts) on an injected clock: the bucket, the
// window summaries and their hand-over.
import { describe, expect, it } from 'vitest';
import { RejectionThrottle } from '../../src/broker/rejection-throttle.js';

function throttle(maxRejections = 3, windowMs = 60_000): { t: RejectionThrottle; clock: { now: number } } {
  const clock = { now: 1_000_000 };
  return { t: new RejectionThrottle({ maxRejections, windowMs }, () => clock.now), clock };
}

describe('RejectionThrottle', () => {
  it('admits the bucket, then refuses; senders have their own buckets', () => {
    const { t } = throttle(3);
    expect([1, 2, 3, 4, 5].map(() => t.admit('a'))).toEqual([true, true, true, false, false]);
    expect(t.admit('b')).toBe(true);
  });

  it('refills continuously over the window', () => {
    const { t, clock } = throttle(3, 60_000);
    for (let i = 0; i < 3; i++) t.admit('a');
    expect(t.admit('a')).toBe(false);
    clock.now += 19_999; // 0.99995 of a token
    expect(t.admit('a')).toBe(false);
    clock.now += 1;
    expect(t.admit('a')).toBe(true);
    expect(t.admit('a')).toBe(false);
    clock.now += 10 * 60_000; // never above the bucket
    expect([1, 2, 3, 4].map(() => t.admit('a'))).toEqual([true, true, true, false]);
  });

  it('counts into one summary per sender per window; only the first count of a window opens it', () => {
    const { t, clock } = throttle(1, 60_000);
    expect(t.count('a', 'E_NOT_FHIR', 10, 100)).toBe(true);
    expect(t.count('a', 'E_NOT_FHIR', 11, 100)).toBe(false);
    expect(t.count('a', 'E_VALUE_INVALID', 12, 50)).toBe(false);
    expect(t.count('b', 'E_NOT_FHIR', 13, 1)).toBe(true);
    expect(t.throttled).toBe(2);
    clock.now += 59_999;
    expect(t.due()).toEqual([]);
    clock.now += 1;
    const due = t.due();
    expect(due).toEqual([
      {
        sender: 'a',
        since: 1_000_000,
        until: 1_060_000,
        firstSeq: 10,
        count: 3,
        codes: { E_NOT_FHIR: 2, E_VALUE_INVALID: 1 },
        bytes: 250,
      },
      { sender: 'b', since: 1_000_000, until: 1_060_000, firstSeq: 13, count: 1, codes: { E_NOT_FHIR: 1 }, bytes: 1 },
    ]);
    expect(t.due()).toEqual([]);
    expect(t.throttled).toBe(0);
  });

  it('a count after the window ended closes it and opens the next (a new alert)', () => {
    const { t, clock } = throttle(1, 1000);
    t.count('a', 'E_NOT_FHIR', 1, 1);
    clock.now += 1000;
    expect(t.count('a', 'E_NOT_FHIR', 2, 1)).toBe(true);
    const due = t.due();
    expect(due.map((s) => [s.firstSeq, s.count])).toEqual([[1, 1]]);
    expect(t.due(true).map((s) => [s.firstSeq, s.count])).toEqual([[2, 1]]);
  });

  it('restore puts back a summary that could not be written, merged with what came since', () => {
    const { t, clock } = throttle(1, 1000);
    t.count('a', 'E_NOT_FHIR', 1, 10);
    clock.now += 1000;
    const [first] = t.due();
    t.count('a', 'E_JSON_MALFORMED', 5, 1);
    t.restore(first!);
    expect(t.due(true)).toEqual([
      {
        sender: 'a',
        since: 1_000_000,
        until: 1_001_000,
        firstSeq: 1,
        count: 2,
        codes: { E_NOT_FHIR: 1, E_JSON_MALFORMED: 1 },
        bytes: 11,
      },
    ]);
  });
});
