// Key lifecycle on the key directory (issue 16, docs/keys.md), against one mTLS nats-server: the operator rotates a
// publisher and a subscriber under a steady publish load (every message delivered once, both versions accepted in
// the overlap, the old one refused after it); a directory entry signed by another key is refused and alerted while
// the previous keys stay in force; a revoked key's message is rejected E_KEY_REVOKED, quarantined, audited, alerted.
import { headers as natsHeaders, type NatsConnection } from 'nats';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeRecord } from '../../src/audit/record.js';
import { Broker } from '../../src/broker/broker.js';
import { decodeRecordHeader } from '../../src/broker/quarantine.js';
import { entryFromVersions, operatorRootKey, signEntry, type OperatorRootKey } from '../../src/crypto/key-directory.js';
import { Keyring } from '../../src/crypto/keyring.js';
import { getSodium } from '../../src/crypto/sodium.js';
import { sealEnvelope } from '../../src/envelope/seal.js';
import { openKeyDirectoryBucket } from '../../src/nats/key-directory.js';
import {
  directoryRootKey,
  ensureOperatorRootKey,
  listDirectory,
  publishDirectory,
  revokeKey,
  rotateParty,
} from '../../src/runtime/key-directory.js';
import { readServiceKeyVersions } from '../../src/runtime/key-files.js';
import { PhiClient, type PublishResult } from '../../src/sdk/client.js';
import { ADMIN_IDENTITY, BROKER_IDENTITY, OPERATOR_IDENTITY, serviceIdentity } from '../../src/tls/identity.js';
import { BROKER_ID } from '../../src/wire/ids.js';
import { HEADERS, STREAMS } from '../../src/wire/names.js';
import { fhirSchemaErrors } from '../helpers/fhir-schema.js';
import { ReceiptLog } from '../helpers/receipts.js';
import { Waiter, startTestStack, type TestStack } from '../helpers/stack.js';

const OVERLAP_MS = 10 * 60_000;
let stack: TestStack;
let root: OperatorRootKey;
let signing: OperatorRootKey;
let broker: Broker;
let operator: NatsConnection;
let inspector: NatsConnection;
let pub: PhiClient;
let sub: PhiClient;
/** The broker's key clock: real time plus `skew`, so the overlap can be passed without waiting for it. */
let skew = 0;
const waiter = new Waiter();
const alerts: { rule: string; json: string }[] = [];
/** Signing kids of every ingest message and KEK ids of every notification delivery seen on the wire. */
const ingestKids = new Map<string, number>();
const deliveryKeks = new Map<string, number>();
let receipts: ReceiptLog;

const count = (m: Map<string, number>, k: string): void => void m.set(k, (m.get(k) ?? 0) + 1);

async function client(service: string): Promise<PhiClient> {
  return PhiClient.connect({
    nc: await stack.connectAs(serviceIdentity(service), service),
    ownsConnection: true,
    service,
    keys: stack.keys(service),
    peers: stack.peers,
    publishDeadlineMs: 20_000,
    logger: stack.logger.child({ client: service }),
    keyDirectory: { root, reloadOwnKeys: () => readServiceKeyVersions(stack.keysDir, service) },
  });
}

beforeAll(async () => {
  stack = await startTestStack({ broker: false });
  ({ root: signing } = await ensureOperatorRootKey(stack.keysDir));
  const admin = await stack.connectAs(ADMIN_IDENTITY, 'provision-keys');
  expect(await publishDirectory(admin, stack.catalog, stack.keysDir, signing, { create: true })).toContain(BROKER_ID);
  await admin.close();
  ({ root } = await directoryRootKey(stack.catalog, stack.keysDir));
  broker = await Broker.start({
    config: stack.config,
    catalog: stack.catalog,
    nc: await stack.connectAs(BROKER_IDENTITY, 'broker'),
    keys: stack.keys(BROKER_ID),
    peers: stack.peers,
    secrets: stack.secrets,
    logger: stack.logger,
    keyClock: () => Date.now() + skew,
    keyDirectory: { root, reloadOwnKeys: () => readServiceKeyVersions(stack.keysDir, BROKER_ID) },
  });
  operator = await stack.connectAs(OPERATOR_IDENTITY, 'operator');
  inspector = await stack.connect('inspector');
  receipts = new ReceiptLog(inspector);
  inspector.subscribe('phi.alert.>', {
    callback: (_e, m) => {
      alerts.push({ rule: m.subject.slice('phi.alert.'.length), json: m.string() });
      waiter.signal();
    },
  });
  inspector.subscribe('phi.ingest.registration.>', {
    callback: (_e, m) => count(ingestKids, (JSON.parse(m.string()) as { kid: string }).kid),
  });
  inspector.subscribe('phi.deliver.notification.>', {
    callback: (_e, m) => {
      const env = JSON.parse(m.string()) as { keys: { kek: string }[] };
      for (const k of env.keys) count(deliveryKeks, k.kek);
    },
  });
  await inspector.flush();
  pub = await client('registration');
  sub = await client('notification');
}, 60_000);

afterAll(async () => {
  await pub?.close();
  await sub?.close();
  await broker?.stop();
  await operator?.close();
  await inspector?.close();
  await stack?.stop();
});

/** A Patient sealed and signed by `registration` with `signer`'s key, sent straight to PHI_INGEST. */
async function forge(signKid: string): Promise<string> {
  const versions = readServiceKeyVersions(stack.keysDir, 'registration');
  const version = versions.find((v) => v.sign.kid === signKid);
  if (version === undefined) throw new Error(`no key ${signKid}`);
  const ring = new Keyring(version, stack.peers);
  const id = crypto.randomUUID();
  const sealed = sealEnvelope({
    id,
    iss: 'registration',
    iat: Date.now(),
    typ: 'Patient',
    resource: { resourceType: 'Patient', id: `forged-${id.slice(0, 8)}`, name: [{ family: 'Keyvale' }] },
    signer: version.sign,
    recipients: [{ id: BROKER_ID, kek: ring.kekFor(ring.encryptionKeyOf(BROKER_ID).kid) }],
  });
  const h = natsHeaders();
  h.set(HEADERS.signature, sealed.sig);
  h.set('Nats-Msg-Id', id);
  await inspector.jetstream().publish('phi.ingest.registration.Patient', sealed.bytes, { headers: h });
  return id;
}

describe('rotation under load', () => {
  it('rotating the publisher and the subscriber mid-load: each message delivered once, both versions in use', async () => {
    const got = new Map<string, number>();
    await sub.subscribe('Patient', ({ provenance }) => {
      got.set(provenance.messageId, (got.get(provenance.messageId) ?? 0) + 1);
      waiter.signal();
    });
    const results: PublishResult[] = [];
    let rotated = false;
    let n = 0;
    const load = (async () => {
      let afterRotation = 0;
      while (!rotated || afterRotation < 40) {
        const batch = await Promise.all(
          [0, 1, 2, 3].map(() => {
            n += 1;
            return pub.publish({ resourceType: 'Patient', id: `p-key-${n}`, name: [{ family: `Keyhill${n}` }] });
          }),
        );
        results.push(...batch);
        if (rotated) afterRotation += batch.length;
        waiter.signal();
      }
    })();
    await waiter.until(() => results.length >= 40, 60_000, '40 publishes before the rotation');
    const rp = await rotateParty(operator, stack.keysDir, signing, 'registration', OVERLAP_MS);
    const rs = await rotateParty(operator, stack.keysDir, signing, 'notification', OVERLAP_MS);
    expect([rp.kid, rs.encKid]).toEqual(['registration:sig:2', 'notification:enc:2']);
    // Each client picks up its own new version from the watch.
    await stack.logs.until(
      (l) => l['event'] === 'keys.own.rotated' && l['kid'] === 'registration:sig:2',
      'the publisher loaded its new key',
    );
    await stack.logs.until(
      (l) => l['event'] === 'keys.own.rotated' && l['kid'] === 'notification:sig:2',
      'the subscriber loaded its new key',
    );
    rotated = true;
    await load;

    expect(results.filter((r) => r.status === 'rejected')).toEqual([]);
    const ids = results.map((r) => r.id);
    expect(new Set(ids).size).toBe(ids.length);
    await waiter.until(() => ids.every((id) => got.has(id)), 60_000, 'every message delivered');
    expect(ids.length).toBeGreaterThanOrEqual(80);
    expect([...got.values()].every((c) => c === 1)).toBe(true);
    expect(got.size).toBe(ids.length);
    // Both publisher versions signed messages, and deliveries were sealed to both subscriber versions.
    expect(ingestKids.get('registration:sig:1')).toBeGreaterThan(0);
    expect(ingestKids.get('registration:sig:2')).toBeGreaterThan(0);
    expect(deliveryKeks.get('broker:enc:1~notification:enc:1')).toBeGreaterThan(0);
    expect(deliveryKeks.get('broker:enc:1~notification:enc:2')).toBeGreaterThan(0);
  }, 120_000);

  it('within the overlap the old version is accepted; after it, E_KEY_UNKNOWN; keys list shows the statuses', async () => {
    const within = await forge('registration:sig:1');
    expect(await receipts.next(within)).toMatchObject({ status: 'accepted' });
    skew = OVERLAP_MS + 1000;
    const after = await forge('registration:sig:1');
    expect(await receipts.next(after)).toMatchObject({ status: 'rejected', code: 'E_KEY_UNKNOWN' });
    const current = await forge('registration:sig:2');
    expect(await receipts.next(current)).toMatchObject({ status: 'accepted' });
    skew = 0;
    const rows = await listDirectory(operator, root, Date.now() + OVERLAP_MS + 1000);
    const reg = rows.filter((r) => r.party === 'registration').map((r) => [r.kid, r.status]);
    expect(reg).toEqual([
      ['registration:sig:1', 'retired'],
      ['registration:enc:1', 'retired'],
      ['registration:sig:2', 'active'],
      ['registration:enc:2', 'active'],
    ]);
    expect(rows.find((r) => r.kid === 'registration:sig:1')?.retired).toMatch(/^\d{4}-\d\d-\d\dT/);
  });
});

describe('a tampered directory entry', () => {
  it('signed by another key: refused, logged with its code, alerted; the previous keys stay in force', async () => {
    const seed = getSodium().randombytes_buf(32);
    const impostor = operatorRootKey(getSodium().crypto_sign_seed_keypair(seed).publicKey, seed);
    // An attacker's own key for registration, at a seq far above the one in force.
    const { generateServiceKeys } = await import('../../src/crypto/keypairs.js');
    const forged = { ...entryFromVersions('service', [generateServiceKeys('registration', 9)], Date.now()), seq: 1000 };
    const admin = await stack.connectAs(ADMIN_IDENTITY, 'tamper');
    const kv = await openKeyDirectoryBucket(admin);
    await kv.put('registration', await signEntry(forged, impostor));
    await admin.close();
    await stack.logs.until(
      (l) => l['event'] === 'keys.directory.refused' && l['party'] === 'registration' && l['client'] === undefined,
      'the broker refused the entry',
    );
    const refused = stack.logs.records().find((l) => l['event'] === 'keys.directory.refused');
    expect(refused).toMatchObject({ code: 'E_KEY_DIRECTORY_INVALID', path: 'registration' });
    await waiter.until(() => alerts.some((a) => a.rule === 'key-directory-refused'), 20_000, 'the alert');
    // The publisher's current key still verifies at the broker, and the forged version is unknown.
    const r = await pub.publish({ resourceType: 'Patient', id: 'after-tamper', name: [{ family: 'Steadfast' }] });
    expect(r.status).toBe('accepted');
    const forgedKid = await forge('registration:sig:2');
    expect(await receipts.next(forgedKid)).toMatchObject({ status: 'accepted' });
    // Readers refuse it too: the operator's list fails with the code rather than show the impostor's keys.
    await expect(listDirectory(operator, root)).rejects.toMatchObject({ code: 'E_KEY_DIRECTORY_INVALID' });
    // Put the last good entry back on top (its seq is the one in force, so readers skip it) for the next test.
    const restore = await stack.connectAs(ADMIN_IDENTITY, 'restore');
    const kv2 = await openKeyDirectoryBucket(restore);
    const history = await kv2.history({ key: 'registration' });
    const entries: string[] = [];
    for await (const e of history) entries.push(e.string());
    await kv2.put('registration', entries[entries.length - 2] as string);
    await restore.close();
  });
});

describe('revocation', () => {
  it('a message signed with the revoked key after revocation: E_KEY_REVOKED receipt, quarantine, AuditEvent, alert', async () => {
    const jsm = await inspector.jetstreamManager();
    const auditFrom = (await jsm.streams.info(STREAMS.audit)).state.last_seq + 1;
    const { revokedAt } = await revokeKey(operator, signing, 'registration:sig:2', 'test: key exposed');
    await stack.logs.until(
      (l) =>
        l['event'] === 'keys.directory.applied' &&
        l['party'] === 'registration' &&
        l['client'] === undefined &&
        (l['seq'] as number) >= 3,
      'the broker applied the revocation',
    );
    const id = await forge('registration:sig:2');
    const receipt = await receipts.next(id);
    expect(receipt).toMatchObject({ status: 'rejected', code: 'E_KEY_REVOKED', path: 'kid' });
    expect(Date.parse(revokedAt)).toBeLessThanOrEqual(Date.now());

    // Quarantined with its code.
    const { state } = await jsm.streams.info(STREAMS.quarantine);
    const codes: string[] = [];
    for (let seq = state.first_seq; seq <= state.last_seq && seq > 0; seq++) {
      const m = await jsm.streams.getMessage(STREAMS.quarantine, { seq });
      const record = decodeRecordHeader(m.header.get(HEADERS.record));
      if (record.messageId === id) codes.push(record.code);
    }
    expect(codes).toEqual(['E_KEY_REVOKED']);

    // Alerted on phi.alert.key-revoked, and both the rejection and the alert are AuditEvents in the chain.
    await waiter.until(() => alerts.some((a) => a.rule === 'key-revoked'), 20_000, 'the key-revoked alert');
    const alert = JSON.parse(alerts.find((a) => a.rule === 'key-revoked')?.json ?? '{}') as Record<string, unknown>;
    expect(fhirSchemaErrors(alert)).toEqual([]);
    expect(JSON.stringify(alert)).toContain('registration:sig:2');
    expect(JSON.stringify(alert)).not.toContain('test: key exposed');
    // The alert's AuditEvent is appended just after its announcement: read the new records until it is there (bounded).
    const events: string[] = [];
    let next = auditFrom;
    for (let reads = 0; reads < 200 && !events.some((e) => e.includes('key-revoked')); reads++) {
      const last = (await jsm.streams.info(STREAMS.audit)).state.last_seq;
      for (; next <= last; next++) {
        const m = await jsm.streams.getMessage(STREAMS.audit, { seq: next });
        events.push(...(decodeRecord(m.data)?.events ?? []).map((e) => JSON.stringify(e)));
      }
    }
    expect(events.some((e) => e.includes('E_KEY_REVOKED'))).toBe(true);
    expect(events.some((e) => e.includes('key-revoked'))).toBe(true);
  });
});
