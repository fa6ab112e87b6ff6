// The read-only auditor identity (src/nats/permissions.ts auditorPermissions) on a real nats-server running the
// generated config: what each read-only operator command reads (audit verify|query|export, registry show,
// disclosures, access status|list|export, consent list, quarantine list) works as the auditor with no refusal in
// the server's log, and every write it might try is refused by the server itself (the permission error observed).
import { type NatsConnection } from 'nats';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AccessDesk } from '../../src/access/desk/desk.js';
import { AccessStore } from '../../src/access/desk/store.js';
import { auditStreamState, readAuditRecords } from '../../src/audit/read.js';
import { verifyAuditRecords } from '../../src/audit/verify.js';
import { ensureBrokerSecrets } from '../../src/runtime/broker-secrets.js';
import { BROKER_ID } from '../../src/wire/ids.js';
import { ConsentStore } from '../../src/consent/store.js';
import { readJwks, readServiceKeys } from '../../src/runtime/key-files.js';
import { readDisclosures } from '../../src/disclosures/read.js';
import { createLogger } from '../../src/log/log.js';
import { KV_BUCKETS, STREAMS, subjects } from '../../src/wire/names.js';
import { patientPseudonym } from '../../src/registry/pseudonym.js';
import { RegistryStore } from '../../src/registry/store.js';
import { PhiClient } from '../../src/sdk/client.js';
import { ADMIN_IDENTITY, AUDITOR_IDENTITY, BROKER_IDENTITY } from '../../src/tls/identity.js';
import { publishDenied, startMtlsStack, type MtlsStack } from '../helpers/mtls.js';
import { LogCapture, Waiter } from '../helpers/stack.js';

let stack: MtlsStack;
let auditor: NatsConnection;
const logs = new LogCapture();
const logger = createLogger({ level: 'debug', destination: logs });
const clients: PhiClient[] = [];
const PATIENT = 'Patient/p-auditor-1';
let requestId = '';
let consentId = '';

const bytes = new TextEncoder().encode('{}');
const serverLogSize = (): number => stack.log().length;
const logWaiter = new Waiter();
let sentinels = 0;

/**
 * The server's refusals of the auditor since `from`, but for the delete of its readers' own ephemeral consumers
 * (refused, and swallowed by the reader: the consumer goes by its inactive threshold). The server logs a refusal
 * as it handles the message and handles a client's messages in order, so once a refused sentinel publish sent
 * last shows in the log, every refusal before it is there too.
 */
async function refusalsSince(from: number): Promise<string[]> {
  const sentinel = `phi.audit.sentinel${(sentinels += 1)}`;
  auditor.publish(sentinel, bytes);
  await auditor.flush();
  await logWaiter.until(() => stack.log().slice(from).includes(`"${sentinel}"`), 10_000, `server log ${sentinel}`);
  const lines =
    stack
      .log()
      .slice(from)
      .match(/Violation[^\n]*/g) ?? [];
  return lines.filter(
    (l) =>
      !l.includes(`"${sentinel}"`) && !/"\$JS\.API\.CONSUMER\.DELETE\.(PHI_AUDIT|PHI_DISCLOSURES)\.[^".]+"/.test(l),
  );
}

const req = (nc: NatsConnection, subject: string, body: unknown = {}): Promise<unknown> =>
  nc.request(subject, new TextEncoder().encode(JSON.stringify(body)), { timeout: 5_000 });

beforeAll(async () => {
  stack = await startMtlsStack(() => logWaiter.signal());
  await stack.startBroker(logger);
  const client = async (service: string): Promise<PhiClient> => {
    const c = await stack.connectClient(service, logger);
    clients.push(c);
    return c;
  };
  // An immunization from ehr: delivered to public-health (external: a disclosure), recorded in the registry and audited.
  const ehr = await client('ehr');
  const immunization = {
    resourceType: 'Immunization' as const,
    id: 'i-auditor-1',
    status: 'completed' as const,
    vaccineCode: { coding: [{ system: 'http://hl7.org/fhir/sid/cvx', code: '140' }] },
    patient: { reference: PATIENT },
    occurrenceDateTime: '2026-10-01',
  };
  const r = await ehr.publish(immunization);
  expect(r.status).toBe('accepted');
  // About 2 MB: large enough that reading the stored answer back (access export) takes the ordered consumer's flow control.
  const many = Array.from({ length: 1000 }, (_, i) => ({
    resourceType: 'Observation' as const,
    id: `o-${i}`,
    status: 'final' as const,
    code: { text: 'note '.repeat(400) },
    subject: { reference: PATIENT },
  }));
  // What ehr holds (the registry names Immunization: a holder answers with every type it holds), and 2 MB more.
  await ehr.onAccessRequest((ref) => (ref === PATIENT ? [immunization, ...many] : []));
  const secrets = ensureBrokerSecrets(stack.keysDir);
  const desk = await AccessDesk.start({
    nc: await stack.connectAs(BROKER_IDENTITY),
    catalog: stack.catalog,
    keys: readServiceKeys(stack.keysDir, BROKER_ID),
    peers: stack.peers,
    secrets,
    logger,
    retryIntervalMs: 0,
    answerTimeoutMs: 30_000,
  });
  try {
    const request = await desk.create(PATIENT);
    requestId = request.id;
    expect(Object.values(request.services).some((s) => s.state === 'answered')).toBe(true);
  } finally {
    await desk.stop();
  }
  // A restriction, written by the admin (consent add).
  const admin = await stack.connectAs(ADMIN_IDENTITY);
  const consent = await ConsentStore.open(admin, secrets, {
    services: stack.catalog.services.keys(),
    patients: stack.catalog.patients,
  });
  consentId =
    (await consent.add({ patient: PATIENT, denyRecipients: ['analytics'], denyPurposes: [], denyLabels: [] })).consent
      .id ?? '';
  auditor = await stack.connectAs(AUDITOR_IDENTITY);
}, 180_000);

afterAll(async () => {
  for (const c of clients) await c.close().catch(() => undefined);
  await stack?.stop();
});

describe('the auditor reads what the read-only commands read, without one refusal', () => {
  it('audit verify|query|export: the stream state and every record of PHI_AUDIT; the chain verifies', async () => {
    const from = serverLogSize();
    const state = await auditStreamState(auditor);
    expect(state.messages).toBeGreaterThan(0);
    const records = [];
    for await (const rec of readAuditRecords(auditor)) records.push(rec);
    expect(records).toHaveLength(state.messages);
    const keys = new Map(
      readJwks(stack.keysDir)
        .filter((k) => k.service === BROKER_ID && k.use === 'sig')
        .map((k) => [k.kid, k.publicKey]),
    );
    expect(verifyAuditRecords(records, { signingKey: (kid) => keys.get(kid), agedOut: false }).broken).toBeUndefined();
    // Its reader's consumer delete is refused (the consumer goes by its inactive threshold); nothing else is.
    expect(await refusalsSince(from)).toEqual([]);
  });

  it('registry show: the patient record in KV phi_registry', async () => {
    const from = serverLogSize();
    const store = await RegistryStore.open(auditor);
    const record = await store.get(patientPseudonym(ensureBrokerSecrets(stack.keysDir), PATIENT));
    expect(Object.keys(record?.services ?? {}).sort()).toEqual(expect.arrayContaining(['ehr', 'public-health']));
    expect(await refusalsSince(from)).toEqual([]);
  });

  it('disclosures: the delivery to public-health, from PHI_DISCLOSURES', async () => {
    const from = serverLogSize();
    const r = await readDisclosures(
      auditor,
      patientPseudonym(ensureBrokerSecrets(stack.keysDir), PATIENT),
      new Date(0),
    );
    expect(r.disclosures.map((d) => d.record.recipient)).toEqual(['public-health']);
    expect(await refusalsSince(from)).toEqual([]);
  });

  it('access status|list|export: KV phi_access (get, keys) and the sealed answers in phi_access_answers', async () => {
    const from = serverLogSize();
    const store = await AccessStore.open(auditor);
    expect((await store.get(requestId)).id).toBe(requestId);
    expect((await store.list()).map((r) => r.id)).toEqual([requestId]);
    const answered = Object.entries((await store.get(requestId)).services)
      .filter(([, s]) => s.state === 'answered')
      .map(([name]) => name);
    expect(answered.length).toBeGreaterThan(0);
    for (const service of answered) expect((await store.getAnswer(requestId, service))?.length).toBeGreaterThan(0);
    expect(await refusalsSince(from)).toEqual([]);
  });

  it('consent list: the restriction in KV phi_consent (keys, get)', async () => {
    const from = serverLogSize();
    const store = await ConsentStore.open(auditor, ensureBrokerSecrets(stack.keysDir), {
      services: stack.catalog.services.keys(),
      patients: stack.catalog.patients,
    });
    expect((await store.list(PATIENT)).map((s) => s.consent.id)).toEqual([consentId]);
    expect(await refusalsSince(from)).toEqual([]);
  });

  it('quarantine list: the stream state and messages of PHI_QUARANTINE by sequence', async () => {
    const from = serverLogSize();
    const jsm = await auditor.jetstreamManager();
    const { state } = await jsm.streams.info(STREAMS.quarantine);
    expect(state.messages).toBe(0);
    // A sequence with no message: the server answers "no message found" (a JetStream error, not a refusal).
    await expect(jsm.streams.getMessage(STREAMS.quarantine, { seq: 1 })).rejects.toThrow(/no message found/);
    expect(await refusalsSince(from)).toEqual([]);
  });
});

describe('the auditor is refused every write', () => {
  it('KV put/delete in phi_consent and phi_registry', async () => {
    const js = auditor.jetstream();
    for (const bucket of [KV_BUCKETS.consent, KV_BUCKETS.registry]) {
      const kv = await js.views.kv(bucket);
      await publishDenied(kv.put('k', bytes), `$KV.${bucket}.k`);
      await publishDenied(kv.delete('k'), `$KV.${bucket}.k`);
      await publishDenied(kv.purge('k'), `$KV.${bucket}.k`);
    }
  });

  it('publish on ingest, delivery, audit and disclosure subjects', async () => {
    const js = auditor.jetstream();
    for (const subject of [
      subjects.ingest('ehr', 'Immunization'),
      subjects.deliver('public-health', 'Immunization'),
      'phi.audit.x',
      'phi.disclosure.x.public-health',
      'phi.quarantine.ehr',
    ]) {
      await publishDenied(js.publish(subject, bytes), subject);
    }
  });

  it('delete or purge PHI_AUDIT, delete a message of it, update a stream', async () => {
    const jsm = await auditor.jetstreamManager();
    await publishDenied(jsm.streams.delete(STREAMS.audit), `$JS.API.STREAM.DELETE.${STREAMS.audit}`);
    await publishDenied(jsm.streams.purge(STREAMS.audit), `$JS.API.STREAM.PURGE.${STREAMS.audit}`);
    await publishDenied(jsm.streams.deleteMessage(STREAMS.audit, 1), `$JS.API.STREAM.MSG.DELETE.${STREAMS.audit}`);
    const { config } = await jsm.streams.info(STREAMS.audit);
    await publishDenied(
      jsm.streams.update(STREAMS.audit, { ...config, deny_delete: false }),
      `$JS.API.STREAM.UPDATE.${STREAMS.audit}`,
    );
    await publishDenied(
      req(auditor, `$JS.API.STREAM.CREATE.X`, { name: 'X', subjects: ['x.>'] }),
      '$JS.API.STREAM.CREATE.X',
    );
  });

  it('phi.control.access (create, extend, retry go to the broker there)', async () => {
    await publishDenied(req(auditor, subjects.accessControl, { op: 'list', overdue: false }), subjects.accessControl);
  });

  it('a durable consumer through the legacy create subject, and consumer delete', async () => {
    await publishDenied(
      req(auditor, `$JS.API.CONSUMER.DURABLE.CREATE.${STREAMS.audit}.d`, {
        stream_name: STREAMS.audit,
        config: { durable_name: 'd' },
      }),
      `$JS.API.CONSUMER.DURABLE.CREATE.${STREAMS.audit}.d`,
    );
    await publishDenied(
      req(auditor, `$JS.API.CONSUMER.DELETE.${STREAMS.audit}.d`),
      `$JS.API.CONSUMER.DELETE.${STREAMS.audit}.d`,
    );
  });
});
