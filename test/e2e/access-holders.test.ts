// Right of access (45 CFR 164.524) answered by the services that hold the broker's minimum-necessary copies, over a
// real nats-server and broker: every subscriber of Patient and Observation in the example catalog runs the example
// service `phi-broker serve-example` runs (src/examples/example-service.ts) and answers from what it was delivered.
// A request is complete only when every holder the registry names answered with every type it holds; the export
// holds each holder's copy in its projected shape and is valid FHIR R4; a holder that answers empty while holding
// data keeps the request partial; an answer that fails the broker's check is a coded refusal, not asked again.
import { JsonNumber, stringifyJson } from '../../src/wire/json.js';
import type { AuditEvent, FhirResource } from 'fhir/r4.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SOURCE_PREFIX, loadBundle } from '../../src/access/desk/bundle.js';
import { AccessDesk } from '../../src/access/desk/desk.js';
import { pseudonymousPatientRef } from '../../src/access/desk/patient-forms.js';
import { accessKey } from '../../src/access/desk/sealing.js';
import { AccessStore } from '../../src/access/desk/store.js';
import { dueServices, retryDelay, type AccessRequest } from '../../src/access/protocol/request.js';
import { readAuditRecords } from '../../src/audit/read.js';
import { decodeRecord } from '../../src/audit/record.js';
import { formatRequest } from '../../src/cli/access.js';
import { ExampleService } from '../../src/examples/example-service.js';
import { subscriberPseudonymKey } from '../../src/crypto/broker-secrets.js';
import { pseudonymizer } from '../../src/projection/pseudonymizer.js';
import { ADMIN_IDENTITY, BROKER_IDENTITY } from '../../src/tls/identity.js';
import { BROKER_ID } from '../../src/wire/ids.js';
import { fhirSchemaErrors } from '../helpers/fhir-schema.js';
import { Waiter, startTestStack, type TestStack } from '../helpers/stack.js';

/** Every subscriber of Patient or Observation in the example catalog, and their publishers. */
const SERVICES = ['analytics', 'billing', 'ehr', 'notification', 'pharmacy', 'public-health', 'registration'];
/** Those the registry names and the desk asks: the designated record set (not de-identified, not external). */
const HOLDERS = ['billing', 'ehr', 'notification', 'pharmacy', 'registration'];
/** Deliveries each subscriber gets per patient (one Patient, one Observation). */
const PER_PATIENT: Readonly<Record<string, number>> = {
  analytics: 1,
  billing: 1,
  ehr: 2,
  notification: 1,
  pharmacy: 1,
  'public-health': 1,
};
const P1 = 'Hx4410Alpha';
const P2 = 'Hx4410Bravo';
const P3 = 'Hx4410Charlie';
const PHONE = '555-0144-7731';

let stack: TestStack;
let desk: AccessDesk;
let clock = Date.UTC(2026, 10, 2, 9, 0, 0);
const examples = new Map<string, ExampleService>();
const kept = new Waiter();

function example(service: string): ExampleService {
  const e = examples.get(service);
  if (e === undefined) throw new Error(`no example service ${service}`);
  return e;
}

function patient(id: string): FhirResource {
  return {
    resourceType: 'Patient',
    id,
    identifier: [{ system: 'urn:oid:2.16.840.1.113883.19.5', value: `MRN-${id}` }],
    name: [{ family: `Fam${id}`, given: ['Ines'] }],
    telecom: [{ system: 'phone', value: PHONE }],
    gender: 'female',
    birthDate: '1979-04-02',
  } as FhirResource;
}

function observation(id: string): FhirResource {
  return {
    resourceType: 'Observation',
    id: `obs-${id}`,
    status: 'final',
    code: { coding: [{ system: 'http://loinc.org', code: '8867-4', display: 'Heart rate' }] },
    subject: { reference: `Patient/${id}` },
    effectiveDateTime: '2026-10-30T08:15:00Z',
    valueQuantity: {
      value: new JsonNumber('72.0'),
      unit: 'beats/minute',
      system: 'http://unitsofmeasure.org',
      code: '/min',
    },
  } as unknown as FhirResource;
}

/** Publishes the patient's resources through the example services and waits until every subscriber kept its copy. */
async function publishFor(id: string, withObservation = true): Promise<void> {
  const before = new Map(SERVICES.map((s) => [s, example(s).deliveries]));
  expect((await example('registration').publish(patient(id))).status).toBe('accepted');
  if (withObservation) expect((await example('ehr').publish(observation(id))).status).toBe('accepted');
  const want = (s: string): number =>
    (before.get(s) ?? 0) + (withObservation ? (PER_PATIENT[s] ?? 0) : s === 'analytics' ? 0 : 1);
  await kept.until(
    () => Object.keys(PER_PATIENT).every((s) => example(s).deliveries >= want(s)),
    30_000,
    `every subscriber to keep its copies of ${id}`,
  );
}

async function auditSteps(requestId: string): Promise<{ step: string | undefined; outcome: string; desc: string }[]> {
  const nc = await stack.connectAs(ADMIN_IDENTITY, 'auditor');
  const events: AuditEvent[] = [];
  for await (const rec of readAuditRecords(nc)) events.push(...(decodeRecord(rec.data)?.events ?? []));
  await nc.close();
  return events
    .filter((e) => e.entity?.some((x) => x.what?.identifier?.value === requestId))
    .map((e) => ({ step: e.subtype?.[0]?.code, outcome: e.outcome ?? '', desc: e.outcomeDesc ?? '' }));
}

beforeAll(async () => {
  stack = await startTestStack();
  for (const s of SERVICES) {
    examples.set(
      s,
      await ExampleService.start({
        client: await stack.client(s),
        rule: stack.catalog.patients,
        subscribe: s !== 'registration',
        onEvent: () => kept.signal(),
      }),
    );
  }
  await publishFor(P1);
  desk = await AccessDesk.start({
    nc: await stack.connectAs(BROKER_IDENTITY, 'desk'),
    catalog: stack.catalog,
    keys: stack.keys(BROKER_ID),
    peers: stack.peers,
    secrets: stack.secrets,
    logger: stack.logger,
    now: () => clock,
    retryIntervalMs: 0,
    answerTimeoutMs: 5_000,
    ...(stack.broker === undefined ? {} : { audit: stack.broker.auditTrail }),
  });
}, 120_000);

afterAll(async () => {
  for (const e of examples.values()) await e.stop();
  await desk?.stop();
  await stack?.stop();
});

describe('right of access answered by every holder of a projected copy', () => {
  it('is complete only once every holder answered; the export holds each holder copy, projected, valid FHIR R4', async () => {
    // notification is down: every other holder answers, and the request waits for it.
    await example('notification').stopAnswering();
    const first = await desk.create(`Patient/${P1}`);
    expect(Object.keys(first.services)).toEqual(HOLDERS);
    expect(first.holds).toEqual({
      billing: ['Patient'],
      ehr: ['Observation', 'Patient'],
      notification: ['Patient'],
      pharmacy: ['Patient'],
      registration: ['Patient'],
    });
    expect(first.status).toBe('partial');
    expect(first.services['notification']).toMatchObject({ state: 'pending', attempts: 1 });
    for (const s of HOLDERS.filter((h) => h !== 'notification'))
      expect(first.services[s], s).toMatchObject({ state: 'answered' });

    await example('notification').startAnswering();
    clock += retryDelay(1);
    const [done] = await desk.retryDue();
    expect(done?.status).toBe('complete');
    expect(done?.services['notification']).toMatchObject({ state: 'answered', resources: 1, types: { Patient: 1 } });
    expect(done?.services['ehr']).toMatchObject({ state: 'answered', types: { Patient: 1, Observation: 1 } });
    if (done === undefined) throw new Error('no request');

    const bundle = await loadBundle(
      await AccessStore.open(await stack.connectAs(ADMIN_IDENTITY, 'exporter')),
      accessKey(stack.secrets),
      done,
      clock,
    );
    expect(fhirSchemaErrors(bundle)).toEqual([]);
    // The publisher's decimal lexeme survives the holder's answer, the desk's store and the export (FHIR R4 decimal).
    expect(stringifyJson(bundle)).toContain('"value":72.0,');
    const question = { patientRef: `Patient/${P1}` };
    const expected = HOLDERS.flatMap((s) =>
      example(s)
        .about({
          ...question,
          patientPseudonym: pseudonymousPatientRef(
            question.patientRef,
            stack.catalog.patients,
            stack.secrets.pseudonymKey,
            s,
          ),
        })
        .map((r) => ({ ...r, meta: { ...(r['meta'] as object), source: `${SOURCE_PREFIX}${s}` } })),
    );
    expect(JSON.parse(JSON.stringify(bundle.entry?.map((e) => e.resource)))).toEqual(
      JSON.parse(JSON.stringify(expected)),
    );
    const bySource = (s: string): Record<string, unknown>[] =>
      (bundle.entry ?? [])
        .map((e) => e.resource as unknown as Record<string, unknown>)
        .filter((r) => (r['meta'] as { source?: string }).source === `${SOURCE_PREFIX}${s}`);
    // notification's copy: patient-contact's shape (name and phone), named by notification's pseudonym of the id.
    const token = pseudonymizer(subscriberPseudonymKey(stack.secrets.pseudonymKey, 'notification'))(P1);
    const contact = bySource('notification');
    expect(contact).toHaveLength(1);
    expect(Object.keys(contact[0] ?? {}).sort()).toEqual(['id', 'meta', 'name', 'resourceType', 'telecom']);
    expect(contact[0]?.['id']).toBe(token);
    expect(contact[0]?.['meta']).toMatchObject({ profile: [stack.catalog.profiles.get('patient-contact')?.url] });
    // billing's copy keeps the MRN and no telecom; pharmacy's keeps the phone; ehr's is whole, with its real id.
    expect(bySource('billing')[0]).toMatchObject({ identifier: [{ value: `MRN-${P1}` }] });
    expect(bySource('billing')[0]).not.toHaveProperty('telecom');
    expect(bySource('pharmacy')[0]).toMatchObject({ telecom: [{ value: PHONE }] });
    expect(
      bySource('ehr')
        .map((r) => `${String(r['resourceType'])}/${String(r['id'])}`)
        .sort(),
    ).toEqual([`Observation/obs-${P1}`, `Patient/${P1}`]);
    expect(bySource('registration').map((r) => r['id'])).toEqual([P1]);
    // The de-identified and external subscribers hold copies too, and are never asked.
    expect(example('analytics').holdings().length).toBeGreaterThan(0);
    expect(example('public-health').holdings().length).toBeGreaterThan(0);
    expect(done.services['analytics']).toBeUndefined();
    expect(done.services['public-health']).toBeUndefined();
  });

  it('a holder that answers empty while the registry says it holds data keeps the request partial, and says so', async () => {
    await publishFor(P2, false);
    // pharmacy restarted and lost what it kept in memory: a fresh example service on the same client holds nothing.
    const old = example('pharmacy');
    await old.stopAnswering();
    const client = await stack.client('pharmacy');
    const amnesiac = await ExampleService.start({ client, rule: stack.catalog.patients, subscribe: false });
    const r = await desk.create(`Patient/${P2}`);
    expect(r.status).toBe('partial');
    expect(r.services['pharmacy']).toMatchObject({ state: 'incomplete', resources: 0, missing: ['Patient'] });
    for (const s of HOLDERS.filter((h) => h !== 'pharmacy'))
      expect(r.services[s], s).toMatchObject({ state: 'answered' });
    expect(formatRequest(r, clock)).toContain('pharmacy: INCOMPLETE answer');
    expect((await auditSteps(r.id)).some((e) => e.step === 'answered' && /incomplete: no Patient/.test(e.desc))).toBe(
      true,
    );
    // Asked again when due; with its copies back it answers in full and the request completes.
    await amnesiac.stop();
    await old.startAnswering();
    clock += retryDelay(1);
    const [again] = await desk.retryDue();
    expect(again?.services['pharmacy']).toMatchObject({ state: 'answered', resources: 1 });
    expect(again?.status).toBe('complete');
  });

  it('an answer that fails the broker check is a coded, audited refusal, not asked again until access retry <id>', async () => {
    await publishFor(P3, false);
    // billing answers with a resource that is not valid FHIR R4 (an Observation without its required status).
    await example('billing').stopAnswering();
    const client = await stack.client('billing');
    let asked = 0;
    const bad = await client.onAccessRequest(() => {
      asked += 1;
      return [
        {
          resourceType: 'Observation',
          id: 'bad-1',
          code: { text: 'x' },
          subject: { reference: `Patient/${P3}` },
        } as unknown as FhirResource,
      ];
    });
    const r: AccessRequest = await desk.create(`Patient/${P3}`);
    expect(asked).toBe(1);
    expect(r.services['billing']).toMatchObject({
      state: 'refused',
      code: 'E_FHIR_INVALID',
      path: 'Bundle.entry[0].resource.status',
    });
    expect(r.status).not.toBe('complete');
    expect(formatRequest(r, clock)).toMatch(
      /billing: REFUSED .*E_FHIR_INVALID at Bundle\.entry\[0\]\.resource\.status/,
    );
    // Never due again on its own, however long the desk keeps retrying.
    clock += 30 * 24 * 60 * 60 * 1000;
    expect(dueServices(await desk.store.get(r.id), clock)).toEqual([]);
    await desk.retryDue();
    expect(asked).toBe(1);
    expect((await desk.store.get(r.id)).services['billing']).toMatchObject({ state: 'refused', attempts: 1 });
    const steps = await auditSteps(r.id);
    expect(
      steps.some(
        (e) =>
          e.step === 'failed' &&
          e.outcome !== '0' &&
          /E_FHIR_INVALID at Bundle\.entry\[0\]\.resource\.status; refused/.test(e.desc),
      ),
    ).toBe(true);
    // The operator asks again once billing is fixed: it answers from its copies and the request completes.
    await bad.stop();
    await example('billing').startAnswering();
    const fixed = await desk.reopen(r.id);
    expect(asked).toBe(1);
    expect(fixed.services['billing']).toMatchObject({ state: 'answered', attempts: 2, resources: 1 });
    expect(fixed.status).toBe('complete');
  });
});
