// Alert rules over the audit facts (45 CFR 164.308(a)(1)(ii)(D) information system activity review, and
// 164.308(a)(6) security incident procedures: suspicious activity is surfaced as it happens, not only found
// later in the trail). A pure state machine with an injected clock; the trail feeds it every stored fact and
// turns what it returns into an AuditEvent (DCM 110113 Security Alert), a core NATS message on
// `phi.alert.<rule>` and a pino warning. Rules:
//   rejections        N rejected messages from one sender within a window
//   auth-failures     N authentication / authorisation failures (signature, sender, key, permission, replay)
//                     from one claimed identity within a window
//   volume            a subscriber's deliveries in a window far above its own baseline (an EWMA of its past
//                     windows), once that baseline has been learned
//   off-hours         deliveries outside configured hours (off unless hours are configured)
//   quarantine-spike  N quarantined inputs (from anyone) within a window
//   security-incidents N clients refused by nats-server (permission violations, refused TLS handshakes, failed
//                     authentication; src/audit/incidents.ts) from one identity, or one address, within a window
//   quarantine-quota  a sender went over its quarantine quota (a rejection answered E_QUARANTINE_QUOTA)
//   sender-throttled  a sender went over its rejection rate (raised by the broker once per sender per window,
//                     src/broker/broker.ts, not by a fact)
//   key-revoked       a key of the directory was revoked (raised by the broker's directory watch)
//   key-destroyed     the private half of a key version was destroyed (`keys prune`; likewise)
//   key-directory-refused a key directory entry failed its signature or rollback check (likewise)
//   audit-unavailable the broker cannot append to its audit trail, so it delivers nothing (raised by the broker,
//                     src/broker/broker.ts, not by a fact; recorded in the chain once the trail is writable again)
// After a rule fires for an identity it stays quiet for `cooldownMs`, so a burst raises one alert, not one per
// message.
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { BrokerError } from '../wire/errors.js';
import type { AuditFact } from './facts.js';

const window = z.strictObject({ threshold: z.number().int().min(1), windowMs: z.number().int().min(1000) });

export const alertRulesSchema = z.strictObject({
  rejections: window.default({ threshold: 20, windowMs: 60_000 }),
  authFailures: window.default({ threshold: 5, windowMs: 60_000 }),
  volume: z
    .strictObject({
      windowMs: z.number().int().min(1000),
      /** Fire when a window's deliveries exceed factor × baseline … */
      factor: z.number().min(1),
      /** … and at least this many (a quiet subscriber's 3 → 40 is not an incident). */
      minCount: z.number().int().min(1),
      /** Windows observed before the baseline is trusted. */
      learnWindows: z.number().int().min(1),
    })
    .default({ windowMs: 5 * 60_000, factor: 10, minCount: 100, learnWindows: 12 }),
  /** Deliveries are expected from `startHour` to `endHour` (0-24, in UTC + utcOffsetMinutes). Unset: rule off. */
  offHours: z
    .strictObject({
      startHour: z.number().int().min(0).max(23),
      endHour: z.number().int().min(1).max(24),
      utcOffsetMinutes: z.number().int().min(-840).max(840).default(0),
    })
    .optional(),
  quarantineSpike: window.default({ threshold: 50, windowMs: 5 * 60_000 }),
  securityIncidents: window.default({ threshold: 10, windowMs: 60_000 }),
  cooldownMs: z
    .number()
    .int()
    .min(0)
    .default(5 * 60_000),
});

export type AlertRules = z.output<typeof alertRulesSchema>;
export type AlertRulesInput = z.input<typeof alertRulesSchema>;

export const DEFAULT_ALERT_RULES: AlertRules = alertRulesSchema.parse({});

export const ALERT_RULE_NAMES = [
  'rejections',
  'auth-failures',
  'volume',
  'off-hours',
  'quarantine-spike',
  'security-incidents',
  'quarantine-quota',
  // Raised by the audit trail's own periodic check (integrity.ts), not by a rule over facts.
  'audit-integrity',
  'audit-unavailable',
  // Raised by the broker once per sender per window of its rejection rate limit.
  'sender-throttled',
  // Raised by the broker's key directory watch (docs/keys.md).
  'key-revoked',
  'key-destroyed',
  'key-directory-refused',
] as const;
export type AlertRuleName = (typeof ALERT_RULE_NAMES)[number];

export interface Alert {
  readonly rule: AlertRuleName;
  readonly service?: string;
  /** What was counted against what threshold: counts and durations only. */
  readonly detail: string;
}

/** Codes that mean the sender could not be authenticated or was not authorised (docs/errors.md). */
const AUTH_CODES: ReadonlySet<string> = new Set([
  'E_SIGNATURE',
  'E_SENDER_MISMATCH',
  'E_KEY_UNKNOWN',
  'E_KEY_REVOKED',
  'E_NOT_AUTHORIZED',
  'E_REPLAY',
]);
const EWMA_ALPHA = 0.3;

interface Counted {
  readonly at: number;
  readonly n: number;
}

interface VolumeState {
  windowStart: number;
  count: number;
  baseline: number;
  windows: number;
}

export class AlertMonitor {
  private readonly events = new Map<string, Counted[]>();
  private readonly lastFired = new Map<string, number>();
  private readonly volume = new Map<string, VolumeState>();

  constructor(
    private readonly rules: AlertRules,
    private readonly now: () => number,
  ) {}

  /** The alerts these facts raise (none for alert facts themselves). */
  observe(facts: readonly AuditFact[]): Alert[] {
    const at = this.now();
    const out: Alert[] = [];
    const fire = (alert: Alert): void => {
      const key = `${alert.rule}|${alert.service ?? ''}`;
      const last = this.lastFired.get(key);
      if (last !== undefined && at - last < this.rules.cooldownMs) return;
      this.lastFired.set(key, at);
      out.push(alert);
    };
    for (const f of facts) {
      switch (f.kind) {
        case 'rejected': {
          const who = f.sender?.service ?? '_unknown';
          const r = this.rules.rejections;
          const n = this.count(`rejections|${who}`, at, r.windowMs);
          if (n >= r.threshold)
            fire({
              rule: 'rejections',
              service: who,
              detail: `${n} rejected messages within ${r.windowMs} ms (threshold ${r.threshold})`,
            });
          if (f.code === 'E_QUARANTINE_QUOTA')
            fire({
              rule: 'quarantine-quota',
              service: who,
              detail: 'over its quarantine quota: further rejected inputs are kept as records only',
            });
          if (AUTH_CODES.has(f.code)) {
            const a = this.rules.authFailures;
            const m = this.count(`auth|${who}`, at, a.windowMs);
            if (m >= a.threshold)
              fire({
                rule: 'auth-failures',
                service: who,
                detail: `${m} authentication or authorisation failures within ${a.windowMs} ms (threshold ${a.threshold})`,
              });
          }
          break;
        }
        case 'quarantined': {
          const q = this.rules.quarantineSpike;
          const n = this.count('quarantine', at, q.windowMs);
          if (n >= q.threshold)
            fire({
              rule: 'quarantine-spike',
              detail: `${n} inputs quarantined within ${q.windowMs} ms (threshold ${q.threshold})`,
            });
          break;
        }
        case 'security-incident': {
          // One fact stands for `count` refused lines: the rule counts the lines.
          const r = this.rules.securityIncidents;
          const who = f.identity ?? (f.manyClients === true ? '*' : `@${f.address}`);
          const n = this.count(`security|${who}`, at, r.windowMs, f.count);
          if (n >= r.threshold)
            fire({
              rule: 'security-incidents',
              ...(f.identity === undefined ? {} : { service: f.identity }),
              detail: `${n} clients refused by nats-server within ${r.windowMs} ms (threshold ${r.threshold}) from ${f.identity ?? (f.manyClients === true ? 'many clients' : `an unauthenticated client at ${f.address}`)}`,
            });
          break;
        }
        case 'delivered': {
          const service = f.recipient.service;
          const v = this.observeVolume(service, at);
          if (v !== undefined) fire({ rule: 'volume', service, detail: v });
          const hours = this.rules.offHours;
          if (hours !== undefined && !withinHours(at, hours.startHour, hours.endHour, hours.utcOffsetMinutes)) {
            fire({
              rule: 'off-hours',
              service,
              detail: `a delivery outside ${hours.startHour}:00-${hours.endHour}:00 (UTC${hours.utcOffsetMinutes >= 0 ? '+' : '-'}${Math.abs(hours.utcOffsetMinutes)} min)`,
            });
          }
          break;
        }
        default:
          break;
      }
    }
    return out;
  }

  /** Adds `weight` events at `at` under `key` and returns how many fall within the last `windowMs`. */
  private count(key: string, at: number, windowMs: number, weight = 1): number {
    const list = this.events.get(key) ?? [];
    list.push({ at, n: weight });
    let drop = 0;
    while (drop < list.length && (list[drop] as Counted).at <= at - windowMs) drop += 1;
    if (drop > 0) list.splice(0, drop);
    this.events.set(key, list);
    let total = 0;
    for (const e of list) total += e.n;
    return total;
  }

  /** Counts a delivery in the recipient's current window; a detail string when the window is far above baseline. */
  private observeVolume(service: string, at: number): string | undefined {
    const r = this.rules.volume;
    let s = this.volume.get(service);
    if (s === undefined) {
      s = { windowStart: at, count: 0, baseline: 0, windows: 0 };
      this.volume.set(service, s);
    }
    // Close every window that has ended (idle windows count as zero, up to what the baseline can still feel).
    const ended = Math.floor((at - s.windowStart) / r.windowMs);
    for (let i = 0; i < Math.min(ended, r.learnWindows + 20); i++) {
      s.baseline = s.windows === 0 ? s.count : EWMA_ALPHA * (i === 0 ? s.count : 0) + (1 - EWMA_ALPHA) * s.baseline;
      s.windows += 1;
    }
    if (ended > 0) {
      s.windowStart += ended * r.windowMs;
      s.count = 0;
    }
    s.count += 1;
    if (s.windows < r.learnWindows || s.count < r.minCount) return undefined;
    const limit = Math.max(s.baseline, 1) * r.factor;
    return s.count > limit
      ? `${s.count} deliveries within ${r.windowMs} ms, over ${r.factor} × its baseline of ${s.baseline.toFixed(1)}`
      : undefined;
  }
}

function withinHours(at: number, start: number, end: number, offsetMinutes: number): boolean {
  const local = new Date(at + offsetMinutes * 60_000);
  const hour = local.getUTCHours();
  return start <= end ? hour >= start && hour < end : hour >= start || hour < end;
}

/** The rules in effect: the defaults, overridden rule by rule from a JSON file (config `alertRulesFile`). */
export function loadAlertRules(file: string | undefined): AlertRules {
  if (file === undefined) return DEFAULT_ALERT_RULES;
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(file, 'utf8'));
  } catch {
    throw new BrokerError('E_CONFIG_INVALID', `${file}: not a readable JSON file of alert rules`);
  }
  const parsed = alertRulesSchema.safeParse(json);
  if (!parsed.success) {
    throw new BrokerError(
      'E_CONFIG_INVALID',
      `${file}: ${parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')}`,
    );
  }
  return parsed.data;
}
