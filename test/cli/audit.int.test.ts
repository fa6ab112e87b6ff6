// `phi-broker audit verify|query|export` (the compiled CLI) against a real broker's PHI_AUDIT: verify passes the
// genuine chain and exits 1 naming the sequence on a forged copy; query filters by patient (pseudonym), service,
// outcome and time; export writes a valid FHIR Bundle; nothing printed carries a planted PHI value.
import { execFile, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { AuditEvent, Bundle } from 'fhir/r4.js';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { AuditVerifyReport } from '../../src/cli/audit.js';
import { readAuditRecords } from '../../src/audit/read.js';
import { DEFAULT_VALIDATION_LIMITS, validateResource } from '../../src/fhir/validate.js';
import { patientPseudonym } from '../../src/registry/pseudonym.js';
import { ROOT, startTestStack, type TestStack } from '../helpers/stack.js';

const run = promisify(execFile);
const CLI = join(ROOT, 'dist/src/cli/main.js');
const PHI = ['Oakenshield-Vrey', 'pat-cli-1', '1966-06-06'];
let stack: TestStack;
let patientTypes: number;
let observationSubscribers: number;

beforeAll(async () => {
  stack = await startTestStack();
  const registration = await stack.client('registration');
  const ehr = await stack.client('ehr');
  const results = [
    await registration.publish({
      resourceType: 'Patient',
      id: 'pat-cli-1',
      name: [{ family: 'Oakenshield-Vrey' }],
      birthDate: '1966-06-06',
    }),
    await ehr.publish({
      resourceType: 'Observation',
      id: 'obs-cli-1',
      status: 'final',
      code: { text: 'x' },
      subject: { reference: 'Patient/pat-cli-1' },
    }),
    await registration.publish({
      resourceType: 'Patient',
      id: 'pat-cli-2',
      name: [{ family: 'Oakenshield-Vrey', nickname: 'O' }],
    }),
  ];
  expect(results.map((r) => r.status)).toEqual(['accepted', 'accepted', 'rejected']);
  await stack.broker?.stop();
  stack.broker = undefined;
  patientTypes = stack.catalog.topics.get('Patient')?.subscribers.length ?? 0;
  observationSubscribers = stack.catalog.topics.get('Observation')?.subscribers.length ?? 0;
});

afterAll(async () => {
  await stack?.stop();
});

async function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [CLI, ...args, '--data-dir', stack.config.dataDir], {
      env: { ...process.env, ...stack.env },
    });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

const ndjson = (text: string): AuditEvent[] =>
  text
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as AuditEvent);

it('verify: the genuine trail verifies (exit 0)', async () => {
  const r = await cli('audit', 'verify');
  expect(r.code).toBe(0);
  expect(r.stdout).toMatch(/^chain [A-Za-z0-9-]+: records 1\.\.\d+ .* closed$/m);
  expect(r.stdout).toContain('ok: 1 chain(s)');
  // This stack has no key directory: verify says its keys came from jwks.json, dates unchecked.
  expect(r.stdout).toContain(
    `warning: keys of broker: any signing key ${join(stack.keysDir, 'jwks.json')} lists for it (no key directory entry`,
  );
  const json = JSON.parse((await cli('audit', 'verify', '--json')).stdout) as AuditVerifyReport;
  expect(json.keySources).toEqual([{ party: 'broker', source: 'jwks', file: join(stack.keysDir, 'jwks.json') }]);
});

it('verify: a forged copy is reported at the altered sequence (exit 1)', async () => {
  const nc = await stack.connect('forger');
  const jsm = await nc.jetstreamManager();
  await jsm.streams.add({ name: 'AUDIT_COPY', subjects: ['copy.audit.>'] });
  let i = 0;
  for await (const rec of readAuditRecords(nc)) {
    i += 1;
    const text = Buffer.from(rec.data).toString('utf8');
    await nc.jetstream().publish(
      rec.subject.replace(/^phi\./, 'copy.'),
      Buffer.from(i === 3 ? text.replace(/}$/, ' }') : text), // the same JSON, other bytes
    );
  }
  const r = await cli('audit', 'verify', '--stream', 'AUDIT_COPY');
  expect(r.code).toBe(1);
  expect(r.stdout).toMatch(/BROKEN: chain [A-Za-z0-9-]+ seq 3 \(changed; stream sequence 3\)/);
  const json = await cli('audit', 'verify', '--stream', 'AUDIT_COPY', '--json');
  expect(JSON.parse(json.stdout)).toMatchObject({ ok: false, broken: { kind: 'changed', seq: 3 } });
});

it('query --patient: every event about that patient, matched by its pseudonym', async () => {
  const r = await cli('audit', 'query', '--patient', 'Patient/pat-cli-1', '--json');
  expect(r.code).toBe(0);
  const all = ndjson(r.stdout);
  // The query records itself first (an operator action about that patient, docs/audit.md "Operator actions").
  expect(all[all.length - 1]?.subtype).toContainEqual({
    system: 'urn:phi-broker:operator-action',
    code: 'audit-query',
  });
  const events = all.slice(0, -1);
  // Patient: accepted + one delivery per subscriber; Observation about the same patient: the same.
  expect(events).toHaveLength(1 + patientTypes + 1 + observationSubscribers);
  const pseudonym = patientPseudonym(stack.secrets, 'Patient/pat-cli-1');
  expect(events.every((e) => e.entity?.some((x) => x.what?.identifier?.value === pseudonym))).toBe(true);
  for (const e of events) expect(() => validateResource(e, DEFAULT_VALIDATION_LIMITS)).not.toThrow();
  // A patient nothing happened to: only the query's own record of itself.
  const none = ndjson((await cli('audit', 'query', '--patient', 'Patient/pat-cli-9', '--json')).stdout);
  expect(none.map((e) => e.subtype?.map((c) => c.code))).toEqual([['audit-query']]);
});

it('query --service, --outcome, --since/--until select what they say', async () => {
  const analytics = ndjson((await cli('audit', 'query', '--service', 'analytics', '--json')).stdout);
  expect(analytics.length).toBeGreaterThan(0);
  expect(analytics.every((e) => e.agent.some((a) => a.who?.identifier?.value === 'analytics'))).toBe(true);
  const failures = ndjson((await cli('audit', 'query', '--outcome', 'failure', '--json')).stdout);
  expect(failures.map((e) => e.outcomeDesc)).toEqual(['E_UNKNOWN_ELEMENT at Patient.name[0].nickname']);
  const all = ndjson((await cli('audit', 'query', '--since', '1h', '--json')).stdout);
  const before = ndjson((await cli('audit', 'query', '--until', '2000-01-01', '--json')).stdout);
  expect(all.length).toBeGreaterThan(analytics.length);
  expect(before).toEqual([]);
});

it('query --service naming no catalog service: E_USAGE naming the option, exit 1; the broker itself is one', async () => {
  const unknown = await cli('audit', 'query', '--service', 'nosuch');
  expect(unknown).toMatchObject({
    code: 1,
    stdout: '',
    stderr: 'phi-broker: E_USAGE: --service: not a service of the catalog (subjects/services.yaml)\n',
  });
  expect((await cli('audit', 'query', '--service', 'broker', '--json')).code).toBe(0);
});

it('query prints one text line per event with ids and codes only', async () => {
  const r = await cli('audit', 'query');
  const lines = r.stdout.trim().split('\n');
  expect(r.stderr).toContain(`${lines.length} event(s)`);
  expect(lines.some((l) => l.includes('Export/Disclose Record Lifecycle Event') && l.includes('purpose:HPAYMT'))).toBe(
    true,
  );
  for (const phi of PHI) expect(r.stdout).not.toContain(phi);
});

it('export writes a FHIR R4 collection Bundle of the selected events', async () => {
  const out = join(stack.nats.dir, 'audit-export.json');
  const r = await cli('audit', 'export', '--since', '1d', '--out', out);
  expect(r.code).toBe(0);
  const bundle = JSON.parse(readFileSync(out, 'utf8')) as Bundle<AuditEvent>;
  // The query after it holds one event more: its own record of itself (docs/audit.md "Operator actions").
  const lines = (await cli('audit', 'query', '--json')).stdout.trim().split('\n').slice(0, -1);
  const all = ndjson(lines.join('\n'));
  expect(bundle).toMatchObject({ resourceType: 'Bundle', type: 'collection' });
  // Rendered from the stored facts on each read: the same events, byte for byte, ids and times included.
  expect(bundle.entry?.map((e) => JSON.stringify(e.resource))).toEqual(lines);
  expect(r.stdout).toContain(`wrote ${all.length} AuditEvent(s)`);
  expect(() => validateResource(bundle, DEFAULT_VALIDATION_LIMITS)).not.toThrow();
  for (const phi of PHI) expect(readFileSync(out, 'utf8')).not.toContain(phi);
});

it('a bad time or patient reference is refused with exit 1, naming the flag', async () => {
  const r = await cli('audit', 'query', '--since', 'yesterday-ish');
  expect(r.code).toBe(1);
  expect(r.stderr).toContain('--since: expected an ISO 8601 date or time');
  expect((await cli('audit', 'query', '--patient', 'Patient/a b')).stderr).toContain('expected Patient/<id>');
});

it('query into a pipe its reader closed (`| head -1`) ends quietly: exit 0, no stack trace', async () => {
  for (const args of [
    ['audit', 'query'],
    ['quarantine', 'list'],
  ]) {
    const child = spawn(process.execPath, [CLI, ...args, '--data-dir', stack.config.dataDir], {
      env: { ...process.env, ...stack.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout.destroy(); // the reader is gone before the first line is written
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const code = await new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)));
    expect({ args, code, stderr }).toEqual({ args, code: 0, stderr: '' });
  }
});
