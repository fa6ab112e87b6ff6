// End to end over a real nats-server: publish → broker → per-subscriber projections; every bad input gets
// its stable code, a receipt and an encrypted quarantine record; offline subscribers catch up; and no PHI
// string appears in logs, subjects, headers, message bytes or the JetStream store on disk.
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { headers as natsHeaders, type NatsConnection } from 'nats';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeRecordHeader, openQuarantine } from '../../src/broker/quarantine.js';
import { BROKER_ID } from '../../src/wire/ids.js';
import { sealEnvelope } from '../../src/envelope/seal.js';
import { HEADERS, STREAMS } from '../../src/wire/names.js';
import type { Delivered, PhiClient } from '../../src/sdk/client.js';
import { ReceiptLog } from '../helpers/receipts.js';
import { ROOT, Waiter, filesUnder, readJson, startTestStack, type TestStack } from '../helpers/stack.js';
import { Keyring } from '../../src/crypto/keyring.js';
import { signDetached } from '../../src/crypto/sign.js';
import { ADMIN_IDENTITY } from '../../src/tls/identity.js';

const PATIENT = readJson(join(ROOT, 'examples/patient.json'));
const OBSERVATION = readJson(join(ROOT, 'examples/observation.json'));
/** Distinctive synthetic PHI in the examples above (and in inputs below): none may leak anywhere. */
const PHI = [
  'Quillfeather',
  'Marisol',
  '555-0142-7731',
  'MRN-7731-DEMO',
  '999-41-7731',
  '42 Lantern Row',
  'Brightwater',
  'marisol.quillfeather@example.org',
  'Ilsa Northgate',
  'Ravensloe',
  'Zephyrine',
  '555-0199-7731',
];

/** Just under the test server's 1 MiB max_payload, leaving room for headers. */
const NEAR_MAX_PAYLOAD = 1024 * 1024 - 512;

let stack: TestStack;
let registration: PhiClient;
let ehrPublisher: PhiClient;
let receipts: ReceiptLog;
let wire: { subject: string; headers: string; data: Buffer }[];
let tap: NatsConnection;
/** Deliveries as plain JSON objects: the tests look at elements by name across resource types. */
type Received = Delivered<Record<string, unknown>>;
const received = new Map<string, Received[]>();
const waiter = new Waiter();

async function subscribeAll(service: string): Promise<PhiClient> {
  const c = await stack.client(service);
  received.set(service, received.get(service) ?? []);
  await c.subscribe('*', (d) => {
    received.get(service)?.push(d as unknown as Received);
    waiter.signal();
  });
  return c;
}

function deliveriesOf(service: string, messageId: string): Received[] {
  return (received.get(service) ?? []).filter((d) => d.provenance.messageId === messageId);
}

beforeAll(async () => {
  stack = await startTestStack({ config: { maxMessageBytes: 256 * 1024 } });
  tap = await stack.connect('tap');
  wire = [];
  tap.subscribe('>', {
    callback: (_e, m) => {
      wire.push({
        subject: m.subject,
        headers:
          m.headers === undefined
            ? ''
            : [...m.headers.keys()].map((k) => `${k}: ${m.headers?.values(k).join(',')}`).join('\n'),
        data: Buffer.from(m.data),
      });
    },
  });
  receipts = new ReceiptLog(tap);
  await tap.flush();
  for (const s of ['notification', 'ehr', 'analytics']) await subscribeAll(s); // billing subscribes late (offline test)
  registration = await stack.client('registration');
  ehrPublisher = await stack.client('ehr');
});

afterAll(async () => {
  await stack?.stop();
});

describe('minimum-necessary projections', () => {
  let patientId: string;
  let observationId: string;

  beforeAll(async () => {
    const p = await registration.publish(PATIENT);
    expect(p.status).toBe('accepted');
    patientId = p.id;
    const o = await ehrPublisher.publish(OBSERVATION);
    expect(o.status).toBe('accepted');
    observationId = o.id;
    await waiter.until(
      () =>
        deliveriesOf('notification', patientId).length === 1 &&
        deliveriesOf('ehr', patientId).length === 1 &&
        deliveriesOf('analytics', observationId).length === 1 &&
        deliveriesOf('ehr', observationId).length === 1,
    );
  });

  it('notification gets name and phone/email telecom only', () => {
    const [d] = deliveriesOf('notification', patientId);
    const r = d?.resource ?? {};
    expect(Object.keys(r).sort()).toEqual(['id', 'meta', 'name', 'resourceType', 'telecom']);
    // patient-contact does not deliver the id: notification's own keyed pseudonym of it names the copy.
    expect(r['id']).toMatch(/^[a-z2-7]{32}$/);
    expect(r['name']).toEqual(PATIENT['name']);
    // patient-contact keeps phone and email contact points: the work fax is withheld.
    expect(r['telecom']).toEqual((PATIENT['telecom'] as { system?: string }[]).filter((t) => t.system !== 'fax'));
    expect(r['telecom']).toHaveLength(2);
    expect(d?.provenance.publisher).toBe('registration');
    expect(d?.provenance.purpose).toBe('HOPERAT');
    expect((r['meta'] as { profile: string[] }).profile).toEqual([d?.provenance.profile]);
  });

  it('ehr gets the whole Patient (meta.profile names the full profile)', () => {
    const [d] = deliveriesOf('ehr', patientId);
    const { meta, ...rest } = d?.resource ?? {};
    const { meta: inMeta, ...inRest } = PATIENT;
    expect(rest).toEqual(inRest);
    expect((meta as { security?: unknown }).security).toEqual((inMeta as { security?: unknown }).security);
  });

  it('analytics gets a de-identified Observation and never the Patient', () => {
    expect(deliveriesOf('analytics', patientId)).toHaveLength(0);
    const [d] = deliveriesOf('analytics', observationId);
    const r = d?.resource as Record<string, unknown>;
    const text = JSON.stringify(r);
    expect(text).not.toContain('demo-patient-1');
    expect(text).not.toContain('Quillfeather');
    expect(text).not.toContain('Practitioner/demo-gp-1');
    expect(r['effectiveDateTime']).toBe('2026');
    expect((r['subject'] as { reference: string }).reference).toMatch(/^Patient\/[A-Za-z0-9\-.]+$/);
    expect(r['component']).toEqual(OBSERVATION['component']);
  });

  it('a subscriber that was offline receives everything once it connects', async () => {
    const billing = await subscribeAll('billing');
    await waiter.until(() => deliveriesOf('billing', patientId).length === 1);
    const r = deliveriesOf('billing', patientId)[0]?.resource ?? {};
    expect(Object.keys(r).sort()).toEqual(['address', 'birthDate', 'id', 'identifier', 'meta', 'name', 'resourceType']);
    expect(r['id']).not.toBe(PATIENT['id']);
    expect(r['address']).toEqual(PATIENT['address']);
    expect(r['birthDate']).toBe(PATIENT['birthDate']);
    expect(billing.service).toBe('billing');
  });
});

describe('bad input: a stable code, a receipt, and an encrypted copy in quarantine', () => {
  async function expectRejected(
    result: Promise<{ status: string; id: string; code?: string; path?: string; message?: string }>,
    code: string,
    path?: string,
  ): Promise<string> {
    const r = await result;
    expect(r).toMatchObject({ status: 'rejected', code });
    if (path !== undefined) expect(r.path).toBe(path);
    for (const s of PHI) expect(r.message).not.toContain(s);
    return r.id;
  }

  it('malformed JSON', async () => {
    await expectRejected(
      registration.publish('{"resourceType":"Patient","name":[{"family":"Zephyrine"'),
      'E_JSON_MALFORMED',
    );
  });
  it('not FHIR', async () => {
    await expectRejected(registration.publish({ family: 'Zephyrine' }), 'E_NOT_FHIR');
  });
  it('unknown resource type', async () => {
    await expectRejected(
      registration.publish({ resourceType: 'Patientish', name: 'Zephyrine' }),
      'E_UNKNOWN_RESOURCE_TYPE',
      'resourceType',
    );
  });
  it('invalid FHIR (bad date)', async () => {
    await expectRejected(
      registration.publish({
        resourceType: 'Patient',
        id: 'bad-date',
        name: [{ family: 'Zephyrine' }],
        birthDate: '19-84-07',
      }),
      'E_FHIR_INVALID',
      'Patient.birthDate',
    );
  });
  it('invalid FHIR (missing required element)', async () => {
    await expectRejected(
      ehrPublisher.publish({ resourceType: 'Observation', id: 'no-status', code: { text: 'Zephyrine' } }),
      'E_FHIR_INVALID',
    );
  });
  it('unknown element', async () => {
    await expectRejected(
      registration.publish({ resourceType: 'Patient', id: 'nick', name: [{ family: 'Zephyrine', nickname: 'Zeph' }] }),
      'E_UNKNOWN_ELEMENT',
      'Patient.name[0].nickname',
    );
  });
  it('oversized message', async () => {
    const big = {
      resourceType: 'Patient',
      id: 'big',
      name: [{ family: 'Zephyrine', given: Array.from({ length: 400 }, (_, i) => `given-${i}-${'x'.repeat(900)}`) }],
    };
    await expectRejected(registration.publish(big), 'E_TOO_LARGE');
  });
  it('a resource type the sender may not publish', async () => {
    const notification = await stack.client('notification');
    await expectRejected(
      notification.publish({ resourceType: 'Patient', id: 'not-mine', name: [{ family: 'Zephyrine' }] }),
      'E_NOT_AUTHORIZED',
      'typ',
    );
  });
});

describe('envelope attacks sent straight to NATS', () => {
  let nc: NatsConnection;
  beforeAll(async () => {
    nc = await stack.connect('attacker');
  });

  /** A well-formed envelope from registration; `tamper` edits its bytes, which are then re-signed as `signAs`. */
  function envelope(opts: { iat?: number; signAs?: string; kid?: string; resource?: Record<string, unknown> } = {}): {
    id: string;
    bytes: Uint8Array;
    sig: string;
  } {
    const iss = 'registration';
    const ring = new Keyring(stack.keys(iss), stack.peers);
    const id = randomUUID();
    const sealed = sealEnvelope({
      id,
      iss,
      iat: opts.iat ?? Date.now(),
      typ: 'Patient',
      resource: opts.resource ?? { resourceType: 'Patient', id: 'attack-1', name: [{ family: 'Zephyrine' }] },
      signer: stack.keys(iss).sign,
      recipients: [{ id: BROKER_ID, kek: ring.kekFor(ring.encryptionKeyOf(BROKER_ID).kid) }],
    });
    if (opts.kid === undefined && opts.signAs === undefined) return { id, bytes: sealed.bytes, sig: sealed.sig };
    const signer = stack.keys(opts.signAs ?? iss).sign;
    const kid = opts.kid ?? signer.kid;
    const text = Buffer.from(sealed.bytes)
      .toString('utf8')
      .replace(`"kid":"${stack.keys(iss).sign.kid}"`, `"kid":"${kid}"`);
    expect(text).toContain(`"kid":"${kid}"`);
    const bytes = new TextEncoder().encode(text);
    return { id, bytes, sig: Buffer.from(signDetached(bytes, signer.secretKey)).toString('base64url') };
  }

  async function send(subject: string, bytes: Uint8Array, sig: string | undefined): Promise<void> {
    const h = natsHeaders();
    if (sig !== undefined) h.set(HEADERS.signature, sig);
    await nc.jetstream().publish(subject, bytes, { headers: h });
  }

  it('missing signature', async () => {
    const e = envelope();
    await send('phi.ingest.registration.Patient', e.bytes, undefined);
    expect(await receipts.next(e.id)).toMatchObject({ status: 'rejected', code: 'E_SIGNATURE' });
  });
  it('wrong signature (one bit flipped)', async () => {
    const e = envelope();
    const sig = Buffer.from(e.sig, 'base64url');
    sig[5] = (sig[5] ?? 0) ^ 1;
    await send('phi.ingest.registration.Patient', e.bytes, sig.toString('base64url'));
    expect(await receipts.next(e.id)).toMatchObject({ status: 'rejected', code: 'E_SIGNATURE' });
  });
  it("signature by a key that isn't the sender's", async () => {
    const e = envelope({ signAs: 'billing' });
    await send('phi.ingest.registration.Patient', e.bytes, e.sig);
    expect(await receipts.next(e.id)).toMatchObject({ status: 'rejected', code: 'E_SIGNATURE', path: 'kid' });
  });
  it('sender on the subject differs from the envelope', async () => {
    const e = envelope();
    await send('phi.ingest.billing.Patient', e.bytes, e.sig);
    expect(await receipts.next(e.id)).toMatchObject({ status: 'rejected', code: 'E_SENDER_MISMATCH', path: 'iss' });
  });
  it('replayed message id', async () => {
    const e = envelope();
    await send('phi.ingest.registration.Patient', e.bytes, e.sig);
    expect(await receipts.next(e.id, 1)).toMatchObject({ status: 'accepted' });
    await send('phi.ingest.registration.Patient', e.bytes, e.sig);
    // Rejected and quarantined, but with no receipt: one would carry the genuine message's id and hash.
    await stack.logs.until(
      (r) => r['event'] === 'ingest.rejected' && r['id'] === e.id && r['code'] === 'E_REPLAY',
      'the E_REPLAY rejection',
    );
    await tap.flush();
    expect(receipts.byId.get(e.id)?.map((r) => r.status)).toEqual(['accepted']);
  });
  it('a replay of a message that also fails validation is refused as a replay (the claim decides before routing)', async () => {
    // The broker routes a message while its replay claim is in flight; the verdict must still be the claim's.
    const e = envelope({ resource: { resourceType: 'Patient', id: 'attack-2', birthDate: 'not-a-date' } });
    await send('phi.ingest.registration.Patient', e.bytes, e.sig);
    expect(await receipts.next(e.id, 1)).toMatchObject({ status: 'rejected', code: 'E_FHIR_INVALID' });
    await send('phi.ingest.registration.Patient', e.bytes, e.sig);
    await stack.logs.until(
      (r) => r['event'] === 'ingest.rejected' && r['id'] === e.id && r['code'] === 'E_REPLAY',
      'the E_REPLAY rejection',
    );
    await tap.flush();
    expect(receipts.byId.get(e.id)?.map((r) => (r.status === 'rejected' ? r.code : r.status))).toEqual([
      'E_FHIR_INVALID',
    ]);
  });
  it('a bare FHIR resource sent in plaintext: rejected, and its id (PHI) is not used as a message id', async () => {
    const h = natsHeaders();
    h.set(HEADERS.msgId, 'Ysolde Brightfen 1961-03-02');
    await nc
      .jetstream()
      .publish(
        'phi.ingest.registration.Patient',
        Buffer.from(JSON.stringify({ resourceType: 'Patient', id: 'MRN-LEAK-4242' })),
        { headers: h },
      );
    await stack.logs.until(
      (r) => r['event'] === 'ingest.rejected' && r['code'] === 'E_ENVELOPE_INVALID' && r['id'] === undefined,
      'the rejection',
    );
    await tap.flush();
    const quarantineHeaders = wire
      .filter((m) => m.subject.startsWith('phi.quarantine.'))
      .map((m) => m.headers)
      .join('\n');
    for (const leaked of ['MRN-LEAK-4242', 'Ysolde Brightfen']) {
      expect(quarantineHeaders).not.toContain(leaked);
      expect(stack.logs.text()).not.toContain(leaked);
      expect([...receipts.byId.keys()].join(' ')).not.toContain(leaked);
    }
  });
  it('timestamp outside the skew window', async () => {
    const e = envelope({ iat: Date.now() - 60 * 60 * 1000 });
    await send('phi.ingest.registration.Patient', e.bytes, e.sig);
    expect(await receipts.next(e.id)).toMatchObject({ status: 'rejected', code: 'E_CLOCK_SKEW', path: 'iat' });
  });
  it('unknown key id', async () => {
    const e = envelope({ kid: 'registration:sig:9' });
    await send('phi.ingest.registration.Patient', e.bytes, e.sig);
    expect(await receipts.next(e.id)).toMatchObject({ status: 'rejected', code: 'E_KEY_UNKNOWN' });
  });
  it('a message near NATS max_payload (rejected E_TOO_LARGE; its quarantine copy needs two parts)', async () => {
    const id = randomUUID();
    const h = natsHeaders();
    h.set(HEADERS.msgId, id);
    await nc
      .jetstream()
      .publish('phi.ingest.registration.Patient', new Uint8Array(NEAR_MAX_PAYLOAD).fill(0x41), { headers: h });
    expect(await receipts.next(id)).toMatchObject({ status: 'rejected', code: 'E_TOO_LARGE' });
  });
  it('garbage bytes', async () => {
    const id = randomUUID();
    const h = natsHeaders();
    h.set(HEADERS.msgId, id);
    await nc
      .jetstream()
      .publish('phi.ingest.registration.Patient', Buffer.from('this is not an envelope'), { headers: h });
    expect(await receipts.next(id)).toMatchObject({ status: 'rejected', code: 'E_JSON_MALFORMED' });
  });
});

describe('quarantine and the absence of PHI', () => {
  it('every rejection is in PHI_QUARANTINE, sealed, and opens to the exact input with the broker key', async () => {
    const jsm = await (await stack.connectAs(ADMIN_IDENTITY, 'inspect')).jetstreamManager();
    const info = await jsm.streams.info(STREAMS.quarantine);
    expect(info.state.messages).toBeGreaterThanOrEqual(stack.broker?.stats.rejected ?? Infinity);
    expect(info.state.messages).toBeGreaterThanOrEqual(16);
    const first = await jsm.streams.getMessage(STREAMS.quarantine, { seq: info.state.first_seq });
    const record = decodeRecordHeader(first.header.get(HEADERS.record));
    expect(first.header.get(HEADERS.code)).toBe(record.code);
    expect(record.parts).toBe(1);
    const original = openQuarantine(record, [first.data], stack.secrets.quarantineKey);
    expect(original.subject).toMatch(/^phi\.ingest\./);
    expect(original.data.byteLength).toBeGreaterThan(0);
  });

  it('an oversized rejected input is quarantined whole, in parts, and reassembles', async () => {
    const jsm = await (await stack.connectAs(ADMIN_IDENTITY, 'inspect-2')).jetstreamManager();
    const byRecord = new Map<string, { record: ReturnType<typeof decodeRecordHeader>; parts: Uint8Array[] }>();
    const { state } = await jsm.streams.info(STREAMS.quarantine);
    for (let seq = state.first_seq; seq <= state.last_seq; seq++) {
      const m = await jsm.streams.getMessage(STREAMS.quarantine, { seq });
      const record = decodeRecordHeader(m.header.get(HEADERS.record));
      const entry = byRecord.get(record.id) ?? { record, parts: [] };
      entry.parts.push(m.data);
      byRecord.set(record.id, entry);
    }
    const split = [...byRecord.values()].filter((e) => e.record.parts > 1);
    expect(split).toHaveLength(1);
    const [{ record, parts } = { record: undefined, parts: [] }] = split;
    expect(record?.code).toBe('E_TOO_LARGE');
    if (record === undefined) return;
    expect(parts).toHaveLength(record.parts);
    const original = openQuarantine(record, parts, stack.secrets.quarantineKey);
    expect(original.data.byteLength).toBe(NEAR_MAX_PAYLOAD);
    expect(original.data.every((b) => b === 0x41)).toBe(true);
  });

  it('no PHI string in logs, subjects, headers, message bytes, or the JetStream store on disk', async () => {
    const logs = stack.logs.text();
    expect(stack.logs.lines.length).toBeGreaterThan(10);
    const files = filesUnder(stack.nats.server.storeDir);
    expect(files.length).toBeGreaterThan(5);
    const store = Buffer.concat(files.map((f) => readFileSync(f)));
    expect(wire.length).toBeGreaterThan(30);
    for (const s of PHI) {
      expect(logs, `log contains ${s}`).not.toContain(s);
      expect(store.includes(Buffer.from(s)), `store contains ${s}`).toBe(false);
      for (const m of wire) {
        expect(m.subject).not.toContain(s);
        expect(m.headers).not.toContain(s);
        expect(m.data.includes(Buffer.from(s)), `bytes on ${m.subject} contain ${s}`).toBe(false);
      }
    }
  });
});
