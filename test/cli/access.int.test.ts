// `phi-broker access request|status|extend|list|retry|export` as a user runs them (the built CLI, a child process)
// against broker processes' access desk on a real nats-server: the patient reference never appears in output,
// a partial request names the missing service and exports with exit 2, the second extension is refused with its
// code, and an overdue request (desk clock injected) shows in `list --overdue`.
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { FhirResource } from 'fhir/r4.js';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { AccessDesk } from '../../src/access/desk/desk.js';
import { ACCESS_DUE_MS, retryDelay } from '../../src/access/protocol/request.js';
import { BROKER_ID } from '../../src/wire/ids.js';
import type { PhiClient } from '../../src/sdk/client.js';
import { ROOT, startTestStack, type TestStack } from '../helpers/stack.js';
import { BROKER_IDENTITY } from '../../src/tls/identity.js';

const run = promisify(execFile);
const CLI = join(ROOT, 'dist/src/cli/main.js');
const X = 'Zq7731Juliet';
const Y = 'Zq7731Kilo';
const HOLDERS = ['billing', 'ehr', 'notification', 'pharmacy', 'registration'];
let stack: TestStack;
let desk: AccessDesk;
let clock = Date.UTC(2026, 10, 2, 8, 0, 0);
const clients = new Map<string, PhiClient>();
const handles = new Map<string, { stop(): Promise<void> }>();
const failing = new Set<string>();
const out = mkdtempSync(join(tmpdir(), 'phi-access-export-'));

async function serve(service: string): Promise<void> {
  const c = clients.get(service) as PhiClient;
  handles.set(
    service,
    await c.onAccessRequest((ref) => {
      if (failing.has(service)) throw new Error('unavailable');
      return [
        {
          resourceType: 'Patient',
          id: ref.slice('Patient/'.length),
          meta: { source: `urn:test:${service}` },
        } as FhirResource,
      ];
    }),
  );
}

beforeAll(async () => {
  stack = await startTestStack();
  for (const s of HOLDERS) clients.set(s, await stack.client(s));
  for (const id of [X, Y]) {
    expect(
      (await clients.get('registration')?.publish({ resourceType: 'Patient', id, name: [{ family: `Fam${id}` }] }))
        ?.status,
    ).toBe('accepted');
  }
  for (const s of HOLDERS) await serve(s);
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
  });
});

afterAll(async () => {
  await desk?.stop();
  await stack?.stop();
});

// As the operator: status and list then go to the desk on phi.control.access, whose clock this file injects (as the
// read-only auditor they read KV phi_access with the CLI's own clock: test/cli/mtls.int.test.ts, test/e2e/auditor.test.ts).
function cli(...args: string[]): Promise<{ stdout: string; stderr: string }> {
  return run(process.execPath, [CLI, ...args, '--data-dir', stack.config.dataDir], {
    env: { ...process.env, ...stack.env, PHI_BROKER_OPERATOR_IDENTITY: 'operator' },
  });
}

async function fails(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return cli(...args).then(
    () => {
      throw new Error(`phi-broker ${args.join(' ')} succeeded`);
    },
    (e: { code: number; stdout: string; stderr: string }) => e,
  );
}

let id: string;

it('request: partial while a service is down, naming it; the reference never printed', async () => {
  await handles.get('pharmacy')?.stop();
  const { stdout } = await cli('access', 'request', '--patient', `Patient/${X}`, '--json');
  const r = JSON.parse(stdout) as {
    id: string;
    status: string;
    unanswered: string[];
    dueAt: number;
    receivedAt: number;
  };
  id = r.id;
  expect(r).toMatchObject({
    status: 'partial',
    unanswered: ['pharmacy'],
    receivedAt: clock,
    dueAt: clock + ACCESS_DUE_MS,
  });
  expect(stdout).not.toContain(X);
  const status = await cli('access', 'status', id);
  expect(status.stdout).toContain(`${id}  partial (waiting for: pharmacy)`);
  expect(status.stdout).toMatch(/ {2}ehr: answered .*, 1 resource \(Patient 1\), sha256 [0-9a-f]{64}/);
  expect(status.stdout).toMatch(/ {2}pharmacy: not yet answered \(1 attempt, last (503|TIMEOUT)\), next attempt /);
  expect(status.stdout).not.toContain(X);
});

it('export of a partial request writes the answers so far and exits 2', async () => {
  const file = join(out, 'partial.json');
  const e = await fails('access', 'export', id, '--out', file);
  expect(e.code).toBe(2);
  expect(e.stderr).toContain(`${id} is partial: not yet answered by pharmacy`);
  const bundle = JSON.parse(readFileSync(file, 'utf8')) as {
    resourceType: string;
    type: string;
    entry: { resource: { meta: { source: string } } }[];
  };
  expect(bundle).toMatchObject({ resourceType: 'Bundle', type: 'collection' });
  expect(bundle.entry.map((e) => e.resource.meta.source)).toEqual([
    'urn:test:billing',
    'urn:test:ehr',
    'urn:test:notification',
    'urn:test:registration',
  ]);
});

it('extend: once with a reason; a second time refused with E_ACCESS_EXTENDED', async () => {
  const { stdout } = await cli('access', 'extend', id, '--reason', 'records held off site');
  expect(stdout).toContain('(extended ');
  expect(stdout).toContain(': records held off site)');
  const e = await fails('access', 'extend', id, '--reason', 'again');
  expect(e.code).toBe(1);
  expect(e.stderr).toContain(
    'E_ACCESS_EXTENDED: extension: the request was already extended once (45 CFR 164.524(b)(2)(ii))',
  );
  const unknown = await fails('access', 'status', 'ar-00000000-0000-4000-8000-000000000000');
  expect(unknown.stderr).toContain('E_ACCESS_UNKNOWN');
});

it('retry reaches the service once it is back; export then exits 0 with every answer', async () => {
  await serve('pharmacy');
  clock += retryDelay(1);
  const { stdout } = await cli('access', 'retry', '--json');
  expect(JSON.parse(stdout.trim())).toMatchObject({ id, status: 'complete', unanswered: [] });
  const file = join(out, 'complete.json');
  const done = await cli('access', 'export', id, '--out', file);
  expect(done.stdout).toContain('5 resources from 5 service(s)');
  const bundle = JSON.parse(readFileSync(file, 'utf8')) as { entry: { resource: { id: string } }[] };
  expect(bundle.entry.map((e) => e.resource.id)).toEqual(Array(5).fill(X));
});

it('list --overdue shows a request past its due date that is not complete, and only that one', async () => {
  failing.add('billing');
  const { stdout } = await cli('access', 'request', '--patient', `Patient/${Y}`, '--json');
  const late = JSON.parse(stdout) as { id: string; status: string };
  expect(late.status).toBe('partial');
  expect((await cli('access', 'list', '--overdue', '--json')).stdout).toBe('');
  clock += ACCESS_DUE_MS + 1;
  const overdue = (await cli('access', 'list', '--overdue', '--json')).stdout
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { id: string; overdue: boolean });
  expect(overdue.map((r) => [r.id, r.overdue])).toEqual([[late.id, true]]);
  const text = await cli('access', 'list');
  expect(text.stdout).toMatch(new RegExp(`^${late.id}  partial  .*  overdue  billing$`, 'm'));
  expect(text.stdout).toMatch(new RegExp(`^${id}  complete  .*  -  -$`, 'm'));
  expect(text.stdout).toContain('2 requests');
  expect(stack.logs.text()).not.toContain(X);
  expect(stack.logs.text()).not.toContain(Y);
});
