// Redelivery backoff for deliveries a handler failed (or a key the client does not hold yet).
import { describe, expect, it } from 'vitest';
import { redeliveryDelay } from '../../src/sdk/client.js';

describe('redeliveryDelay', () => {
  it('doubles from one second and stops at five minutes', () => {
    expect([0, 1, 2, 3, 4].map(redeliveryDelay)).toEqual([1_000, 2_000, 4_000, 8_000, 16_000]);
    expect(redeliveryDelay(9)).toBe(5 * 60_000);
    expect(redeliveryDelay(1_000_000)).toBe(5 * 60_000);
    expect(redeliveryDelay(-3)).toBe(1_000);
  });
});
