// Audit before disclosure, readiness and metrics, over a real nats-server (mTLS, one server for the file):
//  - normal flow: every delivery (and receipt) is stored after the audit record of its acceptance; /metrics parses
//    as Prometheus text and its counters match the counted flow (5 accepted, 2 rejected by code, deliveries per
//    subscriber, one timing per stage a message went through);
//  - PHI_AUDIT deleted as the admin identity (as an operator did): publishes are delivered to nobody, /readyz
//    answers 503 naming the audit condition, the audit-unavailable alert goes out; once provisioning recreates
//    PHI_AUDIT the broker recovers by itself and delivers each held message exactly once, its AuditEvent first.
import { AckPolicy, DeliverPolicy, nanos, type NatsConnection } from 'nats';
import parsePrometheusTextFormat, { type ParsedFamily } from 'parse-prometheus-text-format';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeRecord } from '../../src/audit/record.js';
import { provisionStreams } from '../../src/runtime/provision.js';
import type { Delivered } from '../../src/sdk/delivery.js';
import { ADMIN_IDENTITY } from '../../src/tls/identity.js';
import { HEADERS, STREAMS } from '../../src/wire/names.js';
import { startTestStack, Waiter, type TestStack } from '../helpers/stack.js';

const PATIENT_SUBSCRIBERS = ['billing', 'ehr', 'notification', 'pharmacy', 'public-health'];
const patient = (n: number): Record<string, unknown> => ({
  resourceType: 'Patient',
  id: `pat-af-${n}`,
  name: [{ family: `Orderly${n}`, given: ['Auditia'] }],
  birthDate: '1980-02-03',
});

interface StoredMessage {
  readonly seq: number;
  readonly subject: string;
  readonly data: Uint8Array;
  readonly msgId: string | undefined;
  /** When JetStream stored it (ns since epoch, the server's clock). */
  readonly storedNs: bigint;
}

/** Every message of `stream` in order, with its store time (an ephemeral consumer, no acks). */
async function readStream(nc: NatsConnection, stream: string): Promise<StoredMessage[]> {
  const jsm = await nc.jetstreamManager();
  const { state } = await jsm.streams.info(stream);
  if (state.messages === 0) return [];
  const info = await jsm.consumers.add(stream, {
    ack_policy: AckPolicy.None,
    deliver_policy: DeliverPolicy.All,
    inactive_threshold: nanos(30_000),
  });
  const out: StoredMessage[] = [];
  try {
    const consumer = await nc.jetstream().consumers.get(stream, info.name);
    for (let round = 0; round < 100 && (out.at(-1)?.seq ?? 0) < state.last_seq; round++) {
      const batch = await consumer.fetch({ max_messages: 256, expires: 2_000 });
      let got = 0;
      for await (const m of batch) {
        got += 1;
        out.push({
          seq: m.seq,
          subject: m.subject,
          data: m.data,
          msgId: m.headers?.get(HEADERS.msgId) || undefined,
          storedNs: BigInt(m.info.timestampNanos),
        });
        if (m.seq >= state.last_seq) break;
      }
      if (got === 0) break;
    }
  } finally {
    await jsm.consumers.delete(stream, info.name).catch(() => undefined);
  }
  return out;
}

/** The audit record (stored message) holding the `accepted` AuditEvent of message `id`. */
function acceptanceRecord(records: readonly StoredMessage[], id: string): StoredMessage | undefined {
  return records.find((r) =>
    decodeRecord(r.data)?.events?.some(
      (e) =>
        e.subtype?.[0]?.code === 'create' &&
        e.outcome === '0' &&
        e.entity?.some((x) => x.what?.identifier?.value === id),
    ),
  );
}

let stack: TestStack;
let inspector: NatsConnection;
let base: string;
/** Message ids each subscriber's SDK handler was given, in order. */
const received = new Map<string, string[]>();
const arrived = new Waiter();

beforeAll(async () => {
  stack = await startTestStack({ config: { healthPort: 0, healthCheckMs: 200 } });
  inspector = await stack.connect('inspector');
  base = `http://127.0.0.1:${String(stack.broker?.healthPort)}`;
  for (const service of PATIENT_SUBSCRIBERS) {
    const client = await stack.client(service);
    received.set(service, []);
    await client.subscribe('Patient', (d: Delivered) => {
      received.get(service)?.push(d.provenance.messageId);
      arrived.signal();
    });
  }
});

afterAll(async () => {
  await inspector?.close();
  await stack?.stop();
});

async function metrics(): Promise<ParsedFamily[]> {
  const res = await fetch(`${base}/metrics`);
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
  return parsePrometheusTextFormat(await res.text());
}

function family(all: readonly ParsedFamily[], name: string): ParsedFamily {
  const f = all.find((x) => x.name === name);
  if (f === undefined) throw new Error(`metric ${name} not exposed`);
  return f;
}

/** Sample values by the given label's value (`''` for a sample without labels). */
function byLabel(all: readonly ParsedFamily[], name: string, label?: string): Record<string, number> {
  return Object.fromEntries(
    family(all, name).metrics.map((m) => [label === undefined ? '' : (m.labels?.[label] ?? ''), Number(m.value)]),
  );
}

const acceptedIds: string[] = [];

describe('normal flow', () => {
  beforeAll(async () => {
    const registration = await stack.client('registration');
    for (let n = 1; n <= 5; n++) {
      const r = await registration.publish(patient(n));
      expect(r.status).toBe('accepted');
      acceptedIds.push(r.id);
    }
    const bad = await registration.publish({ ...patient(6), name: [{ family: 'Orderly6', nickname: 'O' }] });
    expect(bad).toMatchObject({ status: 'rejected', code: 'E_UNKNOWN_ELEMENT' });
    // Not an envelope at all, straight onto the ingest subject (no receipt: it claims no id).
    await inspector.jetstream().publish('phi.ingest.registration.Patient', new TextEncoder().encode('not json'));
    await stack.logs.until(
      (l) => l['event'] === 'ingest.rejected' && l['code'] !== 'E_UNKNOWN_ELEMENT',
      'the rejection of the garbage input',
    );
    await arrived.until(
      () => PATIENT_SUBSCRIBERS.every((s) => received.get(s)?.length === 5),
      20_000,
      'five deliveries to each Patient subscriber',
    );
  });

  it('stores every delivery and receipt after the audit record of its acceptance', async () => {
    const audit = await readStream(inspector, STREAMS.audit);
    const deliveries = await readStream(inspector, STREAMS.deliver);
    const receipts = await readStream(inspector, STREAMS.receipts);
    for (const id of acceptedIds) {
      const record = acceptanceRecord(audit, id);
      expect(record, `audit record of ${id}`).toBeDefined();
      const mine = deliveries.filter((d) => d.msgId?.startsWith(`${id}.`));
      expect(mine.map((d) => d.msgId?.slice(id.length + 1)).sort()).toEqual(PATIENT_SUBSCRIBERS);
      for (const d of mine) expect(d.storedNs).toBeGreaterThan(record?.storedNs ?? 0n);
      const receipt = receipts.find((r) => (JSON.parse(new TextDecoder().decode(r.data)) as { id: string }).id === id);
      expect(receipt?.storedNs).toBeGreaterThan(record?.storedNs ?? 0n);
    }
  });

  it('serves /healthz and /readyz (200, every condition named and holding)', async () => {
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
    const ready = await fetch(`${base}/readyz`);
    const body = (await ready.json()) as {
      status: string;
      failing: string[];
      conditions: Record<string, { ok: boolean }>;
    };
    expect(ready.status).toBe(200);
    expect(body.status).toBe('ready');
    expect(body.failing).toEqual([]);
    expect(Object.keys(body.conditions).sort()).toEqual(['audit', 'consuming', 'jetstream', 'streams']);
    expect((await fetch(`${base}/nope`)).status).toBe(404);
    expect((await fetch(`${base}/readyz`, { method: 'POST' })).status).toBe(405);
  });

  it('/metrics parses as Prometheus text and counts the flow', async () => {
    const m = await metrics();
    expect(byLabel(m, 'phi_broker_accepted_total')).toEqual({ '': 5 });
    expect(byLabel(m, 'phi_broker_rejected_total', 'code')).toEqual({ E_UNKNOWN_ELEMENT: 1, E_JSON_MALFORMED: 1 });
    expect(byLabel(m, 'phi_broker_deliveries_total', 'subscriber')).toEqual(
      Object.fromEntries(PATIENT_SUBSCRIBERS.map((s) => [s, 5])),
    );
    // broker-start, 5 acceptances, 2 rejections: one append each, none failed.
    expect(byLabel(m, 'phi_broker_audit_appends_total', 'outcome')).toEqual({ ok: 8 });
    expect(byLabel(m, 'phi_broker_ready')).toEqual({ '': 1 });
    expect(byLabel(m, 'phi_broker_audit_writable')).toEqual({ '': 1 });
    expect(byLabel(m, 'phi_broker_inflight')).toEqual({ '': 0 });
    expect(Object.keys(byLabel(m, 'phi_broker_ingest_pending', 'state')).sort()).toEqual(['unacknowledged', 'waiting']);
    expect(family(m, 'phi_broker_stage_seconds').type).toBe('HISTOGRAM');
    // The text parser merges a histogram's labelled series; prom-client's own registry reads them apart.
    const histogram = await stack.broker?.metrics.stage.get();
    const counts = Object.fromEntries(
      (histogram?.values ?? [])
        .filter((v) => v.metricName === 'phi_broker_stage_seconds_count')
        .map((v) => [v.labels['stage'], v.value]),
    );
    // queued, verify: all 7; validate and the replay claim: the 6 envelopes that verified; the rest: the 5 accepted
    // (+ 2 rejections and the start for the audit).
    expect(counts).toEqual({
      queued: 7,
      verify: 7,
      validate: 6,
      replay_claim: 6,
      project_seal: 5,
      audit_append: 8,
      publish_deliveries: 5,
      registry: 5,
      receipt: 5,
    });
  });
});

describe('PHI_AUDIT deleted', () => {
  let admin: NatsConnection;
  /** Published while PHI_AUDIT is gone. */
  let held: string[] = [];
  const alerts: string[] = [];
  let deliveredBefore = 0;

  beforeAll(async () => {
    admin = await stack.connectAs(ADMIN_IDENTITY, 'admin');
    const sub = inspector.subscribe('phi.alert.audit-unavailable', {
      callback: (_err, msg) => alerts.push(msg.string()),
    });
    await inspector.flush();
    deliveredBefore = (await (await inspector.jetstreamManager()).streams.info(STREAMS.deliver)).state.messages;
    const logsBefore = stack.logs.lines.length;
    await (await admin.jetstreamManager()).streams.delete(STREAMS.audit);
    await stack.logs.until(
      (l) => l['event'] === 'broker.condition' && l['condition'] === 'audit' && l['ok'] === false,
      'the audit condition to fail',
    );
    const registration = await stack.client('registration', { publishDeadlineMs: 500 });
    const results = await Promise.all([7, 8, 9].map((n) => registration.publish(patient(n))));
    // Stored in PHI_INGEST, no receipt: the broker decides nothing without its audit trail.
    expect(results.map((r) => r.status)).toEqual(['stored', 'stored', 'stored']);
    held = results.map((r) => r.id);
    // Each held (and retried) at least twice after the publish: they had every chance to go out.
    await stack.logs.waiter.until(
      () =>
        stack.logs
          .records()
          .slice(logsBefore)
          .filter((l) => l['event'] === 'ingest.held').length >=
        2 * held.length,
      20_000,
      'the messages held twice each',
    );
    sub.unsubscribe();
  });

  afterAll(async () => {
    await admin?.close();
  });

  it('delivers nothing, answers 503 on /readyz naming the audit condition, and raises the alert', async () => {
    const info = await (await inspector.jetstreamManager()).streams.info(STREAMS.deliver);
    expect(info.state.messages).toBe(deliveredBefore);
    for (const s of PATIENT_SUBSCRIBERS) for (const id of held) expect(received.get(s)).not.toContain(id);
    const ready = await fetch(`${base}/readyz`);
    expect(ready.status).toBe(503);
    const body = (await ready.json()) as {
      failing: string[];
      conditions: Record<string, { ok: boolean; reason?: string }>;
    };
    expect(body.failing).toEqual(['audit']);
    expect(body.conditions['audit']?.reason).toContain(STREAMS.audit);
    const records = stack.logs.records();
    expect(records.filter((l) => l['event'] === 'broker.audit.unavailable')).toHaveLength(1);
    expect(records.some((l) => l['event'] === 'audit.alert' && l['rule'] === 'audit-unavailable')).toBe(true);
    expect(alerts).toHaveLength(1);
    expect(JSON.parse(alerts[0] as string)).toMatchObject({ resourceType: 'AuditEvent', outcome: '4' });
    const m = await metrics();
    expect(byLabel(m, 'phi_broker_ready')).toEqual({ '': 0 });
    expect(byLabel(m, 'phi_broker_audit_writable')).toEqual({ '': 0 });
    expect(byLabel(m, 'phi_broker_alerts_total', 'rule')).toEqual({ 'audit-unavailable': 1 });
    expect(byLabel(m, 'phi_broker_retries_total', 'reason')['E_AUDIT_CHAIN']).toBeGreaterThanOrEqual(2 * held.length);
    expect(byLabel(m, 'phi_broker_accepted_total')).toEqual({ '': 5 });
  });

  it('recovers once provisioning recreates PHI_AUDIT: each held message goes out exactly once, its AuditEvent first', async () => {
    await provisionStreams(admin, stack.config);
    await stack.logs.until((l) => l['event'] === 'broker.audit.recovered', 'the audit trail to come back');
    for (const id of held)
      await stack.logs.until((l) => l['event'] === 'ingest.accepted' && l['id'] === id, `held message ${id} accepted`);
    await arrived.until(
      () => PATIENT_SUBSCRIBERS.every((s) => held.every((id) => received.get(s)?.includes(id))),
      20_000,
      'the held messages at every subscriber',
    );
    for (const s of PATIENT_SUBSCRIBERS)
      for (const id of held) expect(received.get(s)?.filter((x) => x === id)).toHaveLength(1);
    const stored = await readStream(inspector, STREAMS.deliver);
    expect(stored).toHaveLength(deliveredBefore + held.length * PATIENT_SUBSCRIBERS.length);
    // The recreated PHI_AUDIT: the outage's alert event first, then each acceptance, before any of its deliveries.
    const audit = await readStream(inspector, STREAMS.audit);
    expect(decodeRecord((audit[0] as StoredMessage).data)?.seq).toBeGreaterThan(1); // the chain goes on where it was
    const outage = audit.find((r) => decodeRecord(r.data)?.events?.[0]?.subtype?.[0]?.code === 'audit-unavailable');
    expect(outage).toBeDefined();
    for (const id of held) {
      const record = acceptanceRecord(audit, id);
      expect(record, `audit record of ${id}`).toBeDefined();
      expect(outage?.seq).toBeLessThan(record?.seq ?? 0);
      const deliveries = stored.filter((d) => d.msgId?.startsWith(`${id}.`));
      expect(deliveries).toHaveLength(PATIENT_SUBSCRIBERS.length);
      for (const d of deliveries) expect(d.storedNs).toBeGreaterThan(record?.storedNs ?? 0n);
    }
    expect((await fetch(`${base}/readyz`)).status).toBe(200);
    const m = await metrics();
    expect(byLabel(m, 'phi_broker_accepted_total')).toEqual({ '': 5 + held.length });
    expect(byLabel(m, 'phi_broker_audit_writable')).toEqual({ '': 1 });
  });
});
