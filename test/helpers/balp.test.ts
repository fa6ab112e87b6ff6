// The BALP rule checker (balp.ts) finds each rule it names broken: so test/audit/balp.int.test.ts can fail.
import type { AuditEvent } from 'fhir/r4.js';
import { describe, expect, it } from 'vitest';
import { buildAuditEvent, type EventContext } from '../../src/audit/event.js';
import type { AuditFact } from '../../src/audit/facts.js';
import { balpProblems } from './balp.js';

const ctx: EventContext = { instanceId: 'b-1', host: 'broker-host', now: () => 0, newId: () => 'id-1' };
const subject = {
  messageId: 'm-1',
  resourceType: 'Observation',
  resourcePseudonym: 'r'.repeat(43),
  patientPseudonym: 'p'.repeat(43),
};
const accepted = buildAuditEvent({ kind: 'accepted', sender: { service: 'ehr' }, subject, ingestSeq: 1 }, ctx);
const delivered = buildAuditEvent(
  {
    kind: 'delivered',
    sender: { service: 'ehr' },
    recipient: { service: 'billing' },
    subject,
    profileUrl: 'urn:p',
    purpose: 'HPAYMT',
    elements: ['status'],
    deliveryId: 'm-1.billing',
  },
  ctx,
);
const operator = buildAuditEvent(
  {
    kind: 'operator-action',
    action: 'consent-add',
    operator: 'dana',
    server: '127.0.0.1',
    patientPseudonym: 'p'.repeat(43),
    object: { kind: 'consent', id: '6f1c0d3e-2b4a-4c5d-8e9f-0a1b2c3d4e5f' },
  } satisfies AuditFact,
  ctx,
);

describe('balpProblems', () => {
  it('passes the builder’s accepted, delivered and operator events', () => {
    expect(accepted.meta?.profile?.[0]).toMatch(/IHE\.BasicAudit\.PatientCreate$/);
    expect(delivered.meta?.profile?.[0]).toMatch(/IHE\.BasicAudit\.PrivacyDisclosure\.Source$/);
    expect(operator.meta?.profile?.[0]).toMatch(/IHE\.BasicAudit\.PatientCreate$/);
    expect([accepted, delivered, operator].flatMap(balpProblems)).toEqual([]);
  });

  const broken: [string, AuditEvent, RegExp][] = [
    [
      'val-audit-source',
      { ...accepted, source: { ...accepted.source, observer: { display: 'someone else' } } },
      /^val-audit-source/,
    ],
    [
      'a bare patient identifier',
      {
        ...accepted,
        entity: accepted.entity?.map((x) =>
          x.role?.code === '1' ? { ...x, what: { identifier: x.what?.identifier ?? {} } } : x,
        ),
      },
      /^entity\[patient\]\.what/,
    ],
    [
      'a user with a network address',
      { ...operator, agent: operator.agent.map((a) => ({ ...a, network: { address: 'h', type: '1' as const } })) },
      /^agent\[user\]\.network/,
    ],
    ['a failed create claiming Create', { ...accepted, outcome: '4' }, /outcome: 4, fixed to 0/],
    [
      'a server without network',
      { ...accepted, agent: accepted.agent.map(({ network: _n, ...a }) => a) },
      /agent\[client\]\.network: missing/,
    ],
    ['a disclosure without its subtype', { ...delivered, subtype: [] }, /^subtype\[disclosure\]/],
    ['an unknown profile', { ...accepted, meta: { profile: ['urn:other'] } }, /^meta\.profile/],
  ];
  it.each(broken)('finds %s', (_name, event, rule) => {
    expect(balpProblems(event).some((p) => rule.test(p) || rule.test(p.replace(/^\S+ /, '')))).toBe(true);
  });
});
