// `phi-broker serve-example` as a user runs it (the built CLI, child processes) against a real nats-server, broker
// and access desk: the walkthrough of docs/patient-rights.md — the registration example publishes examples/patient.json,
// every holder's example keeps its copy, `access request` completes once each has answered, `access export` writes a
// valid FHIR R4 Bundle of their copies; each process ends on SIGTERM (sent by PID) with exit 0, and none prints PHI.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { AccessDesk } from '../../src/access/desk/desk.js';
import { BROKER_IDENTITY } from '../../src/tls/identity.js';
import { BROKER_ID } from '../../src/wire/ids.js';
import { fhirSchemaErrors } from '../helpers/fhir-schema.js';
import { startTestStack, type TestStack } from '../helpers/stack.js';
import { CLI, EXAMPLE_PHI, NOT_BUILT, ROOT, runCli } from './run-cli.js';

/** The holders of the example Patient in the designated record set (subjects/administrative.yaml). */
const HOLDERS = ['billing', 'ehr', 'notification', 'pharmacy', 'registration'];
const PATIENT = 'Patient/demo-patient-1';

interface Example {
  readonly child: ChildProcess;
  out: string;
  err: string;
  readonly exited: Promise<number | null>;
  readonly listeners: (() => void)[];
}

let stack: TestStack;
let desk: AccessDesk;
const examples = new Map<string, Example>();
const outDir = mkdtempSync(join(tmpdir(), 'phi-serve-example-'));

function env(): Record<string, string> {
  const e: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env))
    if (v !== undefined && k !== 'NATS_URL' && !k.startsWith('PHI_BROKER_')) e[k] = v;
  return { ...e, ...stack.env, PHI_BROKER_OPERATOR_IDENTITY: 'operator' };
}

function serveExample(service: string, ...args: string[]): Example {
  const child = spawn(process.execPath, [CLI, 'serve-example', service, ...args, '--data-dir', stack.config.dataDir], {
    cwd: ROOT,
    env: env(),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const ex: Example = {
    child,
    out: '',
    err: '',
    listeners: [],
    exited: new Promise((resolve) => child.once('close', (code) => resolve(code))),
  };
  child.stdout?.setEncoding('utf8').on('data', (c: string) => {
    ex.out += c;
    for (const l of ex.listeners) l();
  });
  child.stderr?.setEncoding('utf8').on('data', (c: string) => (ex.err += c));
  examples.set(service, ex);
  return ex;
}

/** Resolves once the example's output matches `re` (checked on every chunk; bounded in time). */
function printed(ex: Example, re: RegExp, timeoutMs = 30_000): Promise<void> {
  if (re.test(ex.out)) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`no ${String(re)} within ${timeoutMs} ms\nstdout:\n${ex.out}\nstderr:\n${ex.err}`)),
      timeoutMs,
    );
    ex.listeners.push(() => {
      if (re.test(ex.out)) {
        clearTimeout(timer);
        resolve();
      }
    });
  });
}

beforeAll(async () => {
  if (NOT_BUILT !== undefined) throw new Error(NOT_BUILT);
  stack = await startTestStack();
  // The access desk `up` runs beside the broker.
  desk = await AccessDesk.start({
    nc: await stack.connectAs(BROKER_IDENTITY, 'desk'),
    catalog: stack.catalog,
    keys: stack.keys(BROKER_ID),
    peers: stack.peers,
    secrets: stack.secrets,
    logger: stack.logger,
    retryIntervalMs: 0,
    answerTimeoutMs: 10_000,
  });
}, 60_000);

afterAll(async () => {
  for (const ex of examples.values())
    if (ex.child.exitCode === null && ex.child.pid !== undefined) ex.child.kill('SIGKILL');
  await desk?.stop();
  await stack?.stop();
});

it('an unknown service is refused with E_USAGE, before anything connects', async () => {
  const r = await runCli(['serve-example', 'nosuch', '--data-dir', stack.config.dataDir], { env: stack.env });
  expect(r.code).not.toBe(0);
  expect(r.stderr).toContain('E_USAGE');
  expect(r.stderr).toContain('service: not a service of the catalog');
});

it('the walkthrough: publish, every holder keeps its copy and answers, the export holds them all', async () => {
  for (const s of HOLDERS.filter((h) => h !== 'registration')) serveExample(s);
  for (const s of HOLDERS.filter((h) => h !== 'registration'))
    await printed(examples.get(s) as Example, /answering access questions/);
  const registration = serveExample('registration', '--publish', join(ROOT, 'examples/patient.json'));
  await printed(registration, /registration: accepted \S+ \(5 deliveries\)/);
  for (const s of HOLDERS.filter((h) => h !== 'registration'))
    await printed(examples.get(s) as Example, new RegExp(`${s}: kept a Patient from registration \\(profile \\S+\\)`));

  const req = await runCli(['access', 'request', '--patient', PATIENT, '--json', '--data-dir', stack.config.dataDir], {
    env: { ...stack.env, PHI_BROKER_OPERATOR_IDENTITY: 'operator' },
  });
  expect(req.code, req.stderr).toBe(0);
  const request = JSON.parse(req.stdout) as { id: string; status: string; services: Record<string, { state: string }> };
  expect(Object.keys(request.services)).toEqual(HOLDERS);
  expect(request.status).toBe('complete');
  for (const s of HOLDERS)
    await printed(
      examples.get(s) as Example,
      new RegExp(`${s}: answered an access question with 1 resource \\(Patient\\)`),
    );

  const file = join(outDir, 'access.json');
  const exp = await runCli(['access', 'export', request.id, '--out', file, '--data-dir', stack.config.dataDir], {
    env: stack.env,
  });
  expect(exp.code, exp.stderr).toBe(0);
  const bundle = JSON.parse(readFileSync(file, 'utf8')) as { entry: { resource: Record<string, unknown> }[] };
  expect(fhirSchemaErrors(bundle)).toEqual([]);
  const sources = bundle.entry.map((e) => (e.resource['meta'] as { source: string }).source);
  expect(sources).toEqual(HOLDERS.map((s) => `urn:phi-broker:service:${s}`));
  const notification = bundle.entry[HOLDERS.indexOf('notification')]?.resource ?? {};
  expect(Object.keys(notification).sort()).toEqual(['id', 'meta', 'name', 'resourceType', 'telecom']);
  expect(notification['id']).not.toBe('demo-patient-1');

  // Ended by PID, each exits 0; none printed a value of the patient.
  for (const [s, ex] of examples) {
    process.kill(ex.child.pid as number, 'SIGTERM');
    expect(await ex.exited, `${s}\n${ex.err}`).toBe(0);
    for (const phi of EXAMPLE_PHI) expect(ex.out + ex.err, s).not.toContain(phi);
  }
}, 120_000);
