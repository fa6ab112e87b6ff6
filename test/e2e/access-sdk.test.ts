// Right of access filed by a service through the SDK (45 CFR 164.524; src/sdk/access-requests.ts →
// phi.request.access.<service> → src/access/desk/service-requests.ts → AccessDesk.create), over a real nats-server. The
// harness's NATS is plaintext with no permissions, so every refusal here is the broker's own check (the server's
// refusal under the generated mTLS config is test/e2e/access-mtls.test.ts): the catalog's requester (patient-portal)
// files a request and reads its status; a service that is no requester, a patient reference not in the catalog's
// form, a bad signature, another sender's envelope and another's request are refused with stable codes, each
// refusal in the audit trail with the service that asked. No patient id in subjects, headers, bytes, logs or audit.
import type { AuditEvent, FhirResource } from 'fhir/r4.js';
import { headers as natsHeaders, type NatsConnection } from 'nats';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadBundle } from '../../src/access/desk/bundle.js';
import { AccessDesk } from '../../src/access/desk/desk.js';
import { ACCESS_DUE_MS } from '../../src/access/protocol/request.js';
import { openAccessReply, sealAccessCommand } from '../../src/access/protocol/service-request.js';
import { accessKey } from '../../src/access/desk/sealing.js';
import { readAuditRecords } from '../../src/audit/read.js';
import { decodeRecord } from '../../src/audit/record.js';
import { BROKER_ID } from '../../src/wire/ids.js';
import { Keyring } from '../../src/crypto/keyring.js';
import { HEADERS, subjects } from '../../src/wire/names.js';
import type { PhiClient } from '../../src/sdk/client.js';
import { startTestStack, type TestStack } from '../helpers/stack.js';

/** Distinctive planted patient id and name. */
const P = 'Zq7731Romeo';
const FAMILY = 'Zq7731Famrosa';
const HOLDERS = ['billing', 'ehr', 'notification', 'pharmacy', 'registration'];

let stack: TestStack;
let desk: AccessDesk;
/** Frozen at start: the broker's skew check compares the SDK's timestamp (real time) with this clock. */
const clock = Date.now();
let portal: PhiClient;
let billing: PhiClient;
let tap: NatsConnection;
const wire: { subject: string; headers: string; data: string }[] = [];

beforeAll(async () => {
  // Plaintext on purpose: the broker's own checks (a service that is not a requester, a forged sender) are what
  // this file tests, and over mTLS the server refuses those publishes first (test/e2e/access-mtls.test.ts).
  stack = await startTestStack({ tls: false });
  tap = await stack.connect('tap');
  tap.subscribe('>', {
    callback: (_e, m) =>
      wire.push({
        subject: m.subject,
        headers:
          m.headers === undefined ? '' : [...m.headers.keys()].map((k) => `${k}: ${m.headers?.get(k)}`).join('\n'),
        data: Buffer.from(m.data).toString('latin1'),
      }),
  });
  await tap.flush();
  const patient: FhirResource = { resourceType: 'Patient', id: P, name: [{ family: FAMILY }] };
  for (const s of HOLDERS) {
    const c = await stack.client(s);
    await c.onAccessRequest((ref) =>
      ref === `Patient/${P}` ? [{ ...patient, id: P, meta: { source: `urn:example:${s}` } } as FhirResource] : [],
    );
    if (s === 'registration') expect((await c.publish(patient)).status).toBe('accepted');
    if (s === 'billing') billing = c;
  }
  portal = await stack.client('patient-portal');
  desk = await AccessDesk.start({
    nc: await stack.connect('desk'),
    catalog: stack.catalog,
    keys: stack.keys(BROKER_ID),
    peers: stack.peers,
    secrets: stack.secrets,
    logger: stack.logger,
    now: () => clock,
    retryIntervalMs: 0,
    answerTimeoutMs: 5_000,
    ...(stack.broker === undefined ? {} : { audit: stack.broker.auditTrail }),
  });
}, 60_000);

afterAll(async () => {
  await desk?.stop();
  await stack?.stop();
});

async function auditEvents(): Promise<AuditEvent[]> {
  const nc = await stack.connect('auditor');
  const events: AuditEvent[] = [];
  for await (const rec of readAuditRecords(nc)) events.push(...(decodeRecord(rec.data)?.events ?? []));
  await nc.close();
  return events;
}

// The recording broker is the agent whose `who` is `source.observer` (its instance id; BALP val-audit-source).
const who = (e: AuditEvent): string[] =>
  e.agent.map((a) => {
    const id = a.who?.identifier?.value;
    const name = id !== undefined && id === e.source.observer.identifier?.value ? 'broker' : (id ?? '?');
    return `${name}${a.requestor ? '*' : ''}`;
  });

let filed: string;

describe('a requester files a request from the SDK', () => {
  it('patient-portal gets an id, status, received time and a due date 30 days on; every holder answers into one Bundle', async () => {
    const summary = await portal.requestAccess(`Patient/${P}`);
    filed = summary.id;
    expect(summary).toEqual({
      id: expect.stringMatching(/^ar-[0-9a-f-]{36}$/) as unknown,
      status: 'complete',
      receivedAt: new Date(clock).toISOString(),
      due: new Date(clock + ACCESS_DUE_MS).toISOString(),
    });
    // The same request as an operator's: in KV phi_access, with every holding service asked, and who filed it.
    const stored = await desk.store.get(summary.id);
    expect(stored.requester).toBe('patient-portal');
    expect(Object.keys(stored.services)).toEqual(HOLDERS);
    const bundle = await loadBundle(desk.store, accessKey(stack.secrets), stored, clock);
    expect(bundle.entry?.map((e) => e.resource?.meta?.source)).toEqual(HOLDERS.map((s) => `urn:example:${s}`));
  });

  it('reads the status of its own request', async () => {
    expect(await portal.accessStatus(filed)).toEqual({
      id: filed,
      status: 'complete',
      receivedAt: new Date(clock).toISOString(),
      due: new Date(clock + ACCESS_DUE_MS).toISOString(),
    });
  });

  it('the audit trail records the portal as the requestor of the created step', async () => {
    const created = (await auditEvents()).find(
      (e) => e.subtype?.[0]?.code === 'created' && e.entity?.some((x) => x.what?.identifier?.value === filed),
    );
    expect(created === undefined ? [] : who(created)).toEqual(['patient-portal*', 'broker', ...HOLDERS]);
    expect(created?.purposeOfEvent?.[0]?.coding?.[0]?.code).toBe('PATRQT');
  });
});

describe("refusals: the broker's own checks, each with a stable code, none creating a request", () => {
  let before: number;
  beforeAll(async () => {
    before = (await desk.list(false)).length;
  });

  it('a service that is no access requester (billing): E_ACCESS_NOT_ALLOWED', async () => {
    await expect(billing.requestAccess(`Patient/${P}`)).rejects.toMatchObject({
      code: 'E_ACCESS_NOT_ALLOWED',
      path: 'iss',
      message: "iss: billing is not among the catalog's access requesters (subjects/access.yaml)",
    });
    await expect(billing.accessStatus(filed)).rejects.toMatchObject({ code: 'E_ACCESS_NOT_ALLOWED', path: 'iss' });
  });

  it("a patient reference not in the catalog's form: E_PATIENT_UNRESOLVED, never quoting it", async () => {
    const err = await portal.requestAccess(`${P}-bare`).then(
      () => undefined,
      (e: unknown) => e as Error & { code: string },
    );
    expect(err).toMatchObject({ code: 'E_PATIENT_UNRESOLVED', path: 'patient' });
    expect(err?.message).not.toContain(P);
  });

  it("the status of a request the portal did not file (an operator's): E_ACCESS_NOT_ALLOWED; an unknown id: E_ACCESS_UNKNOWN", async () => {
    const operators = await desk.create(`Patient/${P}`);
    before += 1;
    await expect(portal.accessStatus(operators.id)).rejects.toMatchObject({ code: 'E_ACCESS_NOT_ALLOWED', path: 'id' });
    await expect(portal.accessStatus('ar-00000000-0000-4000-8000-000000000000')).rejects.toMatchObject({
      code: 'E_ACCESS_UNKNOWN',
    });
    await expect(portal.accessStatus('not-an-id')).rejects.toMatchObject({ code: 'E_ACCESS_UNKNOWN', path: 'id' });
  });

  it("a bad signature (E_SIGNATURE) and another service's envelope on the portal's subject (E_SENDER_MISMATCH)", async () => {
    const nc = await stack.connect('raw');
    const keyring = (service: string) => new Keyring(stack.keys(service), stack.peers);
    const brokerKeys = stack.peers
      .filter((k) => k.service === BROKER_ID && k.use === 'sig')
      .map((k) => keyring('patient-portal').signingPublicKey(k.kid));
    const send = async (service: string, signedBy: string, sig?: string) => {
      const sealed = sealAccessCommand({
        id: `raw-${signedBy}`,
        service,
        command: { op: 'create', patient: `Patient/${P}` },
        now: Date.now(),
        signer: stack.keys(service).sign,
        keyring: keyring(service),
      });
      const h = natsHeaders();
      h.set(HEADERS.signature, sig ?? sealed.sig);
      const m = await nc.request(subjects.accessRequest(signedBy), sealed.bytes, { headers: h, timeout: 10_000 });
      return () =>
        openAccessReply(m.data, m.headers?.get(HEADERS.signature) || undefined, brokerKeys, `raw-${signedBy}`);
    };
    const other = sealAccessCommand({
      id: 'x',
      service: 'patient-portal',
      command: { op: 'status', id: filed },
      now: Date.now(),
      signer: stack.keys('patient-portal').sign,
      keyring: keyring('patient-portal'),
    });
    expect(await send('patient-portal', 'patient-portal', other.sig)).toThrow(
      expect.objectContaining({ code: 'E_SIGNATURE' }) as Error,
    );
    expect(await send('billing', 'patient-portal')).toThrow(
      expect.objectContaining({ code: 'E_SENDER_MISMATCH', path: 'iss' }) as Error,
    );
    await nc.close();
  });

  it('a captured request sent again: E_REPLAY (its id is claimed once in phi_seen), no second request', async () => {
    const nc = await stack.connect('replayer');
    const keyring = new Keyring(stack.keys('patient-portal'), stack.peers);
    const brokerKeys = stack.peers
      .filter((k) => k.service === BROKER_ID && k.use === 'sig')
      .map((k) => keyring.signingPublicKey(k.kid));
    const sealed = sealAccessCommand({
      id: 'replayed-1',
      service: 'patient-portal',
      command: { op: 'status', id: filed },
      now: Date.now(),
      signer: stack.keys('patient-portal').sign,
      keyring,
    });
    const h = natsHeaders();
    h.set(HEADERS.signature, sealed.sig);
    const ask = async () => {
      const m = await nc.request(subjects.accessRequest('patient-portal'), sealed.bytes, {
        headers: h,
        timeout: 10_000,
      });
      return () => openAccessReply(m.data, m.headers?.get(HEADERS.signature) || undefined, brokerKeys, 'replayed-1');
    };
    expect((await ask())()).toMatchObject({ id: filed });
    expect(await ask()).toThrow(expect.objectContaining({ code: 'E_REPLAY', path: 'id' }) as Error);
    await nc.close();
  });

  it('created nothing, and each refusal is audited with the service that asked and the code', async () => {
    expect((await desk.list(false)).length).toBe(before);
    const refused = (await auditEvents()).filter((e) => e.subtype?.[0]?.code === 'refused');
    expect(refused.map((e) => [who(e).join(','), e.outcome, e.outcomeDesc])).toEqual([
      ['billing*,broker', '4', 'access refused: E_ACCESS_NOT_ALLOWED at iss'],
      ['billing*,broker', '4', 'access refused: E_ACCESS_NOT_ALLOWED at iss'],
      ['patient-portal*,broker', '4', 'access refused: E_PATIENT_UNRESOLVED at patient'],
      ['patient-portal*,broker', '4', 'access refused: E_ACCESS_NOT_ALLOWED at id'],
      ['patient-portal*,broker', '4', 'access refused: E_ACCESS_UNKNOWN at id'],
      ['patient-portal*,broker', '4', 'access refused: E_ACCESS_UNKNOWN at id'],
      ['patient-portal*,broker', '4', 'access refused: E_SIGNATURE'],
      ['patient-portal*,broker', '4', 'access refused: E_SENDER_MISMATCH at iss'],
      ['patient-portal*,broker', '4', 'access refused: E_REPLAY at id'],
    ]);
    expect(
      refused.every((e) => e.type.code === '110110' && e.purposeOfEvent?.[0]?.coding?.[0]?.code === 'PATRQT'),
    ).toBe(true);
  });
});

it('the patient id is nowhere in clear: subjects, headers, bytes on the wire, logs, audit events', async () => {
  expect(wire.some((w) => w.subject === subjects.accessRequest('patient-portal'))).toBe(true);
  const wireText = wire.map((w) => `${w.subject}\n${w.headers}\n${w.data}`).join('\n');
  const auditText = JSON.stringify(await auditEvents());
  for (const planted of [P, FAMILY]) {
    expect(wireText, planted).not.toContain(planted);
    expect(stack.logs.text(), planted).not.toContain(planted);
    expect(auditText, planted).not.toContain(planted);
  }
  expect(stack.logs.records().filter((r) => r['event'] === 'access.service.refused').length).toBe(9);
});
