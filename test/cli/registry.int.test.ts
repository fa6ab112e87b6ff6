// `phi-broker registry show --patient <ref>` against a real broker's registry: services, roles, types,
// purposes and counts, as text and JSON; the reference is never printed; a malformed one is refused with a code.
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { patientPseudonym } from '../../src/registry/pseudonym.js';
import { ROOT, startTestStack, type TestStack } from '../helpers/stack.js';

const run = promisify(execFile);
const CLI = join(ROOT, 'dist/src/cli/main.js');
const ID = 'Zq7731Foxtrot';
let stack: TestStack;

beforeAll(async () => {
  stack = await startTestStack();
  const registration = await stack.client('registration');
  const ehr = await stack.client('ehr');
  const results = [
    await registration.publish({ resourceType: 'Patient', id: ID, name: [{ family: 'Registrova' }] }),
    await ehr.publish({
      resourceType: 'Observation',
      id: 'o1',
      status: 'final',
      code: { text: 'pulse' },
      subject: { reference: `Patient/${ID}` },
    }),
    await ehr.publish({
      resourceType: 'Observation',
      id: 'o2',
      status: 'final',
      code: { text: 'pulse' },
      subject: { reference: `Patient/${ID}` },
    }),
  ];
  expect(results.map((r) => r.status)).toEqual(['accepted', 'accepted', 'accepted']);
});

afterAll(async () => {
  await stack?.stop();
});

function cli(...args: string[]): Promise<{ stdout: string; stderr: string }> {
  return run(process.execPath, [CLI, ...args, '--data-dir', stack.config.dataDir], {
    env: { ...process.env, ...stack.env },
  });
}

it('--json lists every service and role that holds the patient', async () => {
  const { stdout } = await cli('registry', 'show', '--patient', `Patient/${ID}`, '--json');
  const out = JSON.parse(stdout) as {
    patient: string;
    match: string;
    services: { service: string; role: string; types: string[]; purposes: string[]; count: number }[];
  };
  expect(out.patient).toBe(patientPseudonym(stack.secrets, `Patient/${ID}`));
  expect(out.match).toBe('reference');
  expect(
    out.services.map(({ service, role, types, purposes, count }) => ({ service, role, types, purposes, count })),
  ).toEqual([
    { service: 'analytics', role: 'recipient', types: ['Observation'], purposes: ['HRESCH'], count: 2 },
    { service: 'billing', role: 'recipient', types: ['Patient'], purposes: ['HPAYMT'], count: 1 },
    { service: 'ehr', role: 'source', types: ['Observation'], purposes: [], count: 2 },
    { service: 'ehr', role: 'recipient', types: ['Observation', 'Patient'], purposes: ['TREAT'], count: 3 },
    { service: 'notification', role: 'recipient', types: ['Patient'], purposes: ['HOPERAT'], count: 1 },
    { service: 'pharmacy', role: 'recipient', types: ['Patient'], purposes: ['TREAT'], count: 1 },
    { service: 'public-health', role: 'recipient', types: ['Patient'], purposes: ['PUBHLTH'], count: 1 },
    { service: 'registration', role: 'source', types: ['Patient'], purposes: [], count: 1 },
  ]);
  expect(stdout).not.toContain(ID);
});

it('text: a table, one row per service and role; an unknown patient holds nothing', async () => {
  const { stdout } = await cli('registry', 'show', '--patient', `Patient/${ID}`);
  expect(stdout).toMatch(/: 7 services\n/);
  expect(stdout).toMatch(/^ehr +recipient +Observation,Patient +TREAT +3 /m);
  expect(stdout).toMatch(/^registration +source +Patient +- +1 /m);
  expect(stdout).not.toContain(ID);
  const none = await cli('registry', 'show', '--patient', 'Patient/nobody-here');
  expect(none.stdout).toContain('no service holds data about this patient');
});

it('refuses a reference not in the canonical form with E_PATIENT_UNRESOLVED, without echoing it', async () => {
  const failed = await cli('registry', 'show', '--patient', 'Zephyrine Registrova').catch(
    (e: { code: number; stderr: string }) => e,
  );
  expect(failed).toMatchObject({ code: 1 });
  expect((failed as { stderr: string }).stderr).toContain('E_PATIENT_UNRESOLVED: patient: expected Patient/<id>');
  expect((failed as { stderr: string }).stderr).not.toContain('Zephyrine');
});
