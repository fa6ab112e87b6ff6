// One patient identity in every operator command (docs/patient-rights.md): with a catalog that matches patients by
// an MRN identifier system, `consent add|list|revoke` and `disclosures` take the patient the way `registry show`
// does — the MRN — through the same code the CLI runs (src/cli/consent.ts, src/cli/disclosures.ts) against a real
// nats-server and broker. A restriction added by MRN is stored as a Consent naming its patient by a logical
// reference (identifier), keyed on the pseudonym the broker computes for every resource about that MRN, so it
// stops exactly the matching deliveries; revoking restores them. `disclosures --patient <mrn>` lists the partner
// deliveries about that patient. A `Patient/<id>` given under this rule is refused E_PATIENT_UNRESOLVED without
// echoing it, and nothing readable about the patient reaches the consent bucket or the logs.
import { execFile } from 'node:child_process';
import { cpSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { promisify } from 'node:util';
import type { AuditEvent, Bundle, Consent } from 'fhir/r4.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runConsentAdd, runConsentList, runConsentRevoke } from '../../src/cli/consent.js';
import { runDisclosures } from '../../src/cli/disclosures.js';
import { runRegistryShow } from '../../src/cli/registry.js';
import { DEFAULT_VALIDATION_LIMITS, validateResource } from '../../src/fhir/validate.js';
import { KV_BUCKETS } from '../../src/wire/names.js';
import type { PhiClient } from '../../src/sdk/client.js';
import { CLI, NOT_BUILT } from '../cli/run-cli.js';
import { ROOT, publishedTo, startTestStack, type TestStack } from '../helpers/stack.js';

const run = promisify(execFile);
const MRN = 'http://hospital.example.org/mrn';
/** Synthetic MRNs distinctive enough to search the store and the logs for. */
const A = 'MRN-Zq4471Alpha';
const B = 'MRN-Zq4471Bravo';
const ALL_PATIENT_SUBSCRIBERS = ['billing', 'ehr', 'notification', 'pharmacy', 'public-health'];

let stack: TestStack;
let subjectsDir: string;
let registration: PhiClient;
let ehr: PhiClient;
let n = 0;

const patient = (mrn: string): Record<string, unknown> => ({
  resourceType: 'Patient',
  id: `p-${(n += 1)}`,
  identifier: [{ system: MRN, value: mrn }],
});
const observation = (mrn: string): Record<string, unknown> => ({
  resourceType: 'Observation',
  id: `o-${(n += 1)}`,
  status: 'final',
  code: { text: 'pulse' },
  subject: { identifier: { system: MRN, value: mrn } },
});

const deliveredTo = (client: PhiClient, resource: Record<string, unknown>): Promise<string[]> =>
  publishedTo(stack, client, resource);

/** Runs a CLI function (the code the `phi-broker` command runs) and returns what it printed. */
async function printed(fn: (out: PassThrough) => Promise<void>): Promise<string> {
  const out = new PassThrough();
  let text = '';
  out.on('data', (c: Buffer) => (text += c.toString('utf8')));
  await fn(out);
  out.end();
  return text;
}

/** `consent add` by MRN; waits until the running broker has applied it; returns the consent id. */
async function restrict(mrn: string, opts: { denyRecipient?: string[]; denyPurpose?: string[] }): Promise<string> {
  const text = await printed((out) =>
    runConsentAdd(
      stack.config,
      { patient: mrn, denyRecipient: opts.denyRecipient ?? [], denyPurpose: opts.denyPurpose ?? [], denyLabel: [] },
      out,
    ),
  );
  const id = /^added (\S+)\s+active/m.exec(text)?.[1] ?? '';
  expect(id).toMatch(/^[0-9a-f-]{36}$/);
  await stack.broker?.consent.waitForRevision(Number(/kv revision (\d+)/.exec(text)?.[1]));
  return id;
}

async function revoke(id: string): Promise<void> {
  const text = await printed((out) => runConsentRevoke(stack.config, id, out));
  expect(text).toContain(`revoked ${id}  inactive`);
  await stack.broker?.consent.waitForRevision(Number(/kv revision (\d+)/.exec(text)?.[1]));
}

function caught(p: Promise<unknown>): Promise<{ code?: string; path?: string; message: string }> {
  return p.then(
    () => ({ message: 'did not throw' }),
    (e: { code?: string; path?: string; message: string }) => e,
  );
}

beforeAll(async () => {
  subjectsDir = join(mkdtempSync(join(tmpdir(), 'phi-subjects-')), 'subjects');
  cpSync(join(ROOT, 'subjects'), subjectsDir, { recursive: true });
  writeFileSync(
    join(subjectsDir, 'patients.yaml'),
    `patients:\n  match: identifier\n  system: ${MRN}\n  unresolved: accept\n`,
  );
  stack = await startTestStack({ config: { subjectsDir } });
  registration = await stack.client('registration');
  ehr = await stack.client('ehr');
});

afterAll(async () => {
  await stack?.stop();
});

describe('consent by MRN under match: identifier', () => {
  it('a recipient restriction stops exactly the matching delivery; revoking restores it', async () => {
    expect(stack.catalog.patients.match).toBe('identifier');
    expect(await deliveredTo(registration, patient(A))).toEqual(ALL_PATIENT_SUBSCRIBERS);
    const id = await restrict(A, { denyRecipient: ['billing'] });
    expect(await deliveredTo(registration, patient(A))).toEqual(['ehr', 'notification', 'pharmacy', 'public-health']);
    expect(await deliveredTo(registration, patient(B))).toEqual(ALL_PATIENT_SUBSCRIBERS);
    // The restriction applies to every resource that names the patient by that MRN, not only to the Patient.
    expect(
      stack.logs
        .records()
        .filter((l) => l['event'] === 'delivery.restricted' && l['consent'] === id)
        .map((l) => l['service']),
    ).toEqual(['billing']);
    await revoke(id);
    expect(await deliveredTo(registration, patient(A))).toEqual(ALL_PATIENT_SUBSCRIBERS);
  });

  it('a purpose restriction stops research on resources that reference the patient by a logical reference', async () => {
    const id = await restrict(`${MRN}|${A}`, { denyPurpose: ['HRESCH'] });
    expect(await deliveredTo(ehr, observation(A))).toEqual(['ehr']);
    expect(await deliveredTo(ehr, observation(B))).toEqual(['analytics', 'ehr']);
    await revoke(id);
    expect(await deliveredTo(ehr, observation(A))).toEqual(['analytics', 'ehr']);
  });

  it('list by MRN: the stored Consent names its patient by identifier (a logical reference)', async () => {
    const text = await printed((out) => runConsentList(stack.config, { patient: A, json: true }, out));
    const consents = text
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Consent);
    expect(consents.map((c) => c.status)).toEqual(['inactive', 'inactive']);
    for (const c of consents) {
      expect(c.patient).toEqual({ type: 'Patient', identifier: { system: MRN, value: A } });
      expect(validateResource(c, DEFAULT_VALIDATION_LIMITS)).toBe(c);
    }
    expect(await printed((out) => runConsentList(stack.config, { patient: B, json: false }, out))).toBe(
      '0 restrictions\n',
    );
  });
});

describe('disclosures and the registry by MRN', () => {
  it('disclosures --patient <mrn> lists the partner deliveries about that patient, and only those', async () => {
    const text = await printed((out) => runDisclosures(stack.config, { patient: A, format: 'text' }, out));
    const lines = text.split('\n').filter((l) => l.includes('  message '));
    // Every Patient about A went to public-health (the partner); Observations go only to internal services.
    expect(lines.map((l) => l.split(/\s+/).slice(1, 4))).toEqual([
      ['public-health', 'Patient', 'PUBHLTH'],
      ['public-health', 'Patient', 'PUBHLTH'],
      ['public-health', 'Patient', 'PUBHLTH'],
    ]);
    expect(text).toContain('3 disclosures since');
    const b = await printed((out) => runDisclosures(stack.config, { patient: `${MRN}|${B}`, format: 'text' }, out));
    expect(b).toContain('1 disclosure since');
    const fhir = JSON.parse(
      await printed((out) => runDisclosures(stack.config, { patient: A, format: 'fhir' }, out)),
    ) as Bundle;
    expect(validateResource(fhir, DEFAULT_VALIDATION_LIMITS)).toBe(fhir);
    const events = (fhir.entry ?? []).map((e) => e.resource as AuditEvent);
    expect(events).toHaveLength(3);
    for (const ev of events)
      expect(ev.entity?.[0]?.what).toEqual({ type: 'Patient', identifier: { system: MRN, value: A } });
  });

  it('registry show by the same MRN finds the same patient', async () => {
    const out = JSON.parse(await printed((o) => runRegistryShow(stack.config, A, { json: true }, o))) as {
      services: { service: string; role: string; count: number }[];
    };
    expect(out.services.find((s) => s.service === 'registration' && s.role === 'source')?.count).toBe(3);
    expect(out.services.find((s) => s.service === 'billing' && s.role === 'recipient')?.count).toBe(2);
  });
});

describe('a Patient/<id> under the identifier rule', () => {
  const expected = `patient: expected <value> or ${MRN}|<value>, not Patient/<id> (the catalog matches patients by that identifier system)`;

  it('is refused by consent add, consent list and disclosures with E_PATIENT_UNRESOLVED, storing nothing', async () => {
    const kv = await (await stack.connect('inspect')).jetstream().views.kv(KV_BUCKETS.consent);
    const before = (await kv.status()).values;
    for (const e of [
      await caught(
        runConsentAdd(
          stack.config,
          { patient: 'Patient/p-1', denyRecipient: ['billing'], denyPurpose: [], denyLabel: [] },
          new PassThrough(),
        ),
      ),
      await caught(runConsentList(stack.config, { patient: 'Patient/p-1', json: false }, new PassThrough())),
      await caught(runDisclosures(stack.config, { patient: 'Patient/p-1', format: 'text' }, new PassThrough())),
    ]) {
      expect([e.code, e.path, e.message]).toEqual(['E_PATIENT_UNRESOLVED', 'patient', expected]);
    }
    expect((await kv.status()).values).toBe(before);
  });

  it.skipIf(NOT_BUILT !== undefined)('the command prints the documented error and never the value', async () => {
    const args = [
      'consent',
      'add',
      '--patient',
      'Patient/Zq4471Echo',
      '--deny-recipient',
      'billing',
      '--data-dir',
      stack.config.dataDir,
      '--subjects',
      subjectsDir,
      '--log-level',
      'silent',
    ];
    const e = await run(process.execPath, [CLI, ...args], { env: { ...process.env, ...stack.env } }).then(
      () => ({ code: 0, stderr: '' }),
      (err: { code: number; stderr: string }) => err,
    );
    expect(e.code).toBe(1);
    expect(e.stderr).toContain(`E_PATIENT_UNRESOLVED: ${expected}`);
    expect(e.stderr).not.toContain('Zq4471Echo');
  });
});

describe('nothing readable about the patient is stored or logged', () => {
  it('the consent bucket holds sealed values under pseudonym keys; the logs hold no MRN', async () => {
    const jsm = await (await stack.connect('inspect')).jetstreamManager();
    const stream = `KV_${KV_BUCKETS.consent}`;
    const { state } = await jsm.streams.info(stream);
    expect(state.messages).toBe(4);
    for (let seq = state.first_seq; seq <= state.last_seq; seq++) {
      const m = await jsm.streams.getMessage(stream, { seq });
      const bytes = Buffer.concat([Buffer.from(m.subject), Buffer.from(m.data)]).toString('latin1');
      for (const s of [A, B, 'Zq4471', 'hospital.example.org']) expect(bytes, `seq ${seq}`).not.toContain(s);
    }
    const logs = stack.logs.text();
    expect(logs).toContain('delivery.restricted');
    for (const s of [A, B, 'Zq4471']) expect(logs).not.toContain(s);
  });
});
