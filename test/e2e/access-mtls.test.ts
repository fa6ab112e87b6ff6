// Right of access from the SDK over mTLS, on a real nats-server running the generated config
// (src/nats/server-config.ts, permissions.ts): the catalog's access requester (patient-portal) files a request with
// its own certificate, the broker (broker identity) asks every holding service, each answers over mTLS through its
// onAccessRequest handler, and the request completes with one Bundle holding every answer — without one permission
// violation. A service that is no requester is refused by the server itself (its publish is a Permissions
// Violation, reported by the SDK as E_ACCESS_NOT_ALLOWED, and never reaches the broker); nobody but the brokers'
// queue group may read the request subjects, and the requester may publish only its own.
import type { AuditEvent, FhirResource } from 'fhir/r4.js';
import type { NatsConnection, NatsError } from 'nats';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadBundle } from '../../src/access/desk/bundle.js';
import { AccessDesk } from '../../src/access/desk/desk.js';
import { ACCESS_DUE_MS } from '../../src/access/protocol/request.js';
import { accessKey } from '../../src/access/desk/sealing.js';
import { AccessStore } from '../../src/access/desk/store.js';
import { readAuditRecords } from '../../src/audit/read.js';
import { decodeRecord } from '../../src/audit/record.js';
import type { Broker } from '../../src/broker/broker.js';
import { ensureBrokerSecrets } from '../../src/runtime/broker-secrets.js';
import { BROKER_ID } from '../../src/wire/ids.js';
import { readServiceKeys } from '../../src/runtime/key-files.js';
import { createLogger } from '../../src/log/log.js';
import { subjects } from '../../src/wire/names.js';
import { PhiClient } from '../../src/sdk/client.js';
import { ADMIN_IDENTITY, serviceIdentity } from '../../src/tls/identity.js';
import { startMtlsStack, type MtlsStack } from '../helpers/mtls.js';
import { LogCapture, Waiter } from '../helpers/stack.js';

const P = 'Zq7731Sierra';
const HOLDERS = ['billing', 'ehr', 'notification', 'pharmacy', 'registration'];

let stack: MtlsStack;
let broker: Broker;
let desk: AccessDesk;
const logs = new LogCapture();
const logger = createLogger({ level: 'debug', destination: logs });
const clients = new Map<string, PhiClient>();
const serverLog = new Waiter();

async function client(service: string): Promise<PhiClient> {
  const c = await stack.connectClient(service, logger, { accessTimeoutMs: 30_000 });
  clients.set(service, c);
  return c;
}

beforeAll(async () => {
  stack = await startMtlsStack(() => serverLog.signal());
  const started = await stack.startBroker(logger);
  broker = started.broker;
  // The broker process's access desk on its own mTLS connection (as `up` runs it beside the broker).
  desk = await AccessDesk.start({
    nc: started.nc,
    catalog: stack.catalog,
    keys: readServiceKeys(stack.keysDir, BROKER_ID),
    peers: stack.peers,
    secrets: ensureBrokerSecrets(stack.keysDir),
    logger,
    retryIntervalMs: 0,
    answerTimeoutMs: 10_000,
    audit: broker.auditTrail,
  });
  const patient: FhirResource = { resourceType: 'Patient', id: P, name: [{ family: 'Zq7731Famsierra' }] };
  for (const s of HOLDERS) {
    const c = await client(s);
    await c.onAccessRequest((ref) =>
      ref === `Patient/${P}` ? [{ ...patient, meta: { source: `urn:example:${s}` } } as FhirResource] : [],
    );
  }
  expect((await clients.get('registration')?.publish(patient))?.status).toBe('accepted');
}, 90_000);

afterAll(async () => {
  for (const c of clients.values()) await c.close().catch(() => undefined);
  await desk?.stop();
  await stack?.stop();
});

describe('over mTLS with the generated permissions', () => {
  it('patient-portal files a request; every holder answers over mTLS; it completes with one Bundle of every answer; no violation', async () => {
    const from = stack.log().length;
    const portal = await client('patient-portal');
    const summary = await portal.requestAccess(`Patient/${P}`);
    expect(summary.status).toBe('complete');
    expect(Date.parse(summary.due) - Date.parse(summary.receivedAt)).toBe(ACCESS_DUE_MS);
    expect(await portal.accessStatus(summary.id)).toEqual(summary);
    const request = await desk.store.get(summary.id);
    expect(request.requester).toBe('patient-portal');
    expect(Object.entries(request.services).map(([s, st]) => [s, st.state])).toEqual(
      HOLDERS.map((s) => [s, 'answered']),
    );
    // The answers are read back as the operator's `access export` reads them: the admin identity (the broker only writes them).
    const bundle = await loadBundle(
      await AccessStore.open(await stack.connectAs(ADMIN_IDENTITY)),
      accessKey(ensureBrokerSecrets(stack.keysDir)),
      request,
      Date.now(),
    );
    expect(bundle.entry?.map((e) => e.resource?.meta?.source)).toEqual(HOLDERS.map((s) => `urn:example:${s}`));
    // nats-server logs every refusal as "Publish Violation" / "Subscription Violation": none on this path.
    expect(stack.log().slice(from)).not.toMatch(/Violation/);
  });

  it('a service that is no requester (billing) is refused by the server: a Permissions Violation, E_ACCESS_NOT_ALLOWED from the SDK, nothing reaches the broker', async () => {
    const billing = clients.get('billing');
    if (billing === undefined) throw new Error('no billing client');
    const from = stack.log().length;
    const before = (await desk.list(false)).length;
    const err = await billing.requestAccess(`Patient/${P}`).then(
      () => undefined,
      (e: unknown) => e as Error & { code: string; path?: string; cause?: NatsError },
    );
    expect(err).toMatchObject({ code: 'E_ACCESS_NOT_ALLOWED', path: 'iss' });
    expect(err?.cause?.permissionContext).toEqual({ operation: 'publish', subject: subjects.accessRequest('billing') });
    await serverLog.until(
      () => /Publish Violation.*phi\.request\.access\.billing/.test(stack.log().slice(from)),
      10_000,
      'the server logs the violation',
    );
    expect((await desk.list(false)).length).toBe(before);
    expect(logs.records().filter((r) => r['event'] === 'access.service.refused')).toEqual([]);
  });

  it('the requester may publish only its own request subject; no service may read the request subjects', async () => {
    const portal = await stack.connectAs(serviceIdentity('patient-portal'));
    const denied = await portal.request(subjects.accessRequest('ehr'), new Uint8Array(1), { timeout: 5_000 }).then(
      () => undefined,
      (e: unknown) => e as NatsError,
    );
    expect(denied?.permissionContext).toEqual({ operation: 'publish', subject: subjects.accessRequest('ehr') });
    for (const [service, subject] of [
      ['billing', 'phi.request.access.*'],
      ['ehr', subjects.accessRequest('patient-portal')],
      ['patient-portal', 'phi.request.>'],
    ] as const) {
      const nc: NatsConnection =
        service === 'patient-portal' ? portal : await stack.connectAs(serviceIdentity(service));
      const errors: NatsError[] = [];
      nc.subscribe(subject, { queue: 'phi-broker', callback: (e) => e !== null && errors.push(e) });
      await nc.flush();
      expect(
        errors.map((e) => e.permissionContext),
        `${service} ${subject}`,
      ).toEqual([{ operation: 'subscription', subject, queue: 'phi-broker' }]);
    }
  });

  it('the created step names the portal as requestor in the audit trail (read by the admin identity)', async () => {
    const admin = await stack.connectAs(ADMIN_IDENTITY);
    const events: AuditEvent[] = [];
    for await (const rec of readAuditRecords(admin)) events.push(...(decodeRecord(rec.data)?.events ?? []));
    const created = events.filter((e) => e.subtype?.[0]?.code === 'created');
    expect(created.map((e) => e.agent.filter((a) => a.requestor).map((a) => a.who?.identifier?.value))).toEqual([
      ['patient-portal'],
    ]);
    expect(JSON.stringify(events)).not.toContain(P);
    expect(logs.text()).not.toContain(P);
  });
});
