// Key lifecycle on the key directory (issue 16, docs/keys.md), against one mTLS nats-server: the operator rotates a
// publisher and a subscriber under a steady publish load (every message delivered once, both versions accepted in
// the overlap, the old one refused after it); a directory entry signed by another key is refused and alerted while
// the previous keys stay in force; `keys rotate --broker` and `--operator` move the audit chains' checkpoints to the
// new kid without a restart and `audit verify` accepts both; a revoked key's message is rejected E_KEY_REVOKED,
// quarantined, audited, alerted; a checkpoint signed with a revoked audit key fails `audit verify` E_KEY_REVOKED.
import { PassThrough } from 'node:stream';
import { headers as natsHeaders, type NatsConnection } from 'nats';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkpointPayload, decodeRecord, encodeCheckpointRecord, recordHash } from '../../src/audit/record.js';
import { runAuditVerify, type AuditVerifyReport } from '../../src/cli/audit.js';
import { runKeysRevoke, runKeysRotate } from '../../src/cli/keys.js';
import { runRegistryShow } from '../../src/cli/registry.js';
import { signDetached } from '../../src/crypto/sign.js';
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
import { HEADERS, STREAMS, subjects } from '../../src/wire/names.js';
import { fhirSchemaErrors } from '../helpers/fhir-schema.js';
import { ReceiptLog } from '../helpers/receipts.js';
import { Waiter, startTestStack, type TestStack } from '../helpers/stack.js';

const OVERLAP_MS = 10 * 60_000;
let stack: TestStack;
let root: OperatorRootKey;
let signing: OperatorRootKey;
let broker: Broker | undefined;
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
  // Checkpoints every 10 records, so the chains show the rotations' kids without waiting for the checkpoint timer.
  stack = await startTestStack({ broker: false, config: { auditCheckpointEvery: 10 } });
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

/** Runs a CLI function (the code the `phi-broker` command runs) and returns what it printed. */
async function printed(fn: (out: PassThrough) => Promise<unknown>): Promise<string> {
  const out = new PassThrough();
  let text = '';
  out.on('data', (c: Buffer) => (text += c.toString('utf8')));
  await fn(out);
  out.end();
  return text;
}

/** `audit verify --json` over PHI_AUDIT: its exit code and report. */
async function auditVerify(): Promise<{ code: number; report: AuditVerifyReport }> {
  let code = -1;
  const text = await printed(async (out) => {
    code = await runAuditVerify(stack.config, { stream: STREAMS.audit, json: true }, { out, err: out });
  });
  return { code, report: JSON.parse(text) as AuditVerifyReport };
}

/** Every checkpoint in PHI_AUDIT, in stream order: its chain, seq and kid. */
async function checkpoints(): Promise<{ chain: string; seq: number; kid: string }[]> {
  const jsm = await inspector.jetstreamManager();
  const { state } = await jsm.streams.info(STREAMS.audit);
  const out: { chain: string; seq: number; kid: string }[] = [];
  for (let seq = state.first_seq; seq <= state.last_seq && seq > 0; seq++) {
    const r = decodeRecord((await jsm.streams.getMessage(STREAMS.audit, { seq })).data);
    if (r?.checkpoint !== undefined) out.push({ chain: r.chain, seq: r.seq, kid: r.checkpoint.kid });
  }
  return out;
}

describe('audit keys follow rotations', () => {
  it('keys rotate --operator: the CLI chains before and after carry each kid; audit verify passes, also once the old kid is revoked', async () => {
    const operatorKeys = (await listDirectory(operator, root)).filter((r) => r.party === 'operator');
    expect(operatorKeys.map((r) => [r.kind, r.kid, r.status])).toEqual([
      ['operator', 'operator:sig:1', 'active'],
      ['operator', 'operator:enc:1', 'active'],
    ]);
    await runRegistryShow(stack.config, 'Patient/p-key-1', { json: true }, new PassThrough());
    expect(await printed((out) => runKeysRotate(stack.config, { operator: true, overlap: '10m' }, out))).toMatch(
      /^rotated operator: current operator:sig:2 and operator:enc:2; previous keys retiring until /,
    );
    await runRegistryShow(stack.config, 'Patient/p-key-1', { json: true }, new PassThrough());
    // One chain per command run, each closed by its final checkpoint: the first under sig:1, the second under sig:2.
    const cli = (await checkpoints()).filter((c) => c.chain.startsWith('cli.'));
    expect(new Set(cli.map((c) => c.chain)).size).toBe(2);
    expect(cli.map((c) => c.kid)).toEqual(['operator:sig:1', 'operator:sig:2']);
    const before = await auditVerify();
    expect(before.report.broken).toBeUndefined();
    expect(before.code).toBe(0);
    // Revoking the old kid does not withdraw what it signed before: the first chain still verifies.
    expect(
      await printed((out) => runKeysRevoke(stack.config, { kid: 'operator:sig:1', reason: 'drill' }, out)),
    ).toMatch(/^revoked operator:sig:1 at /);
    const after = await auditVerify();
    expect(after.report.broken).toBeUndefined();
    expect(after.code).toBe(0);
    // Both writers' keys were judged by their directory entries (validity at each checkpoint's time).
    expect(after.report.keySources).toEqual([
      { party: 'broker', source: 'directory' },
      { party: 'operator', source: 'directory' },
    ]);
    expect(after.report.chains.filter((c) => c.chain.startsWith('cli.')).every((c) => c.closed)).toBe(true);
  });

  it('keys rotate --broker while messages flow: later checkpoints carry broker:sig:2 without a restart; audit verify passes', async () => {
    const brokerChain = (broker as Broker).auditTrail.instanceId;
    const earlier = (await checkpoints()).filter((c) => c.chain === brokerChain);
    expect(earlier.length).toBeGreaterThan(0);
    expect(new Set(earlier.map((c) => c.kid))).toEqual(new Set(['broker:sig:1']));
    expect(await printed((out) => runKeysRotate(stack.config, { broker: true, overlap: '10m' }, out))).toMatch(
      /^rotated broker: current broker:sig:2 and broker:enc:2;/,
    );
    await stack.logs.until(
      (l) => l['event'] === 'keys.own.rotated' && l['kid'] === 'broker:sig:2' && l['client'] === undefined,
      'the broker loaded its new key',
    );
    // Messages until a checkpoint of the broker chain carries the new kid (bounded: 10 rounds of 5).
    let after: { chain: string; seq: number; kid: string }[] = [];
    for (let round = 0; round < 10 && !after.some((c) => c.kid === 'broker:sig:2'); round++) {
      for (let i = 0; i < 5; i++) {
        const r = await pub.publish({
          resourceType: 'Patient',
          id: `p-audit-${round}-${i}`,
          name: [{ family: 'Chainley' }],
        });
        expect(r.status).toBe('accepted');
      }
      after = (await checkpoints()).filter((c) => c.chain === brokerChain).slice(earlier.length);
    }
    // After the first checkpoint under the new kid, no checkpoint uses the old one.
    const first = after.findIndex((c) => c.kid === 'broker:sig:2');
    expect(first).toBeGreaterThanOrEqual(0);
    expect(
      after
        .slice(first)
        .map((c) => c.kid)
        .every((k) => k === 'broker:sig:2'),
    ).toBe(true);
    const { code, report } = await auditVerify();
    expect(report.broken).toBeUndefined();
    expect(code).toBe(0);
    expect(report.chains.find((c) => c.chain === brokerChain)?.checkpoints).toBe(earlier.length + after.length);
    // The running broker's own integrity check (readiness) verifies its heads witnessed under the new key too.
    expect(await (broker as Broker).auditTrail.checkIntegrity()).toEqual({ ok: true, problems: [] });
  }, 60_000);
});

describe('a rotation whose key file has not reached this host', () => {
  it('the publisher keeps signing with its previous version through the overlap, and logs keys.own.missing', async () => {
    // The versions this host holds, read once: the rotation below writes ehr:sig:2 where this host never looks.
    const held = readServiceKeyVersions(stack.keysDir, 'ehr');
    const kids: string[] = [];
    const tap = inspector.subscribe('phi.ingest.ehr.>', {
      callback: (_e, m) => kids.push((JSON.parse(m.string()) as { kid: string }).kid),
    });
    await inspector.flush();
    const stale = await PhiClient.connect({
      nc: await stack.connectAs(serviceIdentity('ehr'), 'ehr-stale'),
      ownsConnection: true,
      service: 'ehr',
      keys: held,
      peers: stack.peers,
      publishDeadlineMs: 20_000,
      logger: stack.logger.child({ client: 'ehr-stale' }),
      keyDirectory: { root, reloadOwnKeys: () => held },
    });
    try {
      expect((await rotateParty(operator, stack.keysDir, signing, 'ehr', OVERLAP_MS)).kid).toBe('ehr:sig:2');
      await stack.logs.until(
        (l) => l['event'] === 'keys.own.missing' && l['client'] === 'ehr-stale' && l['kid'] === 'ehr:sig:2',
        'the host without the new version noticed',
      );
      const observation = {
        resourceType: 'Observation' as const,
        id: 'obs-stale-host',
        status: 'final' as const,
        code: { text: 'pulse' },
        subject: { reference: 'Patient/p-stale-host' },
      };
      expect(await stale.publish(observation)).toMatchObject({ status: 'accepted' });
      await inspector.flush();
      expect(kids).toEqual(['ehr:sig:1']);
    } finally {
      tap.unsubscribe();
      await stale.close();
    }
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
    // (The operator key's revocation above raised one too.)
    const ofRegistration = (a: { rule: string; json: string }): boolean =>
      a.rule === 'key-revoked' && a.json.includes('registration:sig:2');
    await waiter.until(() => alerts.some(ofRegistration), 20_000, 'the key-revoked alert');
    const alert = JSON.parse(alerts.find(ofRegistration)?.json ?? '{}') as Record<string, unknown>;
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

describe('a checkpoint signed with a revoked audit key', () => {
  it('appended to the broker chain after broker:sig:1 is revoked: audit verify fails E_KEY_REVOKED at that record', async () => {
    await runKeysRevoke(stack.config, { kid: 'broker:sig:1', reason: 'drill' }, new PassThrough());
    // Checkpoints signed with broker:sig:1 before its revocation still verify.
    expect((await auditVerify()).code).toBe(0);
    const chain = (broker as Broker).auditTrail.instanceId;
    await broker?.stop(); // its final checkpoint, under broker:sig:2
    broker = undefined;
    const jsm = await inspector.jetstreamManager();
    const last = await jsm.streams.getMessage(STREAMS.audit, { last_by_subj: subjects.audit(chain) });
    const head = decodeRecord(last.data)?.seq as number;
    const prev = recordHash(last.data);
    const old = readServiceKeyVersions(stack.keysDir, BROKER_ID).find((v) => v.sign.kid === 'broker:sig:1');
    const sig = Buffer.from(
      signDetached(checkpointPayload(chain, head, prev), old?.sign.secretKey as Uint8Array),
    ).toString('base64url');
    await inspector
      .jetstream()
      .publish(
        subjects.audit(chain),
        encodeCheckpointRecord(chain, head + 1, prev, Date.now(), { head, kid: 'broker:sig:1', sig }),
        { expect: { streamName: STREAMS.audit, lastSubjectSequence: last.seq } },
      );
    const { code, report } = await auditVerify();
    expect(code).toBe(1);
    expect(report.broken).toMatchObject({ kind: 'checkpoint', chain, seq: head + 1, code: 'E_KEY_REVOKED' });
    expect(report.broken?.message).toContain('broker:sig:1');
  }, 60_000);
});
