// RecentIds (src/sdk/dedupe.ts): the subscriber's bounded memory of handled delivery ids.
import { describe, expect, it } from 'vitest';
import { RecentIds } from '../../src/sdk/dedupe.js';

describe('RecentIds', () => {
  it('remembers what was added', () => {
    const ids = new RecentIds(3);
    expect(ids.has('a')).toBe(false);
    ids.add('a');
    expect(ids.has('a')).toBe(true);
    expect(ids.size).toBe(1);
  });

  it('evicts the oldest once over capacity, keeping exactly capacity ids', () => {
    const ids = new RecentIds(3);
    for (const id of ['a', 'b', 'c', 'd']) ids.add(id);
    expect(ids.size).toBe(3);
    expect(['a', 'b', 'c', 'd'].map((id) => ids.has(id))).toEqual([false, true, true, true]);
    ids.add('e');
    expect(['b', 'c', 'd', 'e'].map((id) => ids.has(id))).toEqual([false, true, true, true]);
  });

  it('adding an id it holds neither grows it nor evicts anything', () => {
    const ids = new RecentIds(2);
    ids.add('a');
    ids.add('b');
    ids.add('a');
    expect(ids.size).toBe(2);
    expect([ids.has('a'), ids.has('b')]).toEqual([true, true]);
  });

  it('capacity 1 holds only the latest id', () => {
    const ids = new RecentIds(1);
    ids.add('a');
    ids.add('b');
    expect([ids.has('a'), ids.has('b'), ids.size]).toEqual([false, true, 1]);
  });

  it('defaults to 100 000 ids', () => {
    const ids = new RecentIds();
    for (let i = 0; i <= 100_000; i++) ids.add(`id-${i}`);
    expect(ids.size).toBe(100_000);
    expect(ids.has('id-0')).toBe(false);
    expect(ids.has('id-1')).toBe(true);
  });

  it.each([0, -1, 1.5, Number.NaN])('refuses capacity %s with TypeError', (capacity) => {
    expect(() => new RecentIds(capacity)).toThrow(TypeError);
  });
});
