// A catalog that matches patients by an MRN identifier system and rejects unresolved patients: a Patient and
// the resources that reference it by that identifier meet in one registry record; a resource that names its
// patient only by a literal reference is rejected E_PATIENT_UNRESOLVED before any delivery, and quarantined — so is a
// Bundle published whole for its one entry that does not resolve (the receipt names that entry).
import { cpSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { STREAMS } from '../../src/wire/names.js';
import { patientPseudonym } from '../../src/registry/pseudonym.js';
import { RegistryStore } from '../../src/registry/store.js';
import { ROOT, startTestStack, type TestStack } from '../helpers/stack.js';
import { ADMIN_IDENTITY } from '../../src/tls/identity.js';

const MRN = 'http://hospital.example.org/mrn';
const PLANTED = 'MRN-Zq7731Echo';
let stack: TestStack;

beforeAll(async () => {
  const subjects = join(mkdtempSync(join(tmpdir(), 'phi-subjects-')), 'subjects');
  cpSync(join(ROOT, 'subjects'), subjects, { recursive: true });
  writeFileSync(
    join(subjects, 'patients.yaml'),
    `patients:\n  match: identifier\n  system: ${MRN}\n  unresolved: reject\n`,
  );
  stack = await startTestStack({ config: { subjectsDir: subjects } });
});

afterAll(async () => {
  await stack?.stop();
});

it('registers by the MRN, and rejects a resource whose patient does not resolve before delivering it', async () => {
  expect(stack.catalog.patients).toEqual({ match: 'identifier', system: MRN, unresolved: 'reject' });
  const registration = await stack.client('registration');
  const ehr = await stack.client('ehr');
  const patient = await registration.publish({
    resourceType: 'Patient',
    id: 'p-9',
    identifier: [{ system: MRN, value: PLANTED }],
  });
  const logical = await ehr.publish({
    resourceType: 'Observation',
    id: 'o-1',
    status: 'final',
    code: { text: 'pulse' },
    subject: { identifier: { system: MRN, value: PLANTED } },
  });
  expect([patient.status, logical.status]).toEqual(['accepted', 'accepted']);

  const jsm = await (await stack.connectAs(ADMIN_IDENTITY, 'inspect')).jetstreamManager();
  const delivered = (await jsm.streams.info(STREAMS.deliver)).state.messages;
  const literal = await ehr.publish({
    resourceType: 'Observation',
    id: 'o-2',
    status: 'final',
    code: { text: 'pulse' },
    subject: { reference: 'Patient/p-9' },
  });
  expect(literal).toMatchObject({ status: 'rejected', code: 'E_PATIENT_UNRESOLVED' });
  expect((await jsm.streams.info(STREAMS.deliver)).state.messages).toBe(delivered);
  expect((await jsm.streams.info(STREAMS.quarantine)).state.messages).toBe(1);
  // A Bundle published whole: refused for its one entry that does not resolve, named by its path; nothing delivered.
  const entry = (id: string, subject: object) => ({
    resource: { resourceType: 'Observation', id, status: 'final', code: { text: 'pulse' }, subject },
  });
  const bundle = await registration.publish({
    resourceType: 'Bundle',
    id: 'b-1',
    type: 'collection',
    entry: [entry('o-3', { identifier: { system: MRN, value: PLANTED } }), entry('o-4', { reference: 'Patient/p-9' })],
  });
  expect(bundle).toMatchObject({ status: 'rejected', code: 'E_PATIENT_UNRESOLVED', path: 'Bundle.entry[1].resource' });
  expect((await jsm.streams.info(STREAMS.deliver)).state.messages).toBe(delivered);
  expect((await jsm.streams.info(STREAMS.quarantine)).state.messages).toBe(2);

  const store = await RegistryStore.open(await stack.connectAs(ADMIN_IDENTITY, 'reader'));
  const record = await store.get(patientPseudonym(stack.secrets, `${MRN}|${PLANTED}`));
  expect(record?.services['registration']?.source).toMatchObject({ types: ['Patient'], count: 1 });
  expect(record?.services['ehr']?.source).toMatchObject({ types: ['Observation'], count: 1 });
  expect(record?.services['analytics']?.recipient).toMatchObject({
    types: ['Observation'],
    purposes: ['HRESCH'],
    count: 1,
  });
  const keys: string[] = [];
  for await (const k of await store.kv.keys()) keys.push(k);
  expect(keys).toEqual([patientPseudonym(stack.secrets, `${MRN}|${PLANTED}`)]);
  expect(stack.logs.text()).not.toContain(PLANTED);
});

it('a registry write that fails retries the message (deliveries already out) instead of acknowledging or rejecting it', async () => {
  const value = 'MRN-Zq7731Lima';
  const key = patientPseudonym(stack.secrets, `${MRN}|${value}`);
  const store = await RegistryStore.open(await stack.connect('corrupter'));
  await store.kv.put(key, new TextEncoder().encode('not a registry record'));
  const registration = await stack.client('registration', { publishDeadlineMs: 60_000 });
  const published = registration.publish({ resourceType: 'Patient', id: 'p-10', identifier: [{ system: MRN, value }] });
  await stack.logs.until((r) => r['event'] === 'ingest.retry', 'the broker to retry the message');
  expect(
    stack.logs
      .records()
      .some((r) => r['event'] === 'ingest.rejected' && r['sender'] === 'registration' && r['type'] === 'Patient'),
  ).toBe(false);
  await store.kv.delete(key); // the operator repairs the registry entry
  expect((await published).status).toBe('accepted');
  expect((await store.get(key))?.services['registration']?.source?.count).toBe(1);
  expect(stack.logs.text()).not.toContain(value);
});
