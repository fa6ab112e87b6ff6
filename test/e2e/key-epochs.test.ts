// Bounded exposure of retained ciphertext (issue 16 item 5, docs/keys.md "Bounded exposure"), against one mTLS
// nats-server: a delivery sealed between the broker's and a subscriber's first encryption keys stays in PHI_DELIVER,
// both are rotated and a second delivery is sealed between their second keys, then `keys prune` destroys both first
// versions: the current delivery opens, the retained one fails E_KEY_DESTROYED (terminated, never handed over), the
// deletion is alerted, and no byte of the destroyed private keys is left in the keys dir. The broker's quarantine key
// follows: the rotation's new version seals the next rejected input without a restart, each record names its version,
// and after the prune `quarantine show --decrypt` of the first version's record is E_KEY_DESTROYED after its facts,
// while the current version's opens. Then two subscribers
// offline through `keys rotate` and past the overlap's end: one opens and acks its whole backlog with its own retired
// key; the other, whose old version was pruned meanwhile, gets E_KEY_DESTROYED per delivery, each terminated.
import { PassThrough, Writable } from 'node:stream';
import type { NatsConnection } from 'nats';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Broker } from '../../src/broker/broker.js';
import { decodeRecordHeader, type QuarantineRecord } from '../../src/broker/quarantine.js';
import { runKeysRotate } from '../../src/cli/keys.js';
import { runQuarantineShow } from '../../src/cli/quarantine.js';
import { ensureBrokerSecrets, openBrokerSecrets } from '../../src/runtime/broker-secrets.js';
import { PLAIN_KEYS } from '../../src/runtime/key-protection.js';
import type { OperatorRootKey } from '../../src/crypto/key-directory.js';
import {
  ciphertextRetentionMs,
  directoryRootKey,
  ensureOperatorRootKey,
  listDirectory,
  publishDirectory,
  pruneParties,
  rotateParty,
} from '../../src/runtime/key-directory.js';
import { readServiceKeyVersions, readServiceKeys } from '../../src/runtime/key-files.js';
import { PhiClient } from '../../src/sdk/client.js';
import { ADMIN_IDENTITY, BROKER_IDENTITY, OPERATOR_IDENTITY, serviceIdentity } from '../../src/tls/identity.js';
import { BROKER_ID } from '../../src/wire/ids.js';
import { HEADERS, STREAMS, deliveryConsumer } from '../../src/wire/names.js';
import { fhirSchemaErrors } from '../helpers/fhir-schema.js';
import { findNeedles, privateNeedles } from '../helpers/key-scan.js';
import { Waiter, startTestStack, type TestStack } from '../helpers/stack.js';

const OVERLAP_MS = 60_000;
let stack: TestStack;
let root: OperatorRootKey;
let signing: OperatorRootKey;
let broker: Broker;
let operator: NatsConnection;
let inspector: NatsConnection;
let pub: PhiClient;
const waiter = new Waiter();
const alerts: { rule: string; json: string }[] = [];
/** KEK ids of every notification delivery seen on the wire. */
const deliveryKeks: string[] = [];

function directoryOf(service: string): {
  root: OperatorRootKey;
  reloadOwnKeys: () => ReturnType<typeof readServiceKeyVersions>;
} {
  return { root, reloadOwnKeys: () => readServiceKeyVersions(stack.keysDir, service) };
}

/** An SDK client of `service` holding its current key version, or every version its key file holds (`all`). */
async function client(service: string, opts: { all?: boolean; keyClock?: () => number } = {}): Promise<PhiClient> {
  return PhiClient.connect({
    nc: await stack.connectAs(serviceIdentity(service), service),
    ownsConnection: true,
    service,
    keys: opts.all === true ? readServiceKeyVersions(stack.keysDir, service) : readServiceKeys(stack.keysDir, service),
    ...(opts.keyClock === undefined ? {} : { keyClock: opts.keyClock }),
    peers: stack.peers,
    publishDeadlineMs: 20_000,
    logger: stack.logger.child({ client: service }),
    keyDirectory: directoryOf(service),
  });
}

beforeAll(async () => {
  stack = await startTestStack({ broker: false });
  ({ root: signing } = await ensureOperatorRootKey(stack.keysDir));
  const admin = await stack.connectAs(ADMIN_IDENTITY, 'provision-keys');
  await publishDirectory(admin, stack.catalog, stack.keysDir, signing, { create: true });
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
    keyDirectory: {
      ...directoryOf(BROKER_ID),
      reloadSecrets: () => openBrokerSecrets(stack.keysDir, PLAIN_KEYS, false),
    },
  });
  operator = await stack.connectAs(OPERATOR_IDENTITY, 'operator');
  inspector = await stack.connect('inspector');
  inspector.subscribe('phi.alert.>', {
    callback: (_e, m) => {
      alerts.push({ rule: m.subject.slice('phi.alert.'.length), json: m.string() });
      waiter.signal();
    },
  });
  inspector.subscribe('phi.deliver.notification.>', {
    callback: (_e, m) => {
      for (const k of (JSON.parse(m.string()) as { keys: { kek: string }[] }).keys) deliveryKeks.push(k.kek);
      waiter.signal();
    },
  });
  await inspector.flush();
  pub = await client('registration');
}, 60_000);

afterAll(async () => {
  await pub?.close();
  await broker?.stop();
  await operator?.close();
  await inspector?.close();
  await stack?.stop();
});

describe('epoch deletion', () => {
  it('after keys prune the retained delivery to the destroyed version fails E_KEY_DESTROYED; the current one opens', async () => {
    const oldKek = 'broker:enc:1~notification:enc:1';
    const newKek = 'broker:enc:2~notification:enc:2';
    const first = await pub.publish({ resourceType: 'Patient', id: 'epoch-1', name: [{ family: 'Oldepoch' }] });
    expect(first.status).toBe('accepted');
    // A rejected input, quarantined under the first quarantine key version.
    const rejectedOld = await pub.publish(rejectable('Oldquarantined'));
    expect(rejectedOld).toMatchObject({ status: 'rejected', code: 'E_UNKNOWN_ELEMENT' });
    await waiter.until(() => deliveryKeks.includes(oldKek), 20_000, 'the delivery sealed between the first keys');
    // Every private value of the first versions, as the key files hold them before the prune.
    const firstKids = ['notification:sig:1', 'notification:enc:1', 'broker:sig:1', 'broker:enc:1'];
    const destroyed = privateNeedles(stack.keysDir).filter((n) =>
      firstKids.some((kid) => n.what.includes(` ${kid}.d`)),
    );
    expect(destroyed).toHaveLength(firstKids.length * 2);
    const quarantineV1 = privateNeedles(stack.keysDir).filter((n) => n.what.includes(' quarantine:1.key'));
    expect(quarantineV1).toHaveLength(2);

    // Either private half derives a KEK (X25519 is symmetric), so both parties of the delivery are rotated.
    await rotateParty(operator, stack.keysDir, signing, 'notification', OVERLAP_MS);
    await rotateParty(operator, stack.keysDir, signing, BROKER_ID, OVERLAP_MS);
    await stack.logs.until(
      (l) => l['event'] === 'keys.directory.applied' && l['party'] === 'notification' && l['client'] === undefined,
      'the broker applied the subscriber rotation',
    );
    await stack.logs.until(
      (l) => l['event'] === 'keys.own.rotated' && l['kid'] === 'broker:sig:2' && l['client'] === undefined,
      'the broker loaded its new key',
    );
    // The running broker seals with the rotated quarantine key version, without a restart.
    await stack.logs.until(
      (l) => l['event'] === 'keys.quarantine.rotated' && l['version'] === 2,
      'the broker loaded quarantine key version 2',
    );
    const second = await pub.publish({ resourceType: 'Patient', id: 'epoch-2', name: [{ family: 'Newepoch' }] });
    expect(second.status).toBe('accepted');
    await waiter.until(() => deliveryKeks.includes(newKek), 20_000, 'the delivery sealed between the second keys');
    const rejectedNew = await pub.publish(rejectable('Newquarantined'));
    expect(rejectedNew).toMatchObject({ status: 'rejected', code: 'E_UNKNOWN_ELEMENT' });
    const oldRecord = await quarantineRecordOf(rejectedOld.id);
    const newRecord = await quarantineRecordOf(rejectedNew.id);
    expect([oldRecord.keyVersion, newRecord.keyVersion]).toEqual([1, 2]);
    // Before the prune both versions open, each with the version its record names.
    expect(await printedBy((out) => runQuarantineShow(stack.config, oldRecord.id, { decrypt: true }, out))).toContain(
      '"family": "Oldquarantined"',
    );

    // A duration below the retention of stored ciphertext is refused, and nothing is deleted.
    const parties = ['notification', BROKER_ID];
    const retentionMs = ciphertextRetentionMs(stack.config);
    await expect(
      pruneParties(operator, stack.keysDir, signing, parties, { olderThanMs: OVERLAP_MS, retentionMs }),
    ).rejects.toMatchObject({ code: 'E_USAGE', path: '--older-than' });
    expect(readServiceKeyVersions(stack.keysDir, 'notification')).toHaveLength(2);
    expect(readServiceKeyVersions(stack.keysDir, BROKER_ID)).toHaveLength(2);
    expect(ensureBrokerSecrets(stack.keysDir).quarantineKeys.map((k) => [k.version, k.key !== undefined])).toEqual([
      [2, true],
      [1, true],
    ]);

    // The clock of the prune, not a sleep: the overlap and the retention have passed.
    const nowMs = Date.now() + OVERLAP_MS + retentionMs + 1000;
    const pruned = await pruneParties(operator, stack.keysDir, signing, parties, {
      olderThanMs: retentionMs,
      retentionMs,
      nowMs,
    });
    expect(Object.fromEntries(pruned)).toEqual({
      notification: ['notification:sig:1', 'notification:enc:1'],
      broker: ['broker:sig:1', 'broker:enc:1', 'broker:quarantine:1'],
    });
    // The pruned version's originals answer E_KEY_DESTROYED after the record's facts; the current version's open.
    let shown = '';
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        shown += chunk.toString('utf8');
        done();
      },
    });
    const refused = await runQuarantineShow(stack.config, oldRecord.id, { decrypt: true }, sink).catch(
      (e: unknown) => e,
    );
    expect(refused).toMatchObject({ code: 'E_KEY_DESTROYED', path: 'keyVersion' });
    expect((refused as Error).message).toContain('quarantine key version 1 was destroyed');
    expect(shown).toContain(`${oldRecord.id}  E_UNKNOWN_ELEMENT  Patient.name[0].nickname  registration`);
    expect(shown).toContain('sealed with quarantine key version 1');
    expect(shown).not.toContain('Oldquarantined');
    const opened = await printedBy((out) => runQuarantineShow(stack.config, newRecord.id, { decrypt: true }, out));
    expect(opened).toContain('sealed with quarantine key version 2');
    expect(opened).toContain('"family": "Newquarantined"');
    expect(readServiceKeyVersions(stack.keysDir, 'notification').map((v) => v.enc.kid)).toEqual(['notification:enc:2']);
    expect(readServiceKeyVersions(stack.keysDir, BROKER_ID).map((v) => v.enc.kid)).toEqual(['broker:enc:2']);
    const listed = (await listDirectory(operator, root)).filter((r) => r.party === 'notification');
    expect(listed.map((r) => [r.kid, r.status, r.destroyedAt !== undefined])).toEqual([
      ['notification:sig:1', 'retired', true],
      ['notification:enc:1', 'retired', true],
      ['notification:sig:2', 'active', false],
      ['notification:enc:2', 'active', false],
    ]);

    // Audited: the broker's watch raises key-destroyed per party (an AuditEvent in the chain and a phi.alert message).
    await waiter.until(
      () => alerts.filter((a) => a.rule === 'key-destroyed').length >= 2,
      20_000,
      'a key-destroyed alert per party',
    );
    const raised = alerts.filter((a) => a.rule === 'key-destroyed').map((a) => a.json);
    for (const json of raised) expect(fhirSchemaErrors(JSON.parse(json) as Record<string, unknown>)).toEqual([]);
    expect(raised.filter((j) => j.includes('notification:enc:1'))).toHaveLength(1);
    expect(raised.filter((j) => j.includes('broker:enc:1'))).toHaveLength(1);

    // The subscriber, started from its pruned key file: the current delivery opens, the retained one cannot.
    const got: string[] = [];
    const sub = await client('notification');
    try {
      await sub.subscribe('Patient', ({ provenance }) => {
        got.push(provenance.messageId);
        waiter.signal();
      });
      await waiter.until(() => got.includes(second.id), 20_000, 'the current delivery');
      await stack.logs.until(
        (l) => l['event'] === 'sdk.delivery.invalid' && l['code'] === 'E_KEY_DESTROYED',
        'the retained delivery refused',
      );
      expect(got).toEqual([second.id]);
    } finally {
      await sub.close();
    }

    // No byte of the destroyed private keys is left anywhere in the data dir; the same scan finds the current ones.
    expect(findNeedles(stack.config.dataDir, [...destroyed, ...quarantineV1])).toEqual([]);
    const current = privateNeedles(stack.keysDir).filter((n) => n.what.includes(' notification:enc:2.d'));
    expect(findNeedles(stack.keysDir, current).length).toBeGreaterThan(0);
  }, 120_000);
});

describe('a subscriber offline past the overlap', () => {
  it('opens and acks its backlog with its own retired key; once that key is pruned, E_KEY_DESTROYED per delivery, terminated', async () => {
    // Deliveries to billing and pharmacy on the wire (KEK ids), and JetStream's advisories of terminated deliveries.
    const keks: string[] = [];
    const terminated: { consumer: string; seq: number }[] = [];
    const tap = inspector.subscribe('phi.deliver.*.Patient', {
      callback: (_e, m) => {
        for (const k of (JSON.parse(m.string()) as { keys: { kek: string }[] }).keys) keks.push(k.kek);
        waiter.signal();
      },
    });
    const advisories = inspector.subscribe(`$JS.EVENT.ADVISORY.CONSUMER.MSG_TERMINATED.${STREAMS.deliver}.>`, {
      callback: (_e, m) => {
        const a = JSON.parse(m.string()) as { consumer: string; stream_seq: number };
        terminated.push({ consumer: a.consumer, seq: a.stream_seq });
        waiter.signal();
      },
    });
    await inspector.flush();
    const sealed = (kek: string): number => keks.filter((k) => k === kek).length;
    /** Publishes three Patients; their message ids (subscribers see the id pseudonymised, the message id as sent). */
    const publish = async (tag: string): Promise<string[]> => {
      const ids: string[] = [];
      for (const n of [1, 2, 3]) {
        const r = await pub.publish({ resourceType: 'Patient', id: `${tag}-${n}`, name: [{ family: 'Backlogger' }] });
        expect(r.status).toBe('accepted');
        ids.push(r.id);
      }
      return ids;
    };
    const before = await publish('backlog-a');
    await waiter.until(
      () => sealed('billing:enc:1~broker:enc:2') >= 3 && sealed('broker:enc:2~pharmacy:enc:1') >= 3,
      20_000,
      'the backlog sealed to the first subscriber keys',
    );
    // `keys rotate --service <it> --overlap 1m`, the CLI's code path, for both subscribers while they are offline.
    for (const service of ['billing', 'pharmacy']) {
      const text = await printedBy((out) => runKeysRotate(stack.config, { service, overlap: '1m' }, out));
      expect(text).toMatch(new RegExp(`^rotated ${service}: current ${service}:sig:2 and ${service}:enc:2;`));
      await stack.logs.until(
        (l) =>
          l['event'] === 'keys.directory.applied' &&
          l['party'] === service &&
          l['client'] === undefined &&
          l['seq'] === 2,
        `the broker applied the rotation of ${service}`,
      );
    }
    const after = await publish('backlog-b');
    await waiter.until(
      () => sealed('billing:enc:2~broker:enc:2') >= 3 && sealed('broker:enc:2~pharmacy:enc:2') >= 3,
      20_000,
      'the backlog sealed to the second subscriber keys',
    );
    // The subscribers come back after the overlap's end: their key clock is past notAfter (no sleep).
    const pastOverlap = (): number => Date.now() + 61_000;

    // billing: its own retired enc:1 still opens what was sealed to it; every backlog delivery handed over and acked.
    const gotBilling: string[] = [];
    const billing = await client('billing', { all: true, keyClock: pastOverlap });
    await billing.subscribe('Patient', ({ provenance }) => {
      gotBilling.push(provenance.messageId);
      waiter.signal();
    });
    await waiter.until(() => [...before, ...after].every((id) => gotBilling.includes(id)), 20_000, 'billing backlog');
    await billing.close(); // stopped means acknowledged
    const jsm = await inspector.jetstreamManager();
    const billingState = await jsm.consumers.info(STREAMS.deliver, deliveryConsumer('billing', 'Patient'));
    expect([billingState.num_pending, billingState.num_ack_pending]).toEqual([0, 0]);
    const billingRefusals = stack.logs
      .records()
      .filter((l) => l['event'] === 'sdk.delivery.invalid' && l['client'] === 'billing');
    // Only the delivery of the first test, sealed to the broker's destroyed broker:enc:1.
    expect(billingRefusals.map((l) => l['code'])).toEqual(['E_KEY_DESTROYED']);

    // pharmacy: its first version pruned before it comes back.
    const retentionMs = ciphertextRetentionMs(stack.config);
    const pruned = await pruneParties(operator, stack.keysDir, signing, ['pharmacy'], {
      olderThanMs: retentionMs,
      retentionMs,
      nowMs: pastOverlap() + retentionMs,
    });
    expect(Object.fromEntries(pruned)).toEqual({ pharmacy: ['pharmacy:sig:1', 'pharmacy:enc:1'] });
    await waiter.until(
      () => alerts.some((a) => a.rule === 'key-destroyed' && a.json.includes('pharmacy:enc:1')),
      20_000,
      'the broker applied the prune',
    );
    const gotPharmacy: string[] = [];
    const pharmacy = await client('pharmacy', { all: true, keyClock: pastOverlap });
    await pharmacy.subscribe('Patient', ({ provenance }) => {
      gotPharmacy.push(provenance.messageId);
      waiter.signal();
    });
    // Sealed to pharmacy:enc:1 and never opened: the three of this test and the two of the first.
    const consumer = deliveryConsumer('pharmacy', 'Patient');
    await waiter.until(
      () =>
        after.every((id) => gotPharmacy.includes(id)) && terminated.filter((t) => t.consumer === consumer).length >= 5,
      20_000,
      'the current deliveries opened and the pruned ones terminated',
    );
    await pharmacy.close();
    expect(gotPharmacy.filter((id) => before.includes(id))).toEqual([]);
    const refusals = stack.logs
      .records()
      .filter((l) => l['event'] === 'sdk.delivery.invalid' && l['client'] === 'pharmacy');
    expect(refusals.map((l) => l['code'])).toEqual(Array(5).fill('E_KEY_DESTROYED'));
    // One coded refusal per terminated delivery, each still in PHI_DELIVER (retained for inspection, not acked).
    const seqs = terminated.filter((t) => t.consumer === consumer).map((t) => t.seq);
    expect(new Set(refusals.map((l) => l['seq']))).toEqual(new Set(seqs));
    for (const seq of seqs)
      expect((await jsm.streams.getMessage(STREAMS.deliver, { seq })).subject).toBe('phi.deliver.pharmacy.Patient');
    tap.unsubscribe();
    advisories.unsubscribe();
  }, 120_000);
});

/** A Patient the registration profile refuses (E_UNKNOWN_ELEMENT at Patient.name[0].nickname): quarantined. */
function rejectable(family: string): Record<string, unknown> {
  return { resourceType: 'Patient', id: `q-${family}`, name: [{ family, nickname: 'Q' }] };
}

/** The quarantine record of a rejected message, from PHI_QUARANTINE (bounded by the stream's messages). */
async function quarantineRecordOf(messageId: string): Promise<QuarantineRecord> {
  const jsm = await inspector.jetstreamManager();
  const { state } = await jsm.streams.info(STREAMS.quarantine);
  for (let seq = state.first_seq; seq <= state.last_seq; seq++) {
    const record = decodeRecordHeader(
      (await jsm.streams.getMessage(STREAMS.quarantine, { seq })).header.get(HEADERS.record),
    );
    if (record.messageId === messageId) return record;
  }
  throw new Error(`no quarantine record for ${messageId}`);
}

/** Runs a CLI function (the code the `phi-broker` command runs) and returns what it printed. */
async function printedBy(fn: (out: PassThrough) => Promise<unknown>): Promise<string> {
  const out = new PassThrough();
  let text = '';
  out.on('data', (c: Buffer) => (text += c.toString('utf8')));
  await fn(out);
  out.end();
  return text;
}
