// PhiClient subscriptions against a real nats-server and broker (src/sdk/client.ts): a handler failure redelivers the
// delivery and success acknowledges it once; a delivery the broker did not sign never reaches the handler; stop()
// leaves what was not handled for the next subscription.
import { headers as natsHeaders } from 'nats';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Keyring } from '../../src/crypto/keyring.js';
import { parseBatchProof } from '../../src/envelope/batch-sig.js';
import { parseEnvelope } from '../../src/envelope/parse.js';
import { sealEnvelope } from '../../src/envelope/seal.js';
import { HEADERS } from '../../src/wire/names.js';
import type { Delivered, PhiClient } from '../../src/sdk/client.js';
import { Waiter, startTestStack, type TestStack } from '../helpers/stack.js';
import { ADMIN_IDENTITY } from '../../src/tls/identity.js';

let stack: TestStack;
let registration: PhiClient;

function patient(n: number): Record<string, unknown> {
  return { resourceType: 'Patient', id: `p-int-${n}`, name: [{ family: `Glimmerstone${n}` }], gender: 'female' };
}

beforeAll(async () => {
  stack = await startTestStack();
  registration = await stack.client('registration');
}, 60_000);

afterAll(async () => {
  await stack?.stop();
});

describe('PhiClient.subscribe', () => {
  it('a handler that throws gets the delivery again; once it succeeds the delivery is acknowledged (not handed over again)', async () => {
    const ehr = await stack.client('ehr');
    const calls: string[] = [];
    const waiter = new Waiter();
    const sub = await ehr.subscribe('Patient', (d: Delivered) => {
      calls.push(d.provenance.deliveryId);
      waiter.signal();
      if (calls.length === 1) throw new Error('Glimmerstone1 handler failure');
    });
    const r = await registration.publish(patient(1));
    expect(r.status).toBe('accepted');
    await waiter.until(() => calls.length >= 2, 20_000, 'redelivery');
    expect(calls).toEqual([`${r.id}.ehr`, `${r.id}.ehr`]);
    await sub.stop();
    const info = await (
      await (await stack.connectAs(ADMIN_IDENTITY, 'check')).jetstreamManager()
    ).consumers.info('PHI_DELIVER', 'deliver-ehr-Patient');
    expect(info.num_ack_pending).toBe(0);
    expect(info.num_pending).toBe(0);
    const handlerLog = stack.logs.records().filter((l) => l['event'] === 'sdk.handler.failed');
    expect(handlerLog).toHaveLength(1);
    expect(stack.logs.text()).not.toContain('Glimmerstone1');
  }, 30_000);

  it('a delivery not signed by the broker never reaches the handler and is terminated (logged with its code)', async () => {
    const billing = await stack.client('billing');
    const handled: Delivered[] = [];
    const waiter = new Waiter();
    const sub = await billing.subscribe('Patient', (d) => {
      handled.push(d);
      waiter.signal();
    });
    const regKeys = stack.keys('registration');
    const ring = new Keyring(regKeys, stack.peers);
    const kek = ring.kekFor(ring.encryptionKeyOf('billing').kid);
    const prov = {
      src: 'registration',
      mid: 'forged-1',
      hash: 'A'.repeat(43),
      profile: 'urn:x',
      purpose: 'HPAYMT',
      at: Date.now(),
    };
    // 1: signed by registration under its own name; 2: claims to be the broker, signed with registration's key
    const forgeries = [
      sealEnvelope({
        id: 'forged-1.billing',
        iss: 'registration',
        iat: Date.now(),
        typ: 'Patient',
        resource: patient(2),
        signer: regKeys.sign,
        recipients: [{ id: 'billing', kek }],
        prov,
      }),
      sealEnvelope({
        id: 'forged-2.billing',
        iss: 'broker',
        iat: Date.now(),
        typ: 'Patient',
        resource: patient(3),
        signer: { ...regKeys.sign, kid: 'broker:sig:1' },
        recipients: [{ id: 'billing', kek }],
        prov,
      }),
    ];
    const nc = await stack.connect('forger');
    for (const f of forgeries) {
      const h = natsHeaders();
      h.set('Phi-Sig', f.sig);
      await nc.jetstream().publish('phi.deliver.billing.Patient', f.bytes, { headers: h });
    }
    // a genuine delivery after them proves the subscription went past both
    const r = await registration.publish(patient(4));
    await waiter.until(() => handled.some((d) => d.provenance.messageId === r.id), 20_000, 'the genuine delivery');
    // (billing's new durable also replays the earlier test's Patient; the forged ones are never among them)
    expect(handled.map((d) => d.provenance.messageId)).toContain(r.id);
    expect(handled.map((d) => d.provenance.deliveryId).filter((id) => id.startsWith('forged'))).toEqual([]);
    expect(handled.map((d) => d.resource['id'])).not.toContain('p-int-2');
    expect(handled.map((d) => d.resource['id'])).not.toContain('p-int-3');
    const invalid = stack.logs.records().filter((l) => l['event'] === 'sdk.delivery.invalid');
    expect(invalid.map((l) => l['code'])).toEqual(['E_SIGNATURE', 'E_SIGNATURE']);
    await sub.stop();
    const info = await (await nc.jetstreamManager()).consumers.info('PHI_DELIVER', 'deliver-billing-Patient');
    expect(info.num_ack_pending).toBe(0);
    expect(info.num_redelivered).toBe(0);
  }, 30_000);

  it('a broker key the client lacks is retried later (nak), a delivery addressed to another service is terminated', async () => {
    const notification = await stack.client('notification');
    const handled: Delivered[] = [];
    const waiter = new Waiter();
    const sub = await notification.subscribe('Patient', (d) => {
      handled.push(d);
      waiter.signal();
    });
    const nc = await stack.connect('copier');
    const jsm = await nc.jetstreamManager();
    // A genuine broker-signed delivery for pharmacy, copied onto notification's subject: addressed elsewhere.
    const r = await registration.publish(patient(6));
    expect(r.status).toBe('accepted');
    const original = await jsm.streams.getMessage('PHI_DELIVER', { last_by_subj: 'phi.deliver.pharmacy.Patient' });
    const copy = natsHeaders();
    copy.set('Phi-Sig', original.header.get('Phi-Sig'));
    await nc.jetstream().publish('phi.deliver.notification.Patient', original.data, { headers: copy });
    // A delivery signed with a broker key version this client has never seen (e.g. after a rotation).
    const text = Buffer.from(original.data).toString('utf8').replace('"kid":"broker:sig:1"', '"kid":"broker:sig:2"');
    const rotated = natsHeaders();
    rotated.set('Phi-Sig', original.header.get('Phi-Sig'));
    await nc.jetstream().publish('phi.deliver.notification.Patient', Buffer.from(text), { headers: rotated });
    await stack.logs.until(
      (l) => l['event'] === 'sdk.delivery.invalid' && l['code'] === 'E_KEY_UNKNOWN',
      'the unknown-key delivery',
    );
    await stack.logs.until(
      (l) => l['event'] === 'sdk.delivery.invalid' && l['code'] === 'E_ENVELOPE_INVALID',
      'the misaddressed delivery',
    );
    await waiter.until(() => handled.some((d) => d.provenance.messageId === r.id), 20_000, 'the genuine delivery');
    await sub.stop();
    const info = await jsm.consumers.info('PHI_DELIVER', 'deliver-notification-Patient');
    // The misaddressed copy was terminated (acknowledged away); the unknown-key one is still owed a retry.
    expect(info.num_ack_pending + info.num_pending).toBe(1);
    expect(handled.map((d) => d.provenance.deliveryId)).not.toContain(`${r.id}.pharmacy`);
  }, 30_000);

  it('a backlog is handled in order and every delivery is acknowledged by the time stop() resolves, even stopped from the last handler', async () => {
    const ehr = await stack.client('ehr');
    const published: string[] = [];
    for (let i = 0; i < 12; i++) {
      const r = await registration.publish(patient(100 + i));
      expect(r.status).toBe('accepted');
      published.push(`${r.id}.ehr`);
    }
    const handled: string[] = [];
    let stopped: Promise<void> | undefined;
    const waiter = new Waiter();
    const sub = await ehr.subscribe('Patient', (d) => {
      handled.push(d.provenance.deliveryId);
      // Acks of one turn go out together after it (src/sdk/ack-batch.ts); stop() must still send them first.
      if (d.provenance.deliveryId === published.at(-1)) stopped = sub.stop();
      waiter.signal();
    });
    await waiter.until(() => stopped !== undefined, 20_000, 'the backlog');
    await stopped;
    // Copies of earlier tests' Patients (also sent to ehr) may come first; ours come in publishing order.
    expect(handled.filter((id) => published.includes(id))).toEqual(published);
    const info = await (
      await (await stack.connectAs(ADMIN_IDENTITY, 'check-acks')).jetstreamManager()
    ).consumers.info('PHI_DELIVER', 'deliver-ehr-Patient');
    expect([info.num_ack_pending, info.num_pending, info.num_redelivered]).toEqual([0, 0, 0]);
  }, 30_000);

  it('after stop(), deliveries stay in PHI_DELIVER for the next subscription', async () => {
    const pharmacy = await stack.client('pharmacy');
    const first = await pharmacy.subscribe('Patient', () => undefined);
    await first.stop();
    await first.closed;
    const r = await registration.publish(patient(5));
    expect(r.status).toBe('accepted');
    const got: Delivered[] = [];
    const waiter = new Waiter();
    const again = await pharmacy.subscribe('Patient', (d) => {
      got.push(d);
      waiter.signal();
    });
    await waiter.until(
      () => got.some((d) => d.provenance.messageId === r.id),
      20_000,
      'the delivery after resubscribing',
    );
    const d = got.find((x) => x.provenance.messageId === r.id);
    expect(d?.provenance).toMatchObject({
      publisher: 'registration',
      deliveryId: `${r.id}.pharmacy`,
      purpose: 'TREAT',
    });
    expect(d?.resource.resourceType === 'Patient' ? d.resource.name : undefined).toEqual([{ family: 'Glimmerstone5' }]);
    await again.stop();
  }, 30_000);
});

describe('batch signatures (signature version 2) over the real path', () => {
  it('under load, deliveries and receipts come from batches of more than one; every subscriber and the publisher verify them', async () => {
    const tap = await stack.connect('batch-tap');
    const wire: { subject: string; sig: string }[] = [];
    tap.subscribe('phi.>', {
      callback: (_e, m) => {
        if (m.subject.startsWith('phi.deliver.') || m.subject.startsWith('phi.receipt.'))
          wire.push({ subject: m.subject, sig: m.headers?.get(HEADERS.signature) ?? '' });
      },
    });
    await tap.flush();
    const invalidReads = () =>
      stack.logs.records().filter((l) => l['event'] === 'sdk.receipt.invalid' || l['event'] === 'sdk.delivery.invalid')
        .length;
    const invalidBefore = invalidReads();
    const before = { ...stack.broker!.batchSigner!.counts };
    const pharmacy = await stack.client('pharmacy');
    const handled = new Set<string>();
    const waiter = new Waiter();
    const sub = await pharmacy.subscribe('Patient', (d) => {
      handled.add(d.provenance.messageId);
      waiter.signal();
    });
    const N = 48;
    // Every publish in flight at once; "accepted" is settled only by a receipt whose signature verified.
    const results = await Promise.all(Array.from({ length: N }, (_, i) => registration.publish(patient(500 + i))));
    expect(results.map((r) => r.status)).toEqual(Array<string>(N).fill('accepted'));
    await waiter.until(() => results.every((r) => handled.has(r.id)), 30_000, 'every delivery to pharmacy');
    await sub.stop();
    await tap.flush();
    const ours = new Set(results.map((r) => r.id));
    const receipts = wire.filter((w) => w.subject === 'phi.receipt.registration');
    const deliveries = wire.filter((w) => w.subject.startsWith('phi.deliver.'));
    expect(receipts.length).toBeGreaterThanOrEqual(N);
    expect(wire.every((w) => w.sig.startsWith('v2.'))).toBe(true);
    const sizes = wire.map((w) => parseBatchProof(w.sig).size);
    // A message's own deliveries share a tree; a receipt shares one only with other messages' deliveries or receipts.
    expect(Math.max(...receipts.map((w) => parseBatchProof(w.sig).size))).toBeGreaterThan(1);
    expect(Math.max(...sizes)).toBeGreaterThan(deliveries.length / N);
    const after = stack.broker!.batchSigner!.counts;
    const signed = after.messages - before.messages;
    expect(signed).toBeGreaterThanOrEqual(N + deliveries.length);
    expect(after.signatures - before.signatures).toBeLessThan(signed / 2);
    expect([...ours].every((id) => handled.has(id))).toBe(true);
    expect(invalidReads()).toBe(invalidBefore);
    await tap.close();
  }, 60_000);

  it('a v2 delivery with a tampered path, index or size, or another leaf of its batch, is terminated with E_SIGNATURE', async () => {
    const ehr = await stack.client('ehr');
    const handled: Delivered[] = [];
    const waiter = new Waiter();
    const sub = await ehr.subscribe('Patient', (d) => {
      handled.push(d);
      waiter.signal();
    });
    const r = await registration.publish(patient(600));
    expect(r.status).toBe('accepted');
    await waiter.until(() => handled.some((d) => d.provenance.messageId === r.id), 20_000, 'the genuine delivery');
    const nc = await stack.connect('batch-forger');
    const jsm = await nc.jetstreamManager();
    const own = await jsm.streams.getMessage('PHI_DELIVER', { last_by_subj: 'phi.deliver.ehr.Patient' });
    const sibling = await jsm.streams.getMessage('PHI_DELIVER', { last_by_subj: 'phi.deliver.billing.Patient' });
    expect(parseEnvelope(own.data).id).toBe(`${r.id}.ehr`);
    expect(parseEnvelope(sibling.data).id).toBe(`${r.id}.billing`);
    const header = own.header.get(HEADERS.signature);
    const proof = parseBatchProof(header);
    expect(proof.size).toBeGreaterThan(1);
    const field = (i: number, value: string) =>
      header
        .split('.')
        .map((f, j) => (j === i ? value : f))
        .join('.');
    const path = Buffer.from(header.split('.')[5]!, 'base64url');
    path[0] = path[0]! ^ 1;
    const tampered = [
      field(5, path.toString('base64url')),
      field(3, String((proof.index + 1) % proof.size)),
      field(2, String(proof.size + 1)),
      sibling.header.get(HEADERS.signature),
    ];
    const logged = () =>
      stack.logs.records().filter((l) => l['event'] === 'sdk.delivery.invalid' && l['code'] === 'E_SIGNATURE').length;
    const start = logged();
    for (const sig of tampered) {
      const h = natsHeaders();
      h.set(HEADERS.signature, sig);
      await nc.jetstream().publish('phi.deliver.ehr.Patient', own.data, { headers: h });
    }
    // Nothing vanishes silently: each copy is logged with its code and terminated (it stays in PHI_DELIVER).
    await stack.logs.until(() => logged() - start === tampered.length, 'four rejected copies');
    const r2 = await registration.publish(patient(601));
    await waiter.until(
      () => handled.some((d) => d.provenance.messageId === r2.id),
      20_000,
      'the next genuine delivery',
    );
    await sub.stop();
    expect(logged() - start).toBe(tampered.length);
    expect(handled.filter((d) => d.provenance.messageId === r.id)).toHaveLength(1);
    const info = await jsm.consumers.info('PHI_DELIVER', 'deliver-ehr-Patient');
    expect(info.num_ack_pending + info.num_pending).toBe(0);
    expect(info.num_redelivered).toBe(0);
  }, 30_000);
});
