// A Bundle that travels whole is registered entry by entry (docs/patient-rights.md), over the real path: a real
// Synthea transaction Bundle (third-party, ../shared/fhir-examples/synthea) published as one Bundle by the
// registration service — which the example catalog routes to ehr — gives its patient a registry record listing
// the publisher as source and ehr as recipient with the resource types of the entries (their urn:uuid patient
// references resolved among the Bundle's entries), not the Bundle as a whole and not `_unresolved`. A collection
// Bundle derived from two Synthea records plus an entry about no resolvable patient gives each patient its own
// record and counts that entry under `_unresolved`. Checked through the `registry show` code path. The same
// per-entry patients drive restrictions: a label restriction of the Synthea patient withholds a whole Bundle in
// which one of his Observations (naming him only by urn:uuid) carries that label.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AuditEvent } from 'fhir/r4.js';
import { readAuditRecords } from '../../src/audit/read.js';
import { decodeRecord } from '../../src/audit/record.js';
import { runRegistryShow } from '../../src/cli/registry.js';
import { ConsentStore } from '../../src/consent/store.js';
import { patientPseudonym } from '../../src/registry/pseudonym.js';
import { RegistryStore, UNRESOLVED_KEY } from '../../src/registry/store.js';
import type { PhiClient } from '../../src/sdk/client.js';
import { ROOT, startTestStack, type TestStack } from '../helpers/stack.js';

const SYNTHEA = join(ROOT, '../shared/fhir-examples/synthea');
const BUSTER = join(SYNTHEA, 'Buster_Hoeger_ad2e3fc5-2b5d-4cb9-8d03-9ea0f4ac8423.json');
const ALBERTO = join(SYNTHEA, 'Alberto_Atencio_fc712d1f-5a2e-4407-9c55-a2a2bad623c2.json');
const present = existsSync(BUSTER) && existsSync(ALBERTO);

interface Entry {
  readonly fullUrl?: string;
  readonly resource: { readonly resourceType: string; readonly id?: string };
}
interface SyntheaBundle {
  readonly resourceType: 'Bundle';
  readonly type: string;
  readonly entry: readonly Entry[];
}
interface Shown {
  readonly services: readonly {
    readonly service: string;
    readonly role: string;
    readonly types: readonly string[];
    readonly purposes: readonly string[];
    readonly count: number;
  }[];
}

/** Entry types outside the FHIR R4 Patient compartment (about no patient) in these Synthea records. */
const NOT_ABOUT_A_PATIENT = new Set(['Organization', 'Practitioner']);

let stack: TestStack;
let registration: PhiClient;

const load = (path: string): SyntheaBundle => JSON.parse(readFileSync(path, 'utf8')) as SyntheaBundle;
const patientIdOf = (b: SyntheaBundle): string =>
  b.entry.find((e) => e.resource.resourceType === 'Patient')?.resource.id ?? '';
const typesAboutThePatient = (b: SyntheaBundle): string[] =>
  [...new Set(b.entry.map((e) => e.resource.resourceType))].filter((t) => !NOT_ABOUT_A_PATIENT.has(t)).sort();

async function show(patient: string): Promise<Shown> {
  const out = new PassThrough();
  let text = '';
  out.on('data', (c: Buffer) => (text += c.toString('utf8')));
  await runRegistryShow(stack.config, patient, { json: true }, out);
  return JSON.parse(text) as Shown;
}

async function registryKeys(): Promise<string[]> {
  const store = await RegistryStore.open(await stack.connect('reader'));
  const keys: string[] = [];
  for await (const k of await store.kv.keys()) keys.push(k);
  return keys.sort();
}

beforeAll(async () => {
  stack = await startTestStack();
  registration = await stack.client('registration');
});

afterAll(async () => {
  await stack?.stop();
});

describe.skipIf(!present)('a Bundle published whole', () => {
  it('a Synthea transaction Bundle: its patient is registered with the entry types, source and recipient', async () => {
    const bundle = load(BUSTER);
    // A published resource needs a logical id (the file's Bundle has none): the only change made to it.
    const r = await registration.publish({ ...bundle, id: 'synthea-buster-whole' });
    expect(r, JSON.stringify(r)).toMatchObject({ status: 'accepted', deliveries: 1 });
    const types = typesAboutThePatient(bundle);
    expect(types).toEqual(
      expect.arrayContaining(['Claim', 'Condition', 'Encounter', 'ExplanationOfBenefit', 'Observation', 'Patient']),
    );
    const shown = await show(`Patient/${patientIdOf(bundle)}`);
    expect(
      shown.services.map(({ service, role, types: t, purposes, count }) => ({
        service,
        role,
        types: t,
        purposes,
        count,
      })),
    ).toEqual([
      { service: 'ehr', role: 'recipient', types, purposes: ['TREAT'], count: 1 },
      { service: 'registration', role: 'source', types, purposes: [], count: 1 },
    ]);
    // One record, the patient's: nothing under `_unresolved`, nothing for the Bundle itself.
    expect(await registryKeys()).toEqual([patientPseudonym(stack.secrets, `Patient/${patientIdOf(bundle)}`)]);
    expect(stack.logs.records().some((l) => l['event'] === 'registry.unresolved')).toBe(false);
    // The audit trail names the entries' patient (as the broker's pseudonym) on the accepted and delivered events.
    const nc = await stack.connect('auditor');
    const events: AuditEvent[] = [];
    for await (const rec of readAuditRecords(nc)) events.push(...(decodeRecord(rec.data)?.events ?? []));
    const ofMessage = events.filter((e) => e.entity?.some((x) => x.what?.identifier?.value === r.id));
    expect(ofMessage.length).toBe(2);
    for (const e of ofMessage) {
      expect(
        e.entity
          ?.filter((x) => x.what?.identifier?.system === 'urn:phi-broker:patient-pseudonym')
          .map((x) => x.what?.identifier?.value),
      ).toEqual([patientPseudonym(stack.secrets, `Patient/${patientIdOf(bundle)}`)]);
    }
  });

  it('a collection of two Synthea records and an entry about no resolvable patient: one record each, and _unresolved', async () => {
    const alberto = load(ALBERTO);
    const buster = load(BUSTER);
    const stray = {
      resource: {
        resourceType: 'Observation',
        id: 'stray-1',
        status: 'final',
        code: { text: 'pulse' },
        subject: { reference: 'urn:uuid:00000000-0000-4000-8000-00000000dead' },
      },
    };
    // Buster's Observations only (his Patient entry left out): they name him by urn:uuid, which no entry has, so
    // they are unresolved here; Alberto's entries resolve among themselves.
    const busterObservations = buster.entry.filter((e) => e.resource.resourceType === 'Observation').slice(0, 2);
    const collection = {
      resourceType: 'Bundle',
      id: 'synthea-collection',
      type: 'collection',
      entry: [...alberto.entry.map(({ fullUrl, resource }) => ({ fullUrl, resource })), stray, ...busterObservations],
    };
    const r = await registration.publish(collection);
    expect(r, JSON.stringify(r)).toMatchObject({ status: 'accepted', deliveries: 1 });
    const albertoTypes = typesAboutThePatient(alberto);
    const shown = await show(`Patient/${patientIdOf(alberto)}`);
    expect(shown.services.find((s) => s.service === 'registration')).toMatchObject({
      role: 'source',
      types: albertoTypes,
      count: 1,
    });
    expect(shown.services.find((s) => s.service === 'ehr')).toMatchObject({
      role: 'recipient',
      types: albertoTypes,
      count: 1,
    });
    // Buster's record is unchanged by this message (his entries here do not resolve to him).
    expect(
      (await show(`Patient/${patientIdOf(buster)}`)).services.find((s) => s.service === 'registration')?.count,
    ).toBe(1);
    const store = await RegistryStore.open(await stack.connect('reader'));
    expect((await store.get(UNRESOLVED_KEY))?.services['registration']?.source).toMatchObject({
      types: ['Observation'],
      count: 1,
    });
    expect(await registryKeys()).toEqual(
      [
        patientPseudonym(stack.secrets, `Patient/${patientIdOf(alberto)}`),
        patientPseudonym(stack.secrets, `Patient/${patientIdOf(buster)}`),
        UNRESOLVED_KEY,
      ].sort(),
    );
    await stack.logs.until((l) => l['event'] === 'registry.unresolved' && l['id'] === r.id, 'registry.unresolved');
  });

  it('a label restriction of the Synthea patient withholds a whole Bundle in which one of his entries carries the label', async () => {
    const buster = load(BUSTER);
    const store = await ConsentStore.open(await stack.connect('operator'), stack.secrets, {
      services: stack.catalog.services.keys(),
      patients: stack.catalog.patients,
    });
    const added = await store.add({
      patient: `Patient/${patientIdOf(buster)}`,
      denyRecipients: [],
      denyPurposes: [],
      denyLabels: ['PSY'],
    });
    await stack.broker?.consent.waitForRevision(added.revision);
    const psy = { meta: { security: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'PSY' }] } };
    const labelled = buster.entry.map((e, i) =>
      i === buster.entry.findIndex((x) => x.resource.resourceType === 'Observation')
        ? { ...e, resource: { ...e.resource, ...psy } }
        : e,
    );
    const withheld = await registration.publish({ ...buster, id: 'synthea-buster-labelled', entry: labelled });
    expect(withheld).toMatchObject({ status: 'accepted', deliveries: 0 });
    expect(
      stack.logs
        .records()
        .some(
          (l) =>
            l['event'] === 'delivery.restricted' &&
            l['id'] === withheld.id &&
            l['reason'] === 'label' &&
            l['code'] === 'PSY',
        ),
    ).toBe(true);
    const unlabelled = await registration.publish({ ...buster, id: 'synthea-buster-again' });
    expect(unlabelled).toMatchObject({ status: 'accepted', deliveries: 1 });
  });
});
