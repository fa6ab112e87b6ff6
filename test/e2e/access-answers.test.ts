// Right-of-access answers over a real nats-server with a small max_payload (64 KiB): a service's answer of several
// MB travels in signed parts the broker fetches one by one, and the exported Bundle holds every resource; a part
// altered, reordered or missing is detected (the service recorded `failed` with a stable code) and a retry
// recovers. An answer holding a resource about another patient is refused whole (`refused`, E_ACCESS_OTHER_PATIENT
// naming the entry, never a value), audited, kept out of the Bundle, and the request stays `partial` naming that service;
// resources about no patient (Organization, Practitioner) are kept.
import type { AuditEvent, FhirResource } from 'fhir/r4.js';
import type { Msg, NatsConnection, Subscription } from 'nats';
import { headers as natsHeaders } from 'nats';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SOURCE_PREFIX, loadBundle } from '../../src/access/desk/bundle.js';
import { AccessDesk } from '../../src/access/desk/desk.js';
import {
  PART_HEADROOM,
  newPartsToken,
  parsePartRequest,
  splitAnswer,
  type AnswerPart,
} from '../../src/access/protocol/parts.js';
import { openQuestion, sealAnswerEnvelope } from '../../src/access/protocol/holder-exchange.js';
import { retryDelay } from '../../src/access/protocol/request.js';
import { accessKey } from '../../src/access/desk/sealing.js';
import { readAuditRecords } from '../../src/audit/read.js';
import { decodeRecord } from '../../src/audit/record.js';
import { BROKER_ID } from '../../src/wire/ids.js';
import { Keyring } from '../../src/crypto/keyring.js';
import { HEADERS, subjects } from '../../src/wire/names.js';
import type { FhirResource as JsonResource } from '../../src/fhir/resource.js';
import type { PhiClient } from '../../src/sdk/client.js';
import { startTestStack, type TestStack } from '../helpers/stack.js';

const MAX_PAYLOAD = 64 * 1024;
/** Planted values: patient ids and a text in every large resource. */
const P1 = 'Zq7731Romeo';
const P2 = 'Zq7731Sierra';
const P3 = 'Zq7731Tango';
const PLANTED = 'Zq7731Uniform';
const HOLDERS = ['billing', 'ehr', 'notification', 'pharmacy', 'registration'];

let stack: TestStack;
let desk: AccessDesk;
let clock = Date.UTC(2026, 10, 2, 9, 0, 0);
const clients = new Map<string, PhiClient>();
const handles = new Map<string, { stop(): Promise<void> }>();
const records = new Map<string, FhirResource[]>();

const key = (service: string, ref: string): string => `${service}|${ref}`;

/** `n` Observations of about 2 KB each about `ref`: a designated record set far larger than one message. */
function manyObservations(ref: string, n: number): FhirResource[] {
  return Array.from(
    { length: n },
    (_, i) =>
      ({
        resourceType: 'Observation',
        id: `big-${i}`,
        status: 'final',
        code: { text: `${PLANTED} ${'note '.repeat(400)}` },
        subject: { reference: ref },
      }) as FhirResource,
  );
}

async function serve(service: string): Promise<void> {
  const c = clients.get(service) as PhiClient;
  handles.set(service, await c.onAccessRequest((ref) => records.get(key(service, ref)) ?? []));
}

async function publishPatient(id: string): Promise<void> {
  const ref = `Patient/${id}`;
  const patient: FhirResource = { resourceType: 'Patient', id, name: [{ family: `Fam${id}` }] };
  const observation: FhirResource = {
    resourceType: 'Observation',
    id: `obs-${id}`,
    status: 'final',
    code: { text: 'pulse' },
    subject: { reference: ref },
  };
  expect((await clients.get('registration')?.publish(patient))?.status).toBe('accepted');
  expect((await clients.get('ehr')?.publish(observation))?.status).toBe('accepted');
  for (const s of HOLDERS) records.set(key(s, ref), [patient]);
  records.set(key('ehr', ref), [patient, observation]);
}

/**
 * Answers `service`'s questions in its place with its keys (as a faulty or compromised instance of it would): a
 * large answer whose parts `tamper` may change before they are served.
 */
async function faultyService(
  service: string,
  resources: (ref: string) => FhirResource[],
  tamper: (parts: AnswerPart[], k: number, sub: Subscription) => AnswerPart | undefined,
): Promise<{ stop(): void; fetched: number[] }> {
  const nc: NatsConnection = await stack.connect(`faulty-${service}`);
  const keys = stack.keys(service);
  const keyring = new Keyring(keys, stack.peers);
  const fetched: number[] = [];
  const parts: Subscription[] = [];
  const sub = nc.subscribe(subjects.access(service), {
    queue: service,
    callback: (_e, msg: Msg) => {
      const q = openQuestion(msg.data, msg.headers?.get(HEADERS.signature), keyring, service);
      const sealed = sealAnswerEnvelope({
        questionId: q.id,
        service,
        resources: resources(q.patientRef) as unknown as JsonResource[],
        now: Date.now(),
        signer: keys.sign,
        keyring,
      });
      const split = splitAnswer({
        id: `${q.id}.a`,
        service,
        bytes: sealed.bytes,
        sig: sealed.sig,
        maxPart: MAX_PAYLOAD - PART_HEADROOM,
        signer: keys.sign,
        token: newPartsToken(),
      });
      const partSub = nc.subscribe(subjects.accessPart(service, split.manifest.value.token), {
        callback: (_err, m) => {
          const k = parsePartRequest(m.data) as number;
          fetched.push(k);
          const part = tamper([...split.parts], k, partSub);
          if (part === undefined) return;
          const h = natsHeaders();
          h.set(HEADERS.part, part.place);
          h.set(HEADERS.signature, part.sig);
          m.respond(part.data, { headers: h });
        },
      });
      parts.push(partSub);
      void nc.flush().then(() => {
        const h = natsHeaders();
        h.set(HEADERS.signature, split.manifest.sig);
        h.set(HEADERS.parts, String(split.parts.length));
        msg.respond(split.manifest.bytes, { headers: h });
      });
    },
  });
  await nc.flush();
  return { fetched, stop: () => [sub, ...parts].forEach((s) => s.isClosed() || s.unsubscribe()) };
}

async function auditSteps(
  requestId: string,
): Promise<{ step: string | undefined; service: string | undefined; desc: string | undefined }[]> {
  const nc = await stack.connect('auditor');
  const events: AuditEvent[] = [];
  for await (const rec of readAuditRecords(nc)) events.push(...(decodeRecord(rec.data)?.events ?? []));
  await nc.close();
  return events
    .filter((e) => e.entity?.some((x) => x.what?.identifier?.value === requestId))
    .map((e) => ({ step: e.subtype?.[0]?.code, service: e.agent[1]?.who?.identifier?.value, desc: e.outcomeDesc }));
}

beforeAll(async () => {
  stack = await startTestStack({ maxPayload: MAX_PAYLOAD });
  for (const s of HOLDERS) clients.set(s, await stack.client(s));
  for (const s of HOLDERS) await serve(s);
  for (const id of [P1, P2, P3]) await publishPatient(id);
  desk = await AccessDesk.start({
    nc: await stack.connect('desk'),
    catalog: stack.catalog,
    keys: stack.keys(BROKER_ID),
    peers: stack.peers,
    secrets: stack.secrets,
    logger: stack.logger,
    now: () => clock,
    retryIntervalMs: 0,
    // The service seals an answer of several MB before replying: time for a busy machine, not a wall-clock assertion.
    answerTimeoutMs: 30_000,
    ...(stack.broker === undefined ? {} : { audit: stack.broker.auditTrail }),
  });
}, 60_000);

afterAll(async () => {
  await desk?.stop();
  await stack?.stop();
});

describe('answers larger than max_payload', () => {
  it('a service answer of several MB arrives in parts, and the Bundle holds every resource', async () => {
    const ref = `Patient/${P1}`;
    const big = manyObservations(ref, 2500);
    records.set(key('ehr', ref), [...(records.get(key('ehr', ref)) ?? []), ...big]);
    const requests: string[] = [];
    const replies: { place: string; data: Buffer }[] = [];
    const tap = await stack.connect('tap');
    tap.subscribe('>', {
      callback: (_e, m) => {
        if (m.subject.startsWith('phi.access.ehr.part.')) requests.push(m.subject);
        const place = m.headers?.get(HEADERS.part);
        if (m.subject.startsWith('_INBOX.') && place) replies.push({ place, data: Buffer.from(m.data) });
      },
    });
    await tap.flush();
    const r = await desk.create(ref);
    await tap.close();
    expect(r.status).toBe('complete');
    expect(r.services['ehr']).toMatchObject({
      state: 'answered',
      attempts: 1,
      resources: 2502,
      types: { Patient: 1, Observation: 2501 },
    });
    // Several MB in parts of at most max_payload less the headroom, each fetched once, in order, on one one-off subject.
    const answerBytes = replies.reduce((n, x) => n + x.data.length, 0);
    expect(answerBytes).toBeGreaterThan(5 * 1024 * 1024);
    expect(Math.max(...replies.map((x) => x.data.length))).toBe(MAX_PAYLOAD - PART_HEADROOM);
    expect(replies.map((x) => x.place)).toEqual(replies.map((_, i) => `${i + 1}/${replies.length}`));
    expect(requests.length).toBe(replies.length);
    expect(new Set(requests).size).toBe(1);
    expect(Buffer.concat(replies.map((x) => x.data)).toString('latin1')).not.toContain(PLANTED);
    const bundle = await loadBundle(desk.store, accessKey(stack.secrets), r, clock);
    const ehr = (bundle.entry ?? [])
      .map((e) => e.resource as unknown as FhirResource)
      .filter((x) => (x['meta'] as { source?: string } | undefined)?.source === `${SOURCE_PREFIX}ehr`);
    expect(ehr.map(({ meta: _meta, ...rest }) => rest)).toEqual(records.get(key('ehr', ref)));
    expect(bundle.entry?.length).toBe(2502 + HOLDERS.length - 1);
    // The planted text never reached a log line (the parts on the wire are sealed: checked in test/e2e/access.test.ts).
    expect(stack.logs.text()).not.toContain(PLANTED);
    expect(stack.logs.records().some((x) => x['event'] === 'access.parts' && x['service'] === 'ehr')).toBe(true);
  }, 120_000);

  it('an altered part is refused (E_SIGNATURE), a reordered one (E_ACCESS_PARTS), a missing one (E_ACCESS_PARTS); a retry recovers', async () => {
    const ref = `Patient/${P2}`;
    const big = (r: string): FhirResource[] => manyObservations(r, 100);
    await handles.get('billing')?.stop();
    const altered = await faultyService('billing', big, (parts, k) => {
      const part = parts[k - 1] as AnswerPart;
      return k === 2 ? { ...part, data: part.data.map((v, i) => (i === 100 ? v ^ 1 : v)) } : part;
    });
    const first = await desk.create(ref);
    altered.stop();
    expect(first.status).toBe('partial');
    expect(first.services['billing']).toMatchObject({
      state: 'failed',
      attempts: 1,
      code: 'E_SIGNATURE',
      path: 'part[2]',
    });
    expect(altered.fetched).toEqual([1, 2]); // stopped at the altered part

    clock += retryDelay(1);
    const reordered = await faultyService('billing', big, (parts, k) => parts[k === 2 ? 2 : k - 1]);
    await desk.retryDue();
    reordered.stop();
    expect((await desk.store.get(first.id)).services['billing']).toMatchObject({
      state: 'failed',
      attempts: 2,
      code: 'E_ACCESS_PARTS',
      path: 'part[2]',
    });

    clock += retryDelay(2);
    // The instance goes away after serving part 2: part 3 finds no responder.
    const missing = await faultyService('billing', big, (parts, k, sub) => {
      if (k === 2) sub.unsubscribe();
      return parts[k - 1];
    });
    await desk.retryDue();
    missing.stop();
    expect((await desk.store.get(first.id)).services['billing']).toMatchObject({
      state: 'failed',
      attempts: 3,
      code: 'E_ACCESS_PARTS',
      path: 'part[3]',
    });

    // The real service is back: the next attempt gets its whole answer.
    records.set(key('billing', ref), [...(records.get(key('billing', ref)) ?? []), ...big(ref)]);
    await serve('billing');
    clock += retryDelay(3);
    await desk.retryDue();
    const done = await desk.store.get(first.id);
    expect(done.status).toBe('complete');
    expect(done.services['billing']).toMatchObject({ state: 'answered', attempts: 4, resources: 101 });
    const steps = (await auditSteps(first.id))
      .filter((s) => s.service === 'billing' && s.step !== 'created')
      .map((s) => [s.step, s.desc]);
    expect(steps).toEqual([
      ['failed', 'access failed: E_SIGNATURE at part[2]'],
      ['failed', 'access failed: E_ACCESS_PARTS at part[2]'],
      ['failed', 'access failed: E_ACCESS_PARTS at part[3]'],
      ['answered', 'request complete'],
    ]);
  }, 120_000);
});

describe('the answer must be about the patient asked', () => {
  it('an answer with a resource about another patient is refused whole, audited, and kept out of the Bundle; the request stays partial naming the service', async () => {
    const ref = `Patient/${P3}`;
    const other: FhirResource = {
      resourceType: 'Observation',
      id: 'stray',
      status: 'final',
      code: { text: 'pulse' },
      subject: { reference: `Patient/${P1}` },
    };
    records.set(key('ehr', ref), [...(records.get(key('ehr', ref)) ?? []), other]);
    // Resources about no patient are part of the record set's context: kept.
    const organization: FhirResource = { resourceType: 'Organization', id: 'pharmacy-org', name: 'Dispensary' };
    const practitioner: FhirResource = { resourceType: 'Practitioner', id: 'pr-1', name: [{ family: 'Dispenser' }] };
    records.set(key('pharmacy', ref), [...(records.get(key('pharmacy', ref)) ?? []), organization, practitioner]);
    const r = await desk.create(ref);
    expect(r.status).toBe('partial');
    expect(
      Object.entries(r.services)
        .filter(([, s]) => s.state !== 'answered')
        .map(([n]) => n),
    ).toEqual(['ehr']);
    expect(r.services['ehr']).toMatchObject({
      state: 'refused',
      code: 'E_ACCESS_OTHER_PATIENT',
      path: 'Bundle.entry[2].resource',
    });
    expect(r.services['pharmacy']).toMatchObject({
      state: 'answered',
      resources: 3,
      types: { Patient: 1, Organization: 1, Practitioner: 1 },
    });
    const bundle = await loadBundle(desk.store, accessKey(stack.secrets), r, clock);
    const sources = (bundle.entry ?? []).map((e) => (e.resource?.meta?.source ?? '').replace(SOURCE_PREFIX, ''));
    expect(sources).not.toContain('ehr');
    expect(sources.sort()).toEqual(['billing', 'notification', 'pharmacy', 'pharmacy', 'pharmacy', 'registration']);
    expect((bundle.entry ?? []).map((e) => e.resource?.id)).not.toContain('stray');
    const logged = stack.logs
      .records()
      .find((x) => x['event'] === 'access.refused' && x['request'] === r.id && x['service'] === 'ehr');
    expect(logged).toMatchObject({ code: 'E_ACCESS_OTHER_PATIENT', path: 'Bundle.entry[2].resource' });
    expect(await auditSteps(r.id)).toContainEqual({
      step: 'failed',
      service: 'ehr',
      desc: 'access failed: E_ACCESS_OTHER_PATIENT at Bundle.entry[2].resource; refused, not asked again until access retry',
    });
    // Neither patient's id is in the logs, the audit trail or the request state.
    for (const id of [P1, P3]) {
      expect(stack.logs.text(), id).not.toContain(id);
      expect(JSON.stringify(await desk.store.get(r.id)), id).not.toContain(id);
    }
  });
});
