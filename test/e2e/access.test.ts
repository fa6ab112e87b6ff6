// Right of access (45 CFR 164.524) over a real nats-server: the broker asks every service the registry names
// (in the designated record set) over request/reply, each answers through the SDK handler signed and sealed to
// the broker, and the request completes with one Bundle holding every answer. A service that is down leaves the
// request partial, naming it, until a retry (explicit step, injected clock) reaches it; a service's own error is
// `failed`, and so is a forged answer (both asked again); the single extension and overdue listing follow the clock. No raw patient id reaches KV keys or
// values, the answer store, subjects, headers, message bytes or logs.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { AuditEvent, FhirResource } from 'fhir/r4.js';
import type { NatsConnection } from 'nats';
import { readAuditRecords } from '../../src/audit/read.js';
import { decodeRecord } from '../../src/audit/record.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SOURCE_PREFIX, loadBundle } from '../../src/access/desk/bundle.js';
import { AccessStore } from '../../src/access/desk/store.js';
import { AccessDesk } from '../../src/access/desk/desk.js';
import {
  ACCESS_DUE_MS,
  ACCESS_EXTENSION_MS,
  retryDelay,
  type AccessRequest,
} from '../../src/access/protocol/request.js';
import { accessKey, answerHash } from '../../src/access/desk/sealing.js';
import { BROKER_ID } from '../../src/wire/ids.js';
import { KV_BUCKETS, OBJECT_STORES, subjects } from '../../src/wire/names.js';
import { patientPseudonym } from '../../src/registry/pseudonym.js';
import type { PhiClient } from '../../src/sdk/client.js';
import { filesUnder, startTestStack, type TestStack } from '../helpers/stack.js';
import { ADMIN_IDENTITY, BROKER_IDENTITY } from '../../src/tls/identity.js';
import { fhirSchemaErrors } from '../helpers/fhir-schema.js';

/** Distinctive planted patient ids. */
const P1 = 'Zq7731Golf';
const P2 = 'Zq7731Hotel';
const P3 = 'Zq7731India';
/** Services in the designated record set that hold these patients (the registry names them; analytics and public-health are excluded). */
const HOLDERS = ['billing', 'ehr', 'notification', 'pharmacy', 'registration'];

let stack: TestStack;
let desk: AccessDesk;
let clock = Date.UTC(2026, 10, 1, 9, 0, 0);
let tap: NatsConnection;
const wire: { subject: string; headers: string; data: Buffer }[] = [];
const clients = new Map<string, PhiClient>();
const handles = new Map<string, { stop(): Promise<void> }>();
/** Each service's own records, by patient reference: what its handler answers. */
const records = new Map<string, Map<string, FhirResource[]>>();
const failing = new Set<string>();
/** How often each service's handler ran, per patient. */
const asked = new Map<string, number>();
let desk2: AccessDesk;
const P4 = 'Zq7731November';

function recordsOf(service: string, ref: string): FhirResource[] {
  return records.get(service)?.get(ref) ?? [];
}

async function serve(service: string): Promise<void> {
  const c = clients.get(service) ?? (await stack.client(service));
  clients.set(service, c);
  handles.set(
    service,
    await c.onAccessRequest((ref) => {
      asked.set(`${service}|${ref}`, (asked.get(`${service}|${ref}`) ?? 0) + 1);
      if (failing.has(service)) throw new Error(`${service} database unavailable`);
      return recordsOf(service, ref);
    }),
  );
}

function hold(service: string, ref: string, resources: FhirResource[]): void {
  const m = records.get(service) ?? new Map<string, FhirResource[]>();
  m.set(ref, resources);
  records.set(service, m);
}

async function publishPatient(id: string): Promise<void> {
  const registration = clients.get('registration') ?? (await stack.client('registration'));
  const ehr = clients.get('ehr') ?? (await stack.client('ehr'));
  const patient: FhirResource = { resourceType: 'Patient', id, name: [{ family: `Fam${id}` }] };
  const observation: FhirResource = {
    resourceType: 'Observation',
    id: `obs-${id}`,
    status: 'final',
    code: { text: 'pulse' },
    subject: { reference: `Patient/${id}` },
  };
  expect((await registration.publish(patient)).status).toBe('accepted');
  expect((await ehr.publish(observation)).status).toBe('accepted');
  const ref = `Patient/${id}`;
  hold('registration', ref, [patient]);
  hold('ehr', ref, [patient, observation]);
  hold('notification', ref, [
    { resourceType: 'Patient', id, telecom: [{ system: 'sms', value: `555-${id}` }] } as FhirResource,
  ]);
  hold('billing', ref, [{ resourceType: 'Patient', id, name: [{ family: `Fam${id}` }] } as FhirResource]);
  hold('pharmacy', ref, [
    { resourceType: 'Patient', id, telecom: [{ system: 'phone', value: `555-${id}` }] } as FhirResource,
  ]);
}

beforeAll(async () => {
  stack = await startTestStack();
  tap = await stack.connect('tap');
  tap.subscribe('>', {
    callback: (_e, m) =>
      wire.push({
        subject: m.subject,
        headers:
          m.headers === undefined
            ? ''
            : [...m.headers.keys()].map((k) => `${k}: ${m.headers?.values(k).join(',')}`).join('\n'),
        data: Buffer.from(m.data),
      }),
  });
  await tap.flush();
  for (const s of HOLDERS) clients.set(s, await stack.client(s));
  for (const s of HOLDERS) await serve(s);
  for (const id of [P1, P2, P3, P4]) await publishPatient(id);
  desk = await AccessDesk.start({
    nc: await stack.connectAs(BROKER_IDENTITY, 'desk'),
    catalog: stack.catalog,
    keys: stack.keys(BROKER_ID),
    peers: stack.peers,
    secrets: stack.secrets,
    logger: stack.logger,
    now: () => clock,
    retryIntervalMs: 0,
    answerTimeoutMs: 2_000,
    ...(stack.broker === undefined ? {} : { audit: stack.broker.auditTrail }),
  });
  // A second broker process's desk (its own connection), sharing the same state.
  desk2 = await AccessDesk.start({
    nc: await stack.connectAs(BROKER_IDENTITY, 'desk-2'),
    catalog: stack.catalog,
    keys: stack.keys(BROKER_ID),
    peers: stack.peers,
    secrets: stack.secrets,
    logger: stack.logger.child({ instance: 2 }),
    now: () => clock,
    retryIntervalMs: 0,
    answerTimeoutMs: 2_000,
  });
});

afterAll(async () => {
  await desk2?.stop();
  await desk?.stop();
  await stack?.stop();
});

let complete: AccessRequest;
let partial: AccessRequest;

describe('right of access', () => {
  it('asks every holding service and completes with one Bundle holding each answer', async () => {
    const r = await desk.create(`Patient/${P1}`);
    complete = r;
    expect(r.id).toMatch(/^ar-/);
    expect(r.patient).toBe(patientPseudonym(stack.secrets, `Patient/${P1}`));
    expect(r.receivedAt).toBe(clock);
    expect(r.dueAt).toBe(clock + ACCESS_DUE_MS);
    expect(r.status).toBe('complete');
    expect(Object.keys(r.services)).toEqual(HOLDERS);
    for (const s of HOLDERS) {
      const mine = recordsOf(s, `Patient/${P1}`);
      expect(r.services[s], s).toMatchObject({
        state: 'answered',
        attempts: 1,
        resources: mine.length,
        sha256: answerHash(JSON.stringify(mine)),
      });
    }
    expect(r.services['ehr']).toMatchObject({ types: { Patient: 1, Observation: 1 } });
    // Read as `access export` does: the operator's (admin) identity; the broker only writes answers.
    const bundle = await loadBundle(
      await AccessStore.open(await stack.connectAs(ADMIN_IDENTITY, 'exporter')),
      accessKey(stack.secrets),
      r,
      clock,
    );
    expect(bundle).toMatchObject({ resourceType: 'Bundle', type: 'collection', id: r.id });
    const expected = HOLDERS.flatMap((s) =>
      recordsOf(s, `Patient/${P1}`).map((res) => ({ ...res, meta: { source: `${SOURCE_PREFIX}${s}` } })),
    );
    expect(bundle.entry?.map((e) => e.resource)).toEqual(expected);
    expect(fhirSchemaErrors(bundle)).toEqual([]);
    // R4 bundle.html: every entry SHALL have a fullUrl; name-based, so distinct per service and resource.
    const urls = bundle.entry?.map((e) => e.fullUrl) ?? [];
    expect(urls.every((u) => typeof u === 'string' && /^urn:uuid:[0-9a-f-]{36}$/.test(u))).toBe(true);
    expect(new Set(urls).size).toBe(expected.length);
  });

  it('stays partial naming a service that is down, and completes once a retry reaches it', async () => {
    await handles.get('pharmacy')?.stop();
    const r = await desk.create(`Patient/${P2}`);
    expect(r.status).toBe('partial');
    // No responder (503); or, with this test's wiretap subscribed to '>', no answer in time (TIMEOUT).
    expect(r.services['pharmacy']).toEqual({
      state: 'pending',
      attempts: 1,
      nextAttemptAt: clock + retryDelay(1),
      code: expect.stringMatching(/^(503|TIMEOUT)$/) as unknown,
    });
    expect(
      Object.entries(r.services)
        .filter(([, s]) => s.state !== 'answered')
        .map(([n]) => n),
    ).toEqual(['pharmacy']);
    // Not due yet: the retry step asks nobody.
    expect(await desk.retryDue()).toEqual([]);
    clock += retryDelay(1);
    const stillDown = await desk.retryDue();
    expect(stillDown.map((x) => [x.id, x.status, x.services['pharmacy']?.attempts])).toEqual([[r.id, 'partial', 2]]);
    await serve('pharmacy');
    clock += retryDelay(2);
    const [done] = await desk.retryDue();
    expect(done).toMatchObject({
      id: r.id,
      status: 'complete',
      services: { pharmacy: { state: 'answered', attempts: 3, resources: 1 } },
    });
    // Every step is in the audit trail (45 CFR 164.312(b)): created, each answer, each miss — by request id and
    // patient pseudonym only.
    const nc = await stack.connectAs(ADMIN_IDENTITY, 'auditor');
    const events: AuditEvent[] = [];
    for await (const rec of readAuditRecords(nc)) events.push(...(decodeRecord(rec.data)?.events ?? []));
    const steps = events
      .filter((e) =>
        e.entity?.some(
          (x) => x.what?.identifier?.system === 'urn:phi-broker:access-request' && x.what.identifier.value === r.id,
        ),
      )
      .map((e) => [
        e.subtype?.[0]?.code,
        e.agent
          .slice(1)
          .map((a) => a.who?.identifier?.value)
          .join(','),
        e.outcome,
      ]);
    // created first; the services are asked in parallel, so their answers are compared as a set
    expect(steps[0]).toEqual(['created', HOLDERS.join(','), '0']);
    const expected = [
      ...HOLDERS.filter((h) => h !== 'pharmacy').map((h) => ['answered', h, '0']),
      ['unanswered', 'pharmacy', '4'],
      ['unanswered', 'pharmacy', '4'],
      ['answered', 'pharmacy', '0'],
    ];
    expect(
      steps
        .slice(1)
        .map((x) => x.join(' '))
        .sort(),
    ).toEqual(expected.map((x) => x.join(' ')).sort());
    const created = events.find(
      (e) => e.subtype?.[0]?.code === 'created' && e.entity?.some((x) => x.what?.identifier?.value === r.id),
    );
    expect(created?.entity?.[0]?.what?.identifier?.value).toBe(patientPseudonym(stack.secrets, `Patient/${P2}`));
    expect(JSON.stringify(events)).not.toContain(P2);
  });

  it('records a service whose handler fails as failed, and a forged answer as refused', async () => {
    failing.add('billing');
    await handles.get('ehr')?.stop();
    // An impostor answering on ehr's subject (NATS permissions should prevent it) with bytes the broker cannot verify.
    const impostor = await stack.connect('impostor');
    const sub = impostor.subscribe(subjects.access('ehr'), {
      callback: (_e, m) => m.respond(new TextEncoder().encode('{"resourceType":"Bundle"}')),
    });
    await impostor.flush();
    partial = await desk.create(`Patient/${P3}`);
    sub.unsubscribe();
    expect(partial.status).toBe('partial');
    expect(partial.services['billing']).toMatchObject({ state: 'failed', code: 'SERVICE_ERROR', attempts: 1 });
    // Bytes that are not ehr's answer say nothing about ehr: asked again (only an authentic bad answer is refused).
    expect(partial.services['ehr']).toMatchObject({ state: 'failed', code: 'E_ENVELOPE_INVALID', attempts: 1 });
    failing.delete('billing');
    await serve('ehr');
  });

  it('allows one extension with a written reason and refuses a second', async () => {
    await expect(desk.extend(partial.id, '')).rejects.toMatchObject({ code: 'E_ACCESS_EXTENDED', path: 'reason' });
    const extended = await desk.extend(partial.id, 'two systems are being migrated');
    expect(extended.dueAt).toBe(partial.receivedAt + ACCESS_DUE_MS + ACCESS_EXTENSION_MS);
    expect(extended.extension).toMatchObject({
      reason: 'two systems are being migrated',
      previousDueAt: partial.dueAt,
    });
    await expect(desk.extend(partial.id, 'again')).rejects.toMatchObject({
      code: 'E_ACCESS_EXTENDED',
      path: 'extension',
    });
    await expect(desk.extend(complete.id, 'late')).rejects.toMatchObject({ code: 'E_ACCESS_EXTENDED' });
    await expect(desk.extend('ar-00000000-0000-4000-8000-000000000000', 'x')).rejects.toMatchObject({
      code: 'E_ACCESS_UNKNOWN',
    });
  });

  it('lists a request past its due date that is not complete as overdue', async () => {
    expect(await desk.list(true)).toEqual([]);
    clock = partial.receivedAt + ACCESS_DUE_MS + 1; // past the original due date, within the extension
    expect(await desk.list(true)).toEqual([]);
    clock = partial.receivedAt + ACCESS_DUE_MS + ACCESS_EXTENSION_MS + 1;
    const overdue = await desk.list(true);
    expect(overdue.map((r) => r.id)).toEqual([partial.id]);
    expect((await desk.list(false)).length).toBe(3);
    // A retry then reaches the services that came back, and the request is no longer overdue.
    const [done] = await desk.retryDue();
    expect(done?.status).toBe('complete');
    expect(await desk.list(true)).toEqual([]);
  });

  it('two broker processes retrying at once make each attempt once (claimed by compare-and-set)', async () => {
    failing.add('notification');
    const r = await desk2.create(`Patient/${P4}`);
    expect(r.services['notification']).toMatchObject({ state: 'failed', attempts: 1 });
    failing.delete('notification');
    clock += retryDelay(1);
    const [a, b] = await Promise.all([desk.retryDue(), desk2.retryDue()]);
    expect([...a, ...b].some((x) => x.id === r.id)).toBe(true);
    expect(asked.get(`notification|Patient/${P4}`)).toBe(2); // the first attempt and one retry, not two
    expect((await desk.store.get(r.id)).status).toBe('complete');
    expect((await desk.store.get(r.id)).services['notification']).toMatchObject({ state: 'answered', attempts: 2 });
    for (const s of HOLDERS) expect(asked.get(`${s}|Patient/${P4}`), s).toBe(s === 'notification' ? 2 : 1);
  });

  it('no raw patient id in KV keys or values, the answer store, subjects, headers, message bytes or logs', async () => {
    const store = desk.store;
    const kvText: string[] = [];
    const keys: string[] = [];
    for await (const k of await store.kv.keys()) keys.push(k);
    for (const k of keys) kvText.push(k, new TextDecoder().decode((await store.kv.get(k))?.value));
    expect(kvText.length).toBe(8);
    const disk = filesUnder(join(stack.nats.dir, 'nats')).filter(
      (f) => f.includes(`KV_${KV_BUCKETS.access}`) || f.includes(`OBJ_${OBJECT_STORES.accessAnswers}`),
    );
    expect(disk.length).toBeGreaterThan(0);
    const diskText = disk.map((f) => readFileSync(f).toString('latin1')).join('\n');
    const wireText = wire.map((w) => `${w.subject}\n${w.headers}\n${w.data.toString('latin1')}`).join('\n');
    expect(wire.some((w) => w.subject === subjects.access('pharmacy'))).toBe(true);
    for (const id of [P1, P2, P3, P4, `Fam${P1}`, `555-${P1}`]) {
      expect(kvText.join('\n'), id).not.toContain(id);
      expect(diskText, id).not.toContain(id);
      expect(wireText, id).not.toContain(id);
      expect(stack.logs.text(), id).not.toContain(id);
    }
    expect(
      stack.logs.records().filter((r) => typeof r['event'] === 'string' && (r['event'] as string).startsWith('access.'))
        .length,
    ).toBeGreaterThan(10);
  });
});
