// The gateway's summaries of token requests refused by the rate limit (src/gateway/refusal-summary.ts): the first
// refusal per key, code and window stands alone, the rest are counted once, and every refusal is accounted for.
import { describe, expect, it } from 'vitest';
import { RefusalSummaries } from '../../src/gateway/refusal-summary.js';

describe('RefusalSummaries', () => {
  it('records the first refusal of a window alone and counts the rest into one summary at its end', () => {
    let clock = 1_000;
    const s = new RefusalSummaries(() => clock);
    const answers: string[] = [];
    for (let i = 0; i < 5; i += 1) {
      answers.push(s.refuse('client.payer.a1', 'E_RATE_LIMITED', '127.0.0.1', 60_000));
      clock += 1_000;
    }
    expect(answers).toEqual(['first', 'counted', 'counted', 'counted', 'counted']);
    expect(s.due()).toEqual([]);
    clock = 61_000;
    expect(s.due()).toEqual([
      {
        key: 'client.payer.a1',
        code: 'E_RATE_LIMITED',
        address: '127.0.0.1',
        first: 2_000,
        last: 5_000,
        count: 4,
      },
    ]);
    expect(s.due()).toEqual([]);
    // A refusal after the window opens the next one.
    expect(s.refuse('client.payer.a1', 'E_RATE_LIMITED', '127.0.0.1', 60_000)).toBe('first');
  });

  it('keeps keys and codes apart; a lone refusal leaves no summary', () => {
    let clock = 0;
    const s = new RefusalSummaries(() => clock);
    expect(s.refuse('address.x', 'E_RATE_LIMITED', '::1', 10_000)).toBe('first');
    expect(s.refuse('address.x', 'E_RATE_LIMIT_UNAVAILABLE', '::1', 10_000)).toBe('first');
    expect(s.refuse('address.y', 'E_RATE_LIMITED', '::2', 10_000)).toBe('first');
    expect(s.refuse('address.x', 'E_RATE_LIMIT_UNAVAILABLE', '::1', 10_000)).toBe('counted');
    clock = 10_000;
    expect(s.due().map((x) => [x.key, x.code, x.count])).toEqual([['address.x', 'E_RATE_LIMIT_UNAVAILABLE', 1]]);
  });

  it('a new window closes the ended one: its summary is still handed out', () => {
    let clock = 0;
    const s = new RefusalSummaries(() => clock);
    s.refuse('k', 'E_RATE_LIMITED', '::1', 1_000);
    s.refuse('k', 'E_RATE_LIMITED', '::1', 1_000);
    clock = 1_500;
    expect(s.refuse('k', 'E_RATE_LIMITED', '::1', 1_000)).toBe('first');
    expect(s.due().map((x) => x.count)).toEqual([1]);
  });

  it('accounts for every refusal when records fail: recounted and restored counts come back in a later summary', () => {
    let clock = 0;
    const s = new RefusalSummaries(() => clock);
    const answers: string[] = [];
    for (let i = 0; i < 7; i += 1) answers.push(s.refuse('k', 'E_RATE_LIMIT_UNAVAILABLE', '::1', 1_000));
    expect(answers.filter((a) => a === 'first').length).toBe(1);
    // The first refusal's own record failed: counted into the summary instead.
    s.recount('k', 'E_RATE_LIMIT_UNAVAILABLE', '::1', 1_000);
    clock = 1_000;
    const [summary] = s.due();
    expect(summary?.count).toBe(7);
    // The summary's record failed too: restored, it is due again at the next look, with the same count.
    if (summary !== undefined) s.restore(summary, 1_000);
    clock = 1_001;
    expect(s.due().map((x) => x.count)).toEqual([7]);
    // Restored into a window still open: the counts add up.
    expect(s.refuse('k', 'E_RATE_LIMIT_UNAVAILABLE', '::1', 1_000)).toBe('first');
    expect(s.refuse('k', 'E_RATE_LIMIT_UNAVAILABLE', '::1', 1_000)).toBe('counted');
    if (summary !== undefined) s.restore(summary, 1_000);
    clock = 2_001;
    expect(s.due().map((x) => [x.count, x.first, x.last])).toEqual([[8, 0, 1_001]]);
  });

  it('hands out every open window with a count at stop', () => {
    const s = new RefusalSummaries(() => 0);
    s.refuse('a', 'E_RATE_LIMITED', '::1', 60_000);
    s.refuse('a', 'E_RATE_LIMITED', '::1', 60_000);
    s.refuse('b', 'E_RATE_LIMITED', '::2', 60_000);
    expect(s.due()).toEqual([]);
    expect(s.due(true).map((x) => [x.key, x.count])).toEqual([['a', 1]]);
  });
});
