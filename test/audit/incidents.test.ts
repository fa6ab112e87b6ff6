// Security incidents from nats-server's log: lines aggregated per kind and client per interval (src/audit/incidents.ts)
// with counts that sum to the lines, subjects outside the catalog's grammar replaced, each aggregate a DCM Security
// Alert AuditEvent valid against the FHIR R4 JSON schema, and the security-incidents alert rule counting lines.
// Real captured lines (test/nats/fixtures/) go through the parser first; the clock is injected.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { AlertMonitor, DEFAULT_ALERT_RULES } from '../../src/audit/alerts.js';
import { buildAuditEvent } from '../../src/audit/event.js';
import { IncidentWindows } from '../../src/audit/incidents.js';
import { parseSecurityLogLine, type SecurityLogEvent } from '../../src/nats/server-log.js';
import { NOT_A_PHI_BROKER_SUBJECT, subjectGrammar } from '../../src/wire/names.js';
import { fhirSchemaErrors } from '../helpers/fhir-schema.js';

const T0 = Date.UTC(2026, 5, 1, 12, 0, 0);
const events = readFileSync(new URL('../nats/fixtures/nats-server-2.9.10-security.log', import.meta.url), 'utf8')
  .split('\n')
  .map(parseSecurityLogLine)
  .filter((e): e is SecurityLogEvent => typeof e === 'object');
const grammar = subjectGrammar({
  services: new Set(['registration', 'notification']),
  types: new Set(['Patient']),
  instances: new Set(['b-1']),
  alertRules: new Set(),
});

function windows(intervalMs = 10_000): { w: IncidentWindows; clock: { now: number } } {
  const clock = { now: T0 };
  return { w: new IncidentWindows({ intervalMs, isPhiBrokerSubject: grammar, now: () => clock.now }), clock };
}

describe('IncidentWindows', () => {
  it('the captured lines: one aggregate per kind and client once the interval has passed, counts summing to the lines', () => {
    const { w, clock } = windows();
    for (const e of events) w.add(e);
    expect(w.close()).toEqual([]); // the interval has not passed
    expect(w.pending).toBe(7);
    clock.now += 10_000;
    const facts = w.close();
    expect(w.pending).toBe(0);
    const at = new Date(T0).toISOString();
    const times = { firstSeen: at, lastSeen: at };
    expect(facts).toEqual([
      {
        kind: 'security-incident',
        incident: 'publish-violation',
        identity: 'notification',
        address: '127.0.0.1',
        count: 2,
        ...times,
        // The planted subject (not the catalog's grammar) is never kept.
        subjects: [NOT_A_PHI_BROKER_SUBJECT, 'phi.ingest.registration.Patient'],
      },
      {
        kind: 'security-incident',
        incident: 'subscription-violation',
        identity: 'notification',
        address: '127.0.0.1',
        count: 1,
        ...times,
        subjects: ['phi.deliver.registration.Patient'],
      },
      {
        kind: 'security-incident',
        incident: 'tls-handshake',
        address: '127.0.0.1',
        count: 3,
        ...times,
        refusals: ['handshake-failed', 'no-certificate', 'unknown-authority'],
      },
      { kind: 'security-incident', incident: 'authentication', address: '127.0.0.1', count: 1, ...times },
    ]);
    expect(JSON.stringify(facts)).not.toContain('Zephyrine');
  });

  it('a burst of 50 violations over 25 s: one aggregate per 10 s window, counts summing to 50, at most five subjects listed', () => {
    const { w, clock } = windows();
    const facts = [];
    for (let i = 0; i < 50; i++) {
      w.add({
        kind: 'publish-violation',
        address: '127.0.0.1',
        identity: 'notification',
        subject: i % 2 === 0 ? 'phi.ingest.registration.Patient' : `Planted-${i}`,
      });
      clock.now += 500;
      facts.push(...w.close());
    }
    facts.push(...w.close(true));
    expect(facts.map((f) => f.count)).toEqual([20, 20, 10]);
    expect(facts.every((f) => f.subjects?.length === 2)).toBe(true); // the grammar's subject and the placeholder
    expect(JSON.stringify(facts)).not.toContain('Planted');
  });

  it('lists at most five distinct subjects and counts the rest', () => {
    const { w } = windows();
    const types = ['Patient', 'Observation', 'Encounter', 'Condition', 'Procedure', 'Immunization', 'Goal'];
    const wide = subjectGrammar({
      services: new Set(['lab']),
      types: new Set(types),
      instances: new Set(),
      alertRules: new Set(),
    });
    const clock = { now: T0 };
    const ww = new IncidentWindows({ intervalMs: 1000, isPhiBrokerSubject: wide, now: () => clock.now });
    for (const t of types)
      ww.add({ kind: 'subscription-violation', address: '10.0.0.1', identity: 'lab', subject: `phi.deliver.lab.${t}` });
    const [fact] = ww.close(true);
    expect(fact?.subjects).toHaveLength(5);
    expect(fact?.moreSubjects).toBe(2);
    expect(fact?.count).toBe(7);
    expect(w.close(true)).toEqual([]);
  });

  it('past the open-window cap, further clients share one window per kind, marked manyClients; counts still sum', () => {
    const clock = { now: T0 };
    const w = new IncidentWindows({
      intervalMs: 1000,
      isPhiBrokerSubject: grammar,
      now: () => clock.now,
      maxWindows: 3,
    });
    for (let i = 1; i <= 10; i++) w.add({ kind: 'tls-handshake', address: `10.0.0.${i}`, refusal: 'no-certificate' });
    const facts = w.close(true);
    expect(facts.map((f) => [f.address, f.count, f.manyClients])).toEqual([
      ['10.0.0.1', 1, undefined],
      ['10.0.0.2', 1, undefined],
      ['10.0.0.3', 1, undefined],
      ['10.0.0.10', 7, true],
    ]);
    const ctx = { instanceId: 'b-1', now: () => T0, newId: () => 'ev-2' };
    const event = buildAuditEvent(facts[3] as (typeof facts)[number], ctx);
    expect(event.agent[0]?.who?.display).toBe('many clients');
    expect(fhirSchemaErrors(event)).toEqual([]);
  });
});

describe('a security incident as an AuditEvent', () => {
  it('DCM 110113 Security Alert / 110132 Use of Restricted Function, outcome 4, the service as requestor, nats-server, the subjects and the count; valid R4 JSON', () => {
    const { w } = windows();
    for (const e of events) w.add(e);
    const ctx = { instanceId: 'b-1', host: 'h', now: () => T0, newId: () => 'ev-1' };
    const built = w.close(true).map((f) => buildAuditEvent(f, ctx));
    for (const e of built) expect(fhirSchemaErrors(e)).toEqual([]);
    const [pub, , tls, auth] = built;
    expect(pub).toMatchObject({
      resourceType: 'AuditEvent',
      type: { system: 'http://dicom.nema.org/resources/ontology/DCM', code: '110113' },
      subtype: [
        {
          system: 'http://dicom.nema.org/resources/ontology/DCM',
          code: '110132',
          display: 'Use of Restricted Function',
        },
        { system: 'urn:phi-broker:security-incident', code: 'publish-violation' },
      ],
      action: 'E',
      outcome: '4',
      outcomeDesc: 'publish-violation: 2 refused by nats-server',
      agent: [
        {
          who: { identifier: { system: 'urn:phi-broker:service', value: 'notification' } },
          requestor: true,
          network: { address: '127.0.0.1', type: '2' },
        },
        { who: { identifier: { system: 'urn:phi-broker:component', value: 'nats-server' } }, requestor: false },
        // The broker that recorded it (BALP val-audit-source: its who is source.observer).
        { who: { identifier: { system: 'urn:phi-broker:instance', value: 'b-1' } }, requestor: false },
      ],
      source: { observer: { identifier: { system: 'urn:phi-broker:instance', value: 'b-1' } } },
      entity: [
        { name: NOT_A_PHI_BROKER_SUBJECT, detail: [{ type: 'operation', valueString: 'publish' }] },
        { name: 'phi.ingest.registration.Patient', detail: [{ type: 'operation', valueString: 'publish' }] },
        { detail: [{ type: 'count', valueString: '2' }, { type: 'first-seen' }, { type: 'last-seen' }] },
      ],
    });
    expect(tls?.subtype?.[0]?.code).toBe('110126'); // Node Authentication
    expect(tls?.agent[0]).toMatchObject({ who: { display: 'unauthenticated client' }, requestor: true });
    expect(tls?.entity?.[0]?.detail?.filter((d) => d.type === 'tls-refusal').map((d) => d.valueString)).toEqual([
      'handshake-failed',
      'no-certificate',
      'unknown-authority',
    ]);
    expect(auth?.subtype?.map((c) => c.code)).toEqual(['110126', 'authentication']);
  });
});

describe('the security-incidents alert rule', () => {
  it('counts the lines an aggregate stands for, per identity: 10 within a minute fire once (cooldown)', () => {
    const clock = { now: T0 };
    const m = new AlertMonitor(DEFAULT_ALERT_RULES, () => clock.now);
    const fact = (count: number, identity?: string) =>
      ({
        kind: 'security-incident',
        incident: 'publish-violation',
        ...(identity === undefined ? {} : { identity }),
        address: '10.0.0.5',
        count,
        firstSeen: '',
        lastSeen: '',
      }) as const;
    expect(m.observe([fact(9, 'lab')])).toEqual([]);
    expect(m.observe([fact(9)])).toEqual([]); // another client (by address): counted apart
    expect(m.observe([fact(1, 'lab')])).toEqual([
      {
        rule: 'security-incidents',
        service: 'lab',
        detail: '10 clients refused by nats-server within 60000 ms (threshold 10) from lab',
      },
    ]);
    expect(m.observe([fact(50, 'lab')])).toEqual([]); // cooldown
    clock.now += 61_000;
    expect(m.observe([fact(1)])).toEqual([]); // the address's 9 have left the window
    expect(m.observe([fact(12)])).toEqual([
      {
        rule: 'security-incidents',
        detail:
          '13 clients refused by nats-server within 60000 ms (threshold 10) from an unauthenticated client at 10.0.0.5',
      },
    ]);
  });
});
