// Accounting of disclosures end to end over a real nats-server (45 CFR 164.528): after a mixed flow — internal and
// partner recipients, several patients — `phi-broker disclosures --patient` lists exactly the deliveries about that
// patient to the catalog's external partners (public-health, partner-payer) and nothing internal; each record names
// date, recipient, resource type, purpose, message id and the element paths the profile let through, never a value;
// `--since` bounds the list; `--format fhir` is a Bundle of AuditEvents that passes FHIR R4 validation and the R4 JSON schema; the stream
// refuses deletes and purges; and nothing readable about a patient is in the stream or the logs.
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { AuditEvent, Bundle } from 'fhir/r4.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_VALIDATION_LIMITS, validateResource } from '../../src/fhir/validate.js';
import { STREAMS } from '../../src/wire/names.js';
import type { PhiClient } from '../../src/sdk/client.js';
import { ROOT, readJson, startTestStack, type TestStack } from '../helpers/stack.js';
import { ADMIN_IDENTITY } from '../../src/tls/identity.js';
import { fhirSchemaErrors } from '../helpers/fhir-schema.js';

const run = promisify(execFile);
const CLI = join(ROOT, 'dist/src/cli/main.js');

const A = 'zq-disclose-a-4417';
const B = 'zq-disclose-b-4417';
/** Distinctive synthetic values in the resources below: none may be in a disclosure record or a log. */
const PHI = [A, B, 'SUB-4417-SECRET', 'LOT-4417-SECRET', 'Quillfeather', 'MRN-7731-DEMO', 'Claimnarrative4417'];
const PATIENT = readJson(join(ROOT, 'examples/patient.json'));
const OBSERVATION = readJson(join(ROOT, 'examples/observation.json'));

let stack: TestStack;
let registration: PhiClient;
let ehr: PhiClient;
let billing: PhiClient;
/** What each publish should have disclosed: [patient, recipient, type, purpose, message id]. */
const expected: [string, string, string, string, string][] = [];

async function publish(client: PhiClient, resource: Record<string, unknown>): Promise<string> {
  const r = await client.publish(resource);
  expect(r.status).toBe('accepted');
  return r.id;
}

const coverage = (p: string, id: string) => ({
  resourceType: 'Coverage',
  id,
  status: 'active',
  subscriberId: 'SUB-4417-SECRET',
  beneficiary: { reference: `Patient/${p}` },
  payor: [{ reference: 'Organization/payer-1' }],
});
const claim = (p: string, id: string) => ({
  resourceType: 'Claim',
  id,
  text: { status: 'generated', div: '<div xmlns="http://www.w3.org/1999/xhtml">Claimnarrative4417</div>' },
  status: 'active',
  type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/claim-type', code: 'professional' }] },
  use: 'claim',
  patient: { reference: `Patient/${p}` },
  created: '2026-11-02',
  provider: { reference: 'Organization/hospital-1' },
  priority: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/processpriority', code: 'normal' }] },
  insurance: [{ sequence: 1, focal: true, coverage: { reference: `Coverage/cov-${p}` } }],
});
const immunization = (p: string, id: string) => ({
  resourceType: 'Immunization',
  id,
  status: 'completed',
  vaccineCode: { coding: [{ system: 'http://hl7.org/fhir/sid/cvx', code: '140' }] },
  patient: { reference: `Patient/${p}` },
  occurrenceDateTime: '2026-10-01',
  lotNumber: 'LOT-4417-SECRET',
});
const observation = (p: string, id: string) => ({ ...OBSERVATION, id, subject: { reference: `Patient/${p}` } });

/** The mixed flow: every resource type here goes to internal services; some also to a partner. */
async function flow(p: string, round: number): Promise<void> {
  const pid = await publish(registration, { ...PATIENT, id: p });
  expected.push([p, 'public-health', 'Patient', 'PUBHLTH', pid]);
  const cid = await publish(registration, coverage(p, `cov-${p}-${round}`));
  expected.push([p, 'partner-payer', 'Coverage', 'HPAYMT', cid]);
  const clid = await publish(billing, claim(p, `claim-${p}-${round}`));
  expected.push([p, 'partner-payer', 'Claim', 'HPAYMT', clid]);
  const iid = await publish(ehr, immunization(p, `imm-${p}-${round}`));
  expected.push([p, 'public-health', 'Immunization', 'PUBHLTH', iid]);
  await publish(ehr, observation(p, `obs-${p}-${round}`)); // ehr and analytics only: no disclosure
}

function cli(...args: string[]): Promise<{ stdout: string; stderr: string }> {
  return run(
    process.execPath,
    [CLI, 'disclosures', ...args, '--data-dir', stack.config.dataDir, '--log-level', 'silent'],
    { env: { ...process.env, ...stack.env } },
  );
}

/** `[recipient, type, purpose, message id]` of each text line, in order. */
function parsed(stdout: string): string[][] {
  return stdout
    .trim()
    .split('\n')
    .filter((l) => l.includes('  message '))
    .map((l) => {
      const [, recipient, type, purpose, , id] = l.split(/\s+/);
      return [recipient ?? '', type ?? '', purpose ?? '', id ?? ''];
    });
}

const expectedFor = (p: string): string[][] => expected.filter((e) => e[0] === p).map((e) => e.slice(1));

let firstRound: string;

beforeAll(async () => {
  stack = await startTestStack();
  registration = await stack.client('registration');
  ehr = await stack.client('ehr');
  billing = await stack.client('billing');
  await flow(A, 1);
  await flow(B, 1);
  firstRound = (await cli('--patient', `Patient/${A}`)).stdout;
  await flow(A, 2);
});

afterAll(async () => {
  await stack?.stop();
});

describe('phi-broker disclosures', () => {
  it('lists exactly the partner deliveries about the patient, oldest first, and nothing internal', async () => {
    const { stdout } = await cli('--patient', `Patient/${A}`);
    expect(parsed(stdout)).toEqual(expectedFor(A));
    expect(stdout).toContain(`${expectedFor(A).length} disclosures since`);
    expect(stdout).not.toMatch(/\s(ehr|billing|analytics|notification|pharmacy)\s/);
    expect(parsed((await cli('--patient', `Patient/${B}`)).stdout)).toEqual(expectedFor(B));
    expect(parsed((await cli('--patient', 'Patient/nobody-here')).stdout)).toEqual([]);
  });

  it('names the elements the applied profile disclosed, never a value', async () => {
    const { stdout } = await cli('--patient', `Patient/${A}`);
    const claimLine = stdout.split('\n').find((l) => l.includes('  Claim  ')) ?? '';
    expect(claimLine).toContain('Claim.patient.reference');
    expect(claimLine).toContain('Claim.insurance.coverage.reference');
    expect(claimLine).not.toContain('Claim.text'); // claim-payer keeps the narrative home
    const coverageLine = stdout.split('\n').find((l) => l.includes('  Coverage  ')) ?? '';
    expect(coverageLine).toContain('Coverage.subscriberId');
    for (const s of PHI) expect(stdout.replaceAll(`Patient/${A}`, '')).not.toContain(s);
  });

  it('--since leaves out what was disclosed before it', async () => {
    const before = parsed(firstRound);
    expect(before).toEqual(expectedFor(A).slice(0, before.length));
    expect(before.length).toBeGreaterThan(0);
    const { stdout: all } = await cli('--patient', `Patient/${A}`, '--format', 'fhir');
    const dates = ((JSON.parse(all) as Bundle).entry ?? []).map((e) => (e.resource as AuditEvent).recorded);
    // The first disclosure of the second round: everything from it on, nothing before it.
    const since = dates[before.length] ?? '';
    const { stdout } = await cli('--patient', `Patient/${A}`, '--since', since);
    expect(parsed(stdout)).toEqual(expectedFor(A).slice(before.length));
    const e = await cli('--patient', `Patient/${A}`, '--since', 'last tuesday').catch(
      (err: { code: number; stderr: string }) => err,
    );
    expect(e).toMatchObject({ code: 1 });
    expect((e as { stderr: string }).stderr).toContain("option '--since <date>' argument 'last tuesday' is invalid");
  });

  it('--format fhir is a Bundle of AuditEvents (DICOM Export, purpose of use, patient entity) valid in FHIR R4', async () => {
    const { stdout } = await cli('--patient', `Patient/${A}`, '--format', 'fhir');
    const bundle = JSON.parse(stdout) as Bundle;
    expect(validateResource(bundle, DEFAULT_VALIDATION_LIMITS)).toBe(bundle);
    expect(fhirSchemaErrors(bundle)).toEqual([]);
    expect(bundle.type).toBe('collection');
    // R4 bundle.html: every entry SHALL have a fullUrl; distinct, and stable across two exports.
    const urls = (bundle.entry ?? []).map((e) => e.fullUrl);
    expect(urls.every((u) => typeof u === 'string' && /^urn:uuid:[0-9a-f-]{36}$/.test(u))).toBe(true);
    expect(new Set(urls).size).toBe(urls.length);
    const again = JSON.parse((await cli('--patient', `Patient/${A}`, '--format', 'fhir')).stdout) as Bundle;
    expect(again.entry?.map((e) => e.fullUrl)).toEqual(urls);
    const events = (bundle.entry ?? []).map((e) => e.resource as AuditEvent);
    expect(
      events.map((ev) => [
        ev.agent[1]?.who?.identifier?.value,
        ev.entity?.[1]?.type?.code,
        ev.purposeOfEvent?.[0]?.coding?.[0]?.code,
        ev.entity?.[1]?.what?.identifier?.value,
      ]),
    ).toEqual(expectedFor(A));
    for (const ev of events) {
      expect(validateResource(ev, DEFAULT_VALIDATION_LIMITS)).toBe(ev);
      expect(ev.type).toMatchObject({ system: 'http://dicom.nema.org/resources/ontology/DCM', code: '110106' });
      expect(ev.entity?.[0]?.what?.reference).toBe(`Patient/${A}`);
    }
  });
});

describe('the PHI_DISCLOSURES stream', () => {
  it('refuses deletes and purges, keeps six years by default, and stores no patient data', async () => {
    const nc = await stack.connectAs(ADMIN_IDENTITY, 'inspector');
    const jsm = await nc.jetstreamManager();
    const info = await jsm.streams.info(STREAMS.disclosures);
    expect([info.config.deny_delete, info.config.deny_purge]).toEqual([true, true]);
    expect(info.config.max_age).toBe(stack.config.disclosureMaxAgeMs * 1_000_000);
    expect(info.state.messages).toBe(expected.length);
    await expect(jsm.streams.deleteMessage(STREAMS.disclosures, info.state.first_seq)).rejects.toThrow();
    await expect(jsm.streams.purge(STREAMS.disclosures)).rejects.toThrow();
    for (let seq = info.state.first_seq; seq <= info.state.last_seq; seq++) {
      const m = await jsm.streams.getMessage(STREAMS.disclosures, { seq });
      const text = `${m.subject}\n${new TextDecoder().decode(m.data)}`;
      for (const s of PHI) expect(text, `seq ${seq}`).not.toContain(s);
    }
    const logs = stack.logs.text();
    for (const s of PHI) expect(logs).not.toContain(s);
  });
});
