// The operator identity (docs/security-model.md) against a real nats-server on the generated mTLS config: the
// routine commands (`consent add`, `access request`, `registry show`, `audit verify`) run as the operator through
// the compiled CLI, while nats-server refuses the operator's attempts to change, delete or purge PHI_AUDIT or its
// witness stream, create a stream, delete a consumer or forge an audit record; provisioning as the admin still works.
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { AccessDesk } from '../../src/access/desk/desk.js';
import { provisionStreams } from '../../src/runtime/provision.js';
import { ADMIN_IDENTITY, BROKER_IDENTITY, OPERATOR_IDENTITY } from '../../src/tls/identity.js';
import { BROKER_ID } from '../../src/wire/ids.js';
import { STREAMS } from '../../src/wire/names.js';
import { publishDenied } from '../helpers/mtls.js';
import { ROOT, startTestStack, type TestStack } from '../helpers/stack.js';

const run = promisify(execFile);
const CLI = join(ROOT, 'dist/src/cli/main.js');
const DAY_NS = 24 * 3600 * 1e9;
let stack: TestStack;
let desk: AccessDesk;

beforeAll(async () => {
  stack = await startTestStack();
  const registration = await stack.client('registration');
  expect(
    (await registration.publish({ resourceType: 'Patient', id: 'pat-op-1', name: [{ family: 'Osk' }] })).status,
  ).toBe('accepted');
  // The broker processes' access desk, which answers `access request` on phi.control.access.
  desk = await AccessDesk.start({
    nc: await stack.connectAs(BROKER_IDENTITY, 'desk'),
    catalog: stack.catalog,
    keys: stack.keys(BROKER_ID),
    peers: stack.peers,
    secrets: stack.secrets,
    logger: stack.logger,
    retryIntervalMs: 0,
    answerTimeoutMs: 1_000,
  });
}, 60_000);

afterAll(async () => {
  await desk?.stop();
  await stack?.stop();
});

async function asOperator(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [CLI, ...args, '--data-dir', stack.config.dataDir], {
      // Reads too as the operator (by default they take the auditor when its certificate is there).
      env: { ...process.env, ...stack.env, PHI_BROKER_OPERATOR_IDENTITY: 'operator' },
    });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

it('consent add, access request, registry show and audit verify run as the operator', async () => {
  const patient = ['--patient', 'Patient/pat-op-1'];
  const add = await asOperator('consent', 'add', ...patient, '--deny-recipient', 'analytics');
  expect(add.code, add.stderr).toBe(0);
  expect(add.stdout).toMatch(/active .*denies: recipient analytics/);
  const request = await asOperator('access', 'request', ...patient, '--json');
  expect(request.code, request.stderr).toBe(0);
  expect(JSON.parse(request.stdout)).toMatchObject({ id: expect.any(String) as unknown });
  const show = await asOperator('registry', 'show', ...patient, '--json');
  expect(show.code, show.stderr).toBe(0);
  expect((JSON.parse(show.stdout) as { services: { service: string }[] }).services.map((s) => s.service)).toContain(
    'registration',
  );
  const verify = await asOperator('audit', 'verify');
  expect(verify.code, verify.stdout + verify.stderr).toBe(0);
  for (const r of [add, request, show, verify]) expect(r.stderr).not.toMatch(/Violation/);
});

it('nats-server refuses the operator every change to PHI_AUDIT and its witness, and every stream or consumer management call', async () => {
  const nc = await stack.connectAs(OPERATOR_IDENTITY, 'operator');
  const jsm = await nc.jetstreamManager();
  const { config } = await jsm.streams.info(STREAMS.audit);
  await publishDenied(
    jsm.streams.update(STREAMS.audit, { ...config, max_age: 5 * 60 * 1e9 }),
    `$JS.API.STREAM.UPDATE.${STREAMS.audit}`,
  );
  await publishDenied(jsm.streams.delete(STREAMS.audit), `$JS.API.STREAM.DELETE.${STREAMS.audit}`);
  await publishDenied(jsm.streams.purge(STREAMS.audit), `$JS.API.STREAM.PURGE.${STREAMS.audit}`);
  await publishDenied(jsm.streams.delete(STREAMS.auditWitness), `$JS.API.STREAM.DELETE.${STREAMS.auditWitness}`);
  await publishDenied(jsm.streams.deleteMessage(STREAMS.audit, 1), `$JS.API.STREAM.MSG.DELETE.${STREAMS.audit}`);
  await publishDenied(
    jsm.streams.add({ name: STREAMS.audit.replace('AUDIT', 'FAKE'), subjects: ['x.>'] }),
    '$JS.API.STREAM.CREATE.PHI_FAKE',
  );
  await publishDenied(
    jsm.consumers.delete(STREAMS.ingest, 'broker'),
    `$JS.API.CONSUMER.DELETE.${STREAMS.ingest}.broker`,
  );
  await publishDenied(nc.jetstream().publish('phi.audit.forged', new TextEncoder().encode('{}')), 'phi.audit.forged');
  await nc.close();
  const inspector = await stack.connect('inspector');
  const after = await (await inspector.jetstreamManager()).streams.info(STREAMS.audit);
  expect([after.config.max_age, after.config.deny_delete, after.config.deny_purge]).toEqual([
    2192 * DAY_NS,
    true,
    true,
  ]);
  await inspector.close();
});

it('provisioning as the admin still creates and updates streams', async () => {
  const admin = await stack.connectAs(ADMIN_IDENTITY, 'provision-again');
  await expect(provisionStreams(admin, stack.config)).resolves.toBeUndefined();
  const jsm = await admin.jetstreamManager();
  await jsm.streams.add({ name: 'ADMIN_PROBE', subjects: ['admin.probe.>'] });
  await jsm.streams.delete('ADMIN_PROBE');
  await admin.close();
});
