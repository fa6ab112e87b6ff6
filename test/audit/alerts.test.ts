// AlertMonitor: each rule fires on a crafted burst and stays quiet on normal traffic; time is an injected clock.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  AlertMonitor,
  DEFAULT_ALERT_RULES,
  alertRulesSchema,
  loadAlertRules,
  type AlertRules,
} from '../../src/audit/alerts.js';
import type { AuditFact } from '../../src/audit/facts.js';

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const T0 = Date.UTC(2026, 5, 1, 12, 0, 0); // noon UTC

function monitor(rules: AlertRules = DEFAULT_ALERT_RULES): { m: AlertMonitor; clock: { now: number } } {
  const clock = { now: T0 };
  return { m: new AlertMonitor(rules, () => clock.now), clock };
}

const rejected = (service: string, code = 'E_FHIR_INVALID'): AuditFact => ({
  kind: 'rejected',
  sender: { service },
  code,
  ingestSeq: 1,
});
const quarantined = (): AuditFact => ({ kind: 'quarantined', recordId: 'q-1', code: 'E_FHIR_INVALID', ingestSeq: 1 });
const delivered = (service: string): AuditFact => ({
  kind: 'delivered',
  sender: { service: 'registration' },
  recipient: { service },
  subject: { messageId: 'm', resourceType: 'Patient' },
  profileUrl: 'p',
  purpose: 'TREAT',
  elements: [],
  deliveryId: `m.${service}`,
});

/** Feeds `n` facts spaced `everyMs` apart; returns every alert raised. */
function feed(
  m: AlertMonitor,
  clock: { now: number },
  n: number,
  everyMs: number,
  fact: () => AuditFact,
): ReturnType<AlertMonitor['observe']> {
  const out = [];
  for (let i = 0; i < n; i++) {
    out.push(...m.observe([fact()]));
    clock.now += everyMs;
  }
  return out;
}

describe('rejections', () => {
  it('fires once for 20 rejections from one sender within a minute', () => {
    const { m, clock } = monitor();
    const alerts = feed(m, clock, 25, SECOND, () => rejected('registration'));
    expect(alerts).toEqual([
      { rule: 'rejections', service: 'registration', detail: '20 rejected messages within 60000 ms (threshold 20)' },
    ]);
  });

  it('stays quiet for the same number spread out over time, or spread over senders', () => {
    const { m, clock } = monitor();
    expect(feed(m, clock, 100, 4 * SECOND, () => rejected('registration'))).toEqual([]);
    let i = 0;
    expect(feed(m, clock, 40, 100, () => rejected(['a', 'b', 'c'][i++ % 3] as string))).toEqual([]);
  });
});

describe('auth-failures', () => {
  it('fires for 5 signature failures claimed by one identity within a minute', () => {
    const { m, clock } = monitor();
    const alerts = feed(m, clock, 5, SECOND, () => rejected('billing', 'E_SIGNATURE'));
    expect(alerts).toEqual([
      {
        rule: 'auth-failures',
        service: 'billing',
        detail: '5 authentication or authorisation failures within 60000 ms (threshold 5)',
      },
    ]);
  });

  it('does not count validation failures, nor sparse authentication failures', () => {
    const { m, clock } = monitor();
    expect(feed(m, clock, 10, SECOND, () => rejected('billing', 'E_FHIR_INVALID'))).toEqual([]);
    expect(feed(m, clock, 10, 20 * SECOND, () => rejected('billing', 'E_NOT_AUTHORIZED'))).toEqual([]);
  });

  it('fires again after the cooldown when the burst goes on', () => {
    const { m, clock } = monitor();
    const alerts = feed(m, clock, 12 * 60, SECOND, () => rejected('billing', 'E_KEY_UNKNOWN'));
    expect(alerts.filter((a) => a.rule === 'auth-failures').length).toBe(3); // at 4 s, then after each 5-minute cooldown
  });
});

describe('quarantine-spike', () => {
  it('fires for 50 quarantined inputs within five minutes, not for a steady trickle', () => {
    const quiet = monitor();
    expect(feed(quiet.m, quiet.clock, 200, 10 * SECOND, quarantined)).toEqual([]);
    const { m, clock } = monitor();
    expect(feed(m, clock, 60, SECOND, quarantined)).toEqual([
      { rule: 'quarantine-spike', detail: '50 inputs quarantined within 300000 ms (threshold 50)' },
    ]);
  });
});

describe('quarantine-quota', () => {
  it('fires for a sender over its quarantine quota once per cooldown, per sender, and not for other codes', () => {
    const { m, clock } = monitor();
    expect(feed(m, clock, 5, SECOND, () => rejected('billing'))).toEqual([]);
    const alerts = feed(m, clock, 10 * 60, SECOND, () => rejected('billing', 'E_QUARANTINE_QUOTA'));
    expect(alerts.filter((a) => a.rule === 'quarantine-quota')).toEqual([
      {
        rule: 'quarantine-quota',
        service: 'billing',
        detail: 'over its quarantine quota: further rejected inputs are kept as records only',
      },
      {
        rule: 'quarantine-quota',
        service: 'billing',
        detail: 'over its quarantine quota: further rejected inputs are kept as records only',
      },
    ]); // at once, then after the 5-minute cooldown
    expect(m.observe([rejected('ehr', 'E_QUARANTINE_QUOTA')]).map((a) => a.service)).toEqual(['ehr']);
  });
});

describe('volume', () => {
  const rules = alertRulesSchema.parse({ volume: { windowMs: MINUTE, factor: 10, minCount: 100, learnWindows: 5 } });

  it('fires when a subscriber takes far more than its own baseline in a window', () => {
    const { m, clock } = monitor(rules);
    // Six quiet minutes: 20 deliveries a minute teach the baseline.
    expect(feed(m, clock, 6 * 20, 3 * SECOND, () => delivered('billing'))).toEqual([]);
    // Then 400 in one minute: more than 10 × 20.
    const alerts = feed(m, clock, 400, 100, () => delivered('billing'));
    expect(alerts).toHaveLength(1);
    expect(alerts[0]).toMatchObject({
      rule: 'volume',
      service: 'billing',
      detail: expect.stringMatching(/^201 deliveries within 60000 ms, over 10 × its baseline of 20\.0$/) as unknown,
    });
  });

  it('stays quiet on steady traffic, while learning, and for another subscriber with a higher baseline', () => {
    const { m, clock } = monitor(rules);
    expect(feed(m, clock, 30 * 20, 3 * SECOND, () => delivered('billing'))).toEqual([]);
    const fresh = monitor(rules);
    // A burst before the baseline is learned is not judged.
    expect(feed(fresh.m, fresh.clock, 400, 100, () => delivered('ehr'))).toEqual([]);
    const busy = monitor(rules);
    expect(feed(busy.m, busy.clock, 6 * 500, 120, () => delivered('ehr'))).toEqual([]);
  });
});

describe('off-hours', () => {
  const rules = alertRulesSchema.parse({ offHours: { startHour: 7, endHour: 19 } });

  it('is off by default', () => {
    const { m, clock } = monitor();
    clock.now = Date.UTC(2026, 5, 1, 3, 0, 0);
    expect(m.observe([delivered('billing')])).toEqual([]);
  });

  it('fires for a delivery at 03:00 when deliveries are expected 07-19, not at noon', () => {
    const { m, clock } = monitor(rules);
    expect(feed(m, clock, 50, MINUTE, () => delivered('billing'))).toEqual([]);
    clock.now = Date.UTC(2026, 5, 2, 3, 0, 0);
    expect(m.observe([delivered('billing')])).toEqual([
      { rule: 'off-hours', service: 'billing', detail: 'a delivery outside 7:00-19:00 (UTC+0 min)' },
    ]);
  });

  it('honours the UTC offset (12:00 UTC is 02:00 at UTC-10)', () => {
    const { m } = monitor(alertRulesSchema.parse({ offHours: { startHour: 7, endHour: 19, utcOffsetMinutes: -600 } }));
    expect(m.observe([delivered('billing')]).map((a) => a.rule)).toEqual(['off-hours']);
  });
});

describe('loadAlertRules', () => {
  it('overrides the defaults rule by rule from a JSON file, and refuses a bad one naming the path', () => {
    const dir = mkdtempSync(join(tmpdir(), 'phi-alerts-'));
    const good = join(dir, 'good.json');
    writeFileSync(good, JSON.stringify({ authFailures: { threshold: 2, windowMs: 10_000 } }));
    expect(loadAlertRules(good)).toEqual({ ...DEFAULT_ALERT_RULES, authFailures: { threshold: 2, windowMs: 10_000 } });
    const bad = join(dir, 'bad.json');
    writeFileSync(bad, JSON.stringify({ rejections: { threshold: 0, windowMs: 10_000 } }));
    expect(() => loadAlertRules(bad)).toThrow(
      expect.objectContaining({
        code: 'E_CONFIG_INVALID',
        message: expect.stringContaining('rejections.threshold') as unknown,
      }),
    );
    expect(loadAlertRules(undefined)).toBe(DEFAULT_ALERT_RULES);
  });
});
