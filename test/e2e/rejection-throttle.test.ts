// The per-sender rejection rate limit over a real nats-server and broker (docs/broker.md "Storage limits"): a burst of
// bad messages from one sender gets a coded receipt for each; the quarantine holds the bucket's worth of records plus
// one summary; the audit trail holds one AuditEvent per rejection handled in full and one summary; the alert fires
// once; another sender is unaffected.
import type { AuditEvent } from 'fhir/r4.js';
import type { JetStreamManager, NatsConnection } from 'nats';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeRecord } from '../../src/audit/record.js';
import { decodeRecordHeader, type QuarantineRecord } from '../../src/broker/quarantine.js';
import type { PhiClient } from '../../src/sdk/client.js';
import { HEADERS, STREAMS } from '../../src/wire/names.js';
import { fhirSchemaErrors } from '../helpers/fhir-schema.js';
import { startTestStack, type TestStack } from '../helpers/stack.js';

const BUCKET = 3;
const BURST = 12;
/** Rejected as E_NOT_FHIR (no resourceType); the name must never surface anywhere. */
const BAD = { family: 'Zephyrine', note: 'not a resource' };

let stack: TestStack;
let tap: NatsConnection;
let jsm: JetStreamManager;
let registration: PhiClient;
let ehr: PhiClient;
const alerts: string[] = [];

beforeAll(async () => {
  stack = await startTestStack({
    config: {
      rejectionSenderMaxMessages: BUCKET,
      // An hour's window: the bucket refills by one token every 20 minutes, never within this test.
      rejectionSenderWindowMs: 60 * 60_000,
    },
  });
  tap = await stack.connect('tap');
  tap.subscribe('phi.alert.sender-throttled', { callback: (_e, m) => alerts.push(m.subject) });
  await tap.flush();
  jsm = await tap.jetstreamManager();
  registration = await stack.client('registration');
  ehr = await stack.client('ehr');
});

afterAll(async () => {
  await stack?.stop();
});

async function quarantined(subject: string): Promise<QuarantineRecord[]> {
  const { state } = await jsm.streams.info(STREAMS.quarantine);
  const out: QuarantineRecord[] = [];
  for (let seq = state.first_seq; seq <= state.last_seq && seq > 0; seq++) {
    const m = await jsm.streams.getMessage(STREAMS.quarantine, { seq });
    if (m.subject === subject) out.push(decodeRecordHeader(m.header.get(HEADERS.record)));
  }
  return out;
}

async function auditEvents(): Promise<AuditEvent[]> {
  const { state } = await jsm.streams.info(STREAMS.audit);
  const out: AuditEvent[] = [];
  for (let seq = state.first_seq; seq <= state.last_seq && seq > 0; seq++) {
    const m = await jsm.streams.getMessage(STREAMS.audit, { seq });
    out.push(...(decodeRecord(m.data)?.events ?? []));
  }
  return out;
}

const rejectedBy = (events: AuditEvent[], service: string, code: string): AuditEvent[] =>
  events.filter(
    (e) =>
      e.outcomeDesc?.startsWith(code) === true &&
      e.agent.some((a) => a.who?.identifier?.value === service || a.who?.display === service),
  );

describe('per-sender rejection rate limit', () => {
  it('a burst: every message answered with a code, the quarantine and trail bounded, one alert, others unaffected', async () => {
    const answers: { code: string; message: string }[] = [];
    for (let i = 0; i < BURST; i++) {
      const r = await registration.publish(BAD);
      if (r.status !== 'rejected') throw new Error(`message ${i} was ${r.status}`);
      answers.push({ code: r.code, message: r.message });
    }
    // The bucket's worth handled in full, every later one throttled; each throttled receipt names the cause.
    expect(answers.map((a) => a.code)).toEqual([
      ...Array<string>(BUCKET).fill('E_NOT_FHIR'),
      ...Array<string>(BURST - BUCKET).fill('E_SENDER_THROTTLED'),
    ]);
    for (const a of answers.slice(BUCKET)) expect(a.message).toContain('rejected with E_NOT_FHIR');
    expect(JSON.stringify(answers)).not.toContain('Zephyrine');

    // Another sender is unaffected: its own bucket, its input quarantined whole.
    const other = await ehr.publish(BAD);
    expect(other).toMatchObject({ status: 'rejected', code: 'E_NOT_FHIR' });

    await stack.logs.until(
      (r) => r['event'] === 'audit.alert' && r['rule'] === 'sender-throttled' && r['service'] === 'registration',
      'the sender-throttled alert log line',
    );
    await tap.flush();
    expect(alerts).toEqual(['phi.alert.sender-throttled']);

    // While the window is open: only the bucket's records.
    const before = await quarantined('phi.quarantine.registration');
    expect(before.map((r) => [r.code, r.parts > 0])).toEqual(Array(BUCKET).fill(['E_NOT_FHIR', true]));

    // Stopping the broker closes the open window: one summary record and one AuditEvent.
    await stack.broker!.stop();
    stack.broker = undefined;
    const records = await quarantined('phi.quarantine.registration');
    expect(records).toHaveLength(BUCKET + 1);
    const summary = records[BUCKET]!;
    expect(summary).toMatchObject({
      code: 'E_SENDER_THROTTLED',
      sender: 'registration',
      parts: 0,
      count: BURST - BUCKET,
      codes: { E_NOT_FHIR: BURST - BUCKET },
    });
    expect(summary.message).toContain(`${BURST - BUCKET} rejections refused`);
    expect((await quarantined('phi.quarantine.ehr')).map((r) => r.code)).toEqual(['E_NOT_FHIR']);

    const events = await auditEvents();
    expect(rejectedBy(events, 'registration', 'E_NOT_FHIR')).toHaveLength(BUCKET);
    const summaries = rejectedBy(events, 'registration', 'E_SENDER_THROTTLED');
    expect(summaries.map((e) => e.outcomeDesc)).toEqual([
      `E_SENDER_THROTTLED: ${BURST - BUCKET} rejections refused (E_NOT_FHIR × ${BURST - BUCKET})`,
    ]);
    const alertEvents = events.filter((e) => e.subtype?.some((s) => s.code === 'sender-throttled'));
    expect(alertEvents).toHaveLength(1);
    for (const e of [...summaries, ...alertEvents]) expect(fhirSchemaErrors(e)).toEqual([]);
    expect(JSON.stringify(events)).not.toContain('Zephyrine');
  });
});
