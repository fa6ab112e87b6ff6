// Readiness conditions (src/broker/health.ts): ready only when at least one condition is registered and every one
// holds; a condition keeps the time it last changed; listeners hear changes of `ok` only; names are checked.
import { describe, expect, it } from 'vitest';
import { Health } from '../../src/broker/health.js';

describe('Health', () => {
  it('is not ready with no condition, ready when all hold, not ready when any fails', () => {
    const h = new Health(() => 1000);
    expect(h.ready).toBe(false);
    h.setCondition('audit', true);
    h.setCondition('jetstream', true);
    expect(h.ready).toBe(true);
    h.setCondition('audit-integrity', false, 'chain head not witnessed');
    expect(h.ready).toBe(false);
    expect(h.report()).toEqual({
      ready: false,
      failing: ['audit-integrity'],
      conditions: {
        audit: { ok: true, sinceMs: 1000 },
        'audit-integrity': { ok: false, reason: 'chain head not witnessed', sinceMs: 1000 },
        jetstream: { ok: true, sinceMs: 1000 },
      },
    });
    h.setCondition('audit-integrity', true);
    expect(h.ready).toBe(true);
  });

  it('keeps the time of the last change of ok, updates the reason, and tells listeners of changes only', () => {
    let now = 1000;
    const h = new Health(() => now);
    const heard: string[] = [];
    const off = h.onChange((name, s) => heard.push(`${name}:${String(s.ok)}:${s.reason ?? ''}`));
    h.setCondition('audit', false, 'PHI_AUDIT does not exist');
    now = 2000;
    h.setCondition('audit', false, 'E_AUDIT_CHAIN');
    expect(h.condition('audit')).toEqual({ ok: false, reason: 'E_AUDIT_CHAIN', sinceMs: 1000 });
    now = 3000;
    h.setCondition('audit', true);
    expect(h.condition('audit')).toEqual({ ok: true, sinceMs: 3000 });
    off();
    h.setCondition('audit', false, 'again');
    expect(heard).toEqual(['audit:false:PHI_AUDIT does not exist', 'audit:true:']);
  });

  it('refuses a condition name that is not lower-case letters, digits and hyphens', () => {
    const h = new Health();
    expect(() => h.setCondition('Audit', true)).toThrow(TypeError);
    expect(() => h.setCondition('a b', true)).toThrow(TypeError);
    expect(() => h.setCondition('', true)).toThrow(TypeError);
  });
});
