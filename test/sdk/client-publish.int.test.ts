// PhiClient.publish (src/sdk/client.ts) against a real nats-server with the broker's JetStream streams: the test plays
// the broker (test/helpers/scripted-broker.ts) over a real connection and decides each receipt — genuine, rejected,
// forged, for another message, or none — so sealing, receipt verification and matching (id AND hash), deadlines, real
// JetStream publish failures, NATS's max_payload and close() are checked without a stand-in connection. Outages and
// lost acknowledgements are in publish-durable.int.test.ts.
// One server per file, started with max_payload 64 KiB so a message NATS cannot carry is cheap to build.
import { randomUUID } from 'node:crypto';
import { Writable } from 'node:stream';
import type { JetStreamManager, NatsConnection } from 'nats';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { acceptedReceipt, encodeReceipt, rejectedReceipt, type Receipt } from '../../src/wire/receipt.js';
import { Keyring } from '../../src/crypto/keyring.js';
import { generateServiceKeys, publicRecords, type ServiceKeys } from '../../src/crypto/keys.js';
import { initCrypto } from '../../src/crypto/sodium.js';
import { verifyEnvelope } from '../../src/envelope/open.js';
import { envelopeHash } from '../../src/envelope/provenance.js';
import { sealEnvelope } from '../../src/envelope/seal.js';
import { signBatch, type SignedKind } from '../../src/envelope/batch-sig.js';
import { BrokerError, isBrokerError } from '../../src/wire/errors.js';
import { createLogger } from '../../src/log/log.js';
import { STREAMS } from '../../src/wire/names.js';
import { DUPLICATE_WINDOW_MIN_MS } from '../../src/wire/publish.js';
import { ensureBrokerInfrastructure, type StreamSettings } from '../../src/nats/setup.js';
import { PhiClient, type PublishResult } from '../../src/sdk/client.js';
import { startTestNats, type TestNats } from '../helpers/nats.js';
import { ScriptedBroker, type Ingested, type WireReceipt } from '../helpers/scripted-broker.js';

const MAX_PAYLOAD = 64 * 1024;
const SETTINGS: StreamSettings = {
  deliverMaxAgeMs: DUPLICATE_WINDOW_MIN_MS,
  quarantineMaxAgeMs: DUPLICATE_WINDOW_MIN_MS,
  receiptMaxAgeMs: DUPLICATE_WINDOW_MIN_MS,
  duplicateWindowMs: DUPLICATE_WINDOW_MIN_MS,
  replayWindowMs: DUPLICATE_WINDOW_MIN_MS,
  ackWaitMs: 30_000,
  replicas: 1,
};

/** pino output, parsed per line; `until` resolves when a logged record matches (no sleeps). */
class Capture extends Writable {
  text = '';
  private readonly watchers = new Set<() => void>();
  override _write(chunk: Buffer, _e: BufferEncoding, cb: () => void): void {
    this.text += chunk.toString('utf8');
    for (const w of [...this.watchers]) w();
    cb();
  }
  records(): Record<string, unknown>[] {
    return this.text
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  }
  until(match: (r: Record<string, unknown>) => boolean, timeoutMs = 15_000): Promise<void> {
    if (this.records().some(match)) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.watchers.delete(check);
        reject(new Error('timed out waiting for a log record'));
      }, timeoutMs);
      const check = (): void => {
        if (!this.records().some(match)) return;
        clearTimeout(timer);
        this.watchers.delete(check);
        resolve();
      };
      this.watchers.add(check);
    });
  }
}

let nats: TestNats;
let admin: NatsConnection;
let jsm: JetStreamManager;
let scripted: ScriptedBroker;
let broker: ServiceKeys;
let registration: ServiceKeys;
let impostor: ServiceKeys;
let forger: ServiceKeys;
const opened: { client: PhiClient; nc: NatsConnection }[] = [];

beforeAll(async () => {
  await initCrypto();
  broker = generateServiceKeys('broker');
  registration = generateServiceKeys('registration');
  impostor = generateServiceKeys('broker', 2); // a broker key the client was never given
  forger = generateServiceKeys('registration', 9); // claims to be registration; the broker does not hold this key
  nats = await startTestNats({ maxPayload: MAX_PAYLOAD });
  admin = await nats.connect('admin');
  jsm = await admin.jetstreamManager();
  await ensureBrokerInfrastructure(admin, SETTINGS);
  scripted = new ScriptedBroker(await nats.connect('scripted-broker'), broker, registration);
  await scripted.listen();
});

afterAll(async () => {
  await nats?.stop();
});

beforeEach(async () => {
  await scripted.reset();
});

afterEach(async () => {
  for (const { client, nc } of opened.splice(0)) {
    await client.close();
    await nc.close();
  }
  await scripted.settled();
  expect(scripted.failures).toEqual([]);
});

const patient = { resourceType: 'Patient', id: 'p-sdk-1', name: [{ family: 'Kettleburn' }] };

async function setup(publishDeadlineMs: number): Promise<{ nc: NatsConnection; client: PhiClient; logs: Capture }> {
  const nc = await nats.connect('registration');
  const logs = new Capture();
  const client = await PhiClient.connect({
    nc,
    service: 'registration',
    keys: registration,
    peers: publicRecords(broker),
    publishDeadlineMs,
    logger: createLogger({ destination: logs, level: 'debug' }),
    insecure: true,
  });
  opened.push({ client, nc });
  return { nc, client, logs };
}

function pendingCount(client: PhiClient): number {
  // White-box: the map of publishes waiting for a receipt must not keep entries once a publish has settled.
  return (client as unknown as { pending: Map<string, unknown> }).pending.size;
}

function bytesOf(text: string): Uint8Array {
  return new TextEncoder().encode(text);
}

/** Size of the envelope PhiClient would seal for `resource` (sizes do not depend on the random draws). */
function sealedSize(resource: Record<string, unknown>): number {
  const ring = new Keyring(registration, publicRecords(broker));
  const sealed = sealEnvelope({
    id: randomUUID(),
    iss: 'registration',
    iat: Date.now(),
    typ: 'Patient',
    resource,
    signer: registration.sign,
    recipients: [{ id: 'broker', kek: ring.kekFor(broker.enc.kid) }],
  });
  return sealed.bytes.byteLength;
}

/** The broker's verdict on a message that reuses `id` but is signed by the forger: a rejection about other bytes. */
function forgedVerdict(id: string): Receipt {
  const ring = new Keyring(forger, publicRecords(broker));
  const forged = sealEnvelope({
    id,
    iss: 'registration',
    iat: Date.now(),
    typ: 'Patient',
    resource: { resourceType: 'Patient', id: 'p-forged', name: [{ family: 'Mallowquist' }] },
    signer: forger.sign,
    recipients: [{ id: 'broker', kek: ring.kekFor(broker.enc.kid) }],
  });
  let error: unknown;
  try {
    verifyEnvelope(forged.bytes, forged.sig, registration.sign.publicKey);
  } catch (e) {
    error = e;
  }
  if (!isBrokerError(error) || error.code !== 'E_SIGNATURE')
    throw new Error('the forged message should fail verification');
  return rejectedReceipt(id, envelopeHash(forged.bytes), error, Date.now());
}

describe('PhiClient.connect', () => {
  it('refuses peers without the broker signing key (TypeError naming what is missing)', async () => {
    const nc = await nats.connect('no-broker-key');
    for (const peers of [[], publicRecords(registration), publicRecords(broker).filter((p) => p.use === 'enc')]) {
      await expect(
        PhiClient.connect({ nc, service: 'registration', keys: registration, peers, insecure: true }),
      ).rejects.toThrow(new TypeError('peers must include the broker public signing key'));
    }
    await nc.close();
  });
});

describe('PhiClient.publish: what goes out', () => {
  it('seals a resource to the broker on phi.ingest.<service>.<Type>, Nats-Msg-Id = message id, signed, stored in PHI_INGEST', async () => {
    const { client } = await setup(5_000);
    scripted.answer = (m) => scripted.send(scripted.signed(acceptedReceipt(m.env.id, m.hash, 4, Date.now())));
    const result = await client.publish(patient);
    const m = scripted.seen[0];
    if (m === undefined) throw new Error('the broker saw nothing');
    expect(scripted.seen).toHaveLength(1);
    expect(m.subject).toBe('phi.ingest.registration.Patient');
    expect(result).toEqual({ status: 'accepted', id: m.env.id, deliveries: 4 });
    expect(m.msgId).toBe(m.env.id);
    expect([m.env.iss, m.env.typ, m.env.kid]).toEqual(['registration', 'Patient', registration.sign.kid]);
    expect(() => verifyEnvelope(m.data, m.sig, registration.sign.publicKey)).not.toThrow();
    expect(m.env.keys.map((k) => k.to)).toEqual(['broker']);
    expect(m.opened).toEqual(patient);
    expect(new TextDecoder().decode(m.data)).not.toContain('Kettleburn');
    // JetStream kept exactly these bytes, with the de-duplication id and the signature
    const stored = await jsm.streams.getMessage(STREAMS.ingest, { last_by_subj: 'phi.ingest.registration.Patient' });
    expect(Buffer.from(stored.data).equals(Buffer.from(m.data))).toBe(true);
    expect(stored.header.get('Nats-Msg-Id')).toBe(result.id);
    expect(stored.header.get('Phi-Sig')).toBe(m.sig);
    expect(pendingCount(client)).toBe(0);
  });

  it('input that is not a resource is sealed raw on phi.ingest.<service>._raw, carrying the input', async () => {
    const { client } = await setup(5_000);
    // the broker's verdicts on raw input (src/broker/pipeline.ts): not JSON, or JSON but not FHIR
    scripted.answer = (m) => {
      const raw = (m.opened as { raw: Uint8Array }).raw;
      let code: 'E_JSON_MALFORMED' | 'E_NOT_FHIR' = 'E_NOT_FHIR';
      try {
        JSON.parse(new TextDecoder().decode(raw));
      } catch {
        code = 'E_JSON_MALFORMED';
      }
      return scripted.send(
        scripted.signed(rejectedReceipt(m.env.id, m.hash, new BrokerError(code, 'raw input'), Date.now())),
      );
    };
    const results: PublishResult[] = [];
    for (const input of ['not json', bytesOf('{"a":1}'), [1, 2], { resourceType: 'lower' }])
      results.push(await client.publish(input));
    expect(results.map((r) => [r.status, 'code' in r ? r.code : undefined])).toEqual([
      ['rejected', 'E_JSON_MALFORMED'],
      ['rejected', 'E_NOT_FHIR'],
      ['rejected', 'E_NOT_FHIR'],
      ['rejected', 'E_NOT_FHIR'],
    ]);
    expect(scripted.seen.map((m) => m.subject)).toEqual(Array(4).fill('phi.ingest.registration._raw'));
    expect(scripted.seen.map((m) => m.env.typ)).toEqual(Array(4).fill('$raw'));
    expect(scripted.seen.map((m) => new TextDecoder().decode((m.opened as { raw: Uint8Array }).raw))).toEqual([
      'not json',
      '{"a":1}',
      '[1,2]',
      '{"resourceType":"lower"}',
    ]);
  });
});

describe('PhiClient.publish: receipts', () => {
  it('a rejected receipt becomes a rejected result with code, message and path (no path when the receipt has none)', async () => {
    const { client } = await setup(5_000);
    scripted.answer = (m) => {
      const error =
        scripted.seen.length === 1
          ? new BrokerError('E_UNKNOWN_ELEMENT', 'Patient.x: no such element', { path: 'Patient.x' })
          : new BrokerError('E_REPLAY', 'a message with this id was already received');
      return scripted.send(scripted.signed(rejectedReceipt(m.env.id, m.hash, error, Date.now())));
    };
    const first = await client.publish(patient);
    expect(first).toEqual({
      status: 'rejected',
      id: scripted.seen[0]?.env.id,
      code: 'E_UNKNOWN_ELEMENT',
      message: 'Patient.x: no such element',
      path: 'Patient.x',
    });
    const second = await client.publish(patient);
    expect(second).toEqual({
      status: 'rejected',
      id: scripted.seen[1]?.env.id,
      code: 'E_REPLAY',
      message: 'a message with this id was already received',
    });
    expect('path' in second).toBe(false);
    expect(pendingCount(client)).toBe(0);
  });

  /** A receipt signed in a batch with one other message (signature version 2, docs/wire-format.md). */
  const batched = (bytes: Uint8Array, kind: SignedKind = 'receipt', keys = broker): WireReceipt => ({
    bytes,
    sig: signBatch(
      [
        { kind, bytes },
        { kind: 'delivery', bytes: bytesOf('{"other":"message"}') },
      ],
      keys.sign,
    )[0],
  });
  const invalid: [string, 'E_SIGNATURE' | 'E_ENVELOPE_INVALID' | 'E_KEY_UNKNOWN', (r: Receipt) => WireReceipt][] = [
    ['signed by a broker key it was not given', 'E_SIGNATURE', (r) => scripted.signed(r, impostor.sign.secretKey)],
    ['signed by the publisher itself', 'E_SIGNATURE', (r) => scripted.signed(r, registration.sign.secretKey)],
    ['without a signature', 'E_SIGNATURE', (r) => ({ bytes: encodeReceipt(r), sig: undefined })],
    ['with a malformed signature', 'E_SIGNATURE', (r) => ({ bytes: encodeReceipt(r), sig: 'abc' })],
    [
      'altered after signing',
      'E_SIGNATURE',
      (r) => {
        const s = scripted.signed(r);
        return { bytes: bytesOf(new TextDecoder().decode(s.bytes).replace('"accepted"', '"accepted" ')), sig: s.sig };
      },
    ],
    [
      'in a batch, its path altered',
      'E_SIGNATURE',
      (r) => {
        const b = batched(encodeReceipt(r));
        const [head, path] = [b.sig!.slice(0, b.sig!.lastIndexOf('.') + 1), b.sig!.slice(b.sig!.lastIndexOf('.') + 1)];
        return { bytes: b.bytes, sig: `${head}${path[0] === 'A' ? 'B' : 'A'}${path.slice(1)}` };
      },
    ],
    ['in a batch, signed as a delivery', 'E_SIGNATURE', (r) => batched(encodeReceipt(r), 'delivery')],
    [
      'in a batch, under a broker key it was not given',
      'E_KEY_UNKNOWN',
      (r) => batched(encodeReceipt(r), 'receipt', impostor),
    ],
    // signed by the broker but not a receipt (bytes quoting a name: they must never reach the log)
    ['that is not a receipt', 'E_ENVELOPE_INVALID', () => scripted.signedBytes(bytesOf('{"Kettleburn": '))],
    // a receipt in the format before `hash` existed (an older broker)
    [
      'without a hash',
      'E_ENVELOPE_INVALID',
      (r) =>
        scripted.signedBytes(bytesOf(JSON.stringify({ v: 1, id: r.id, status: 'accepted', deliveries: 1, at: r.at }))),
    ],
  ];

  it.each(invalid)(
    'ignores a receipt %s (%s logged): stored (JetStream acknowledged) at the deadline',
    async (_n, code, make) => {
      const { nc, client, logs } = await setup(300);
      scripted.answer = (m) => scripted.send(make(acceptedReceipt(m.env.id, m.hash, 1, Date.now())));
      const result = await client.publish(patient);
      expect(result).toEqual({
        status: 'stored',
        id: scripted.seen[0]?.env.id,
        message: 'JetStream stored the message; no receipt from the broker by the deadline',
      });
      await scripted.settled(); // the bad receipt is on the server …
      await nc.flush(); // … and, being before the PONG, has reached the client
      const logged = logs.records().filter((r) => r['event'] === 'sdk.receipt.invalid');
      expect(logged.map((r) => r['code'])).toEqual([code]);
      expect(logs.text).not.toContain('Kettleburn');
      expect(pendingCount(client)).toBe(0);
    },
  );

  it.each(invalid)(
    'ignores a receipt %s (%s): the genuine receipt after it settles the publish',
    async (_n, code, make) => {
      const { client, logs } = await setup(5_000);
      scripted.answer = async (m) => {
        await scripted.send(make(acceptedReceipt(m.env.id, m.hash, 1, Date.now())));
        await scripted.send(scripted.signed(acceptedReceipt(m.env.id, m.hash, 7, Date.now())));
      };
      expect(await client.publish(patient)).toEqual({
        status: 'accepted',
        id: scripted.seen[0]?.env.id,
        deliveries: 7,
      });
      expect(
        logs
          .records()
          .filter((r) => r['event'] === 'sdk.receipt.invalid')
          .map((r) => r['code']),
      ).toEqual([code]);
    },
  );

  const notOurs: [string, (m: Ingested) => { receipt: Receipt; service?: string }][] = [
    ['a receipt for another message id', (m) => ({ receipt: acceptedReceipt('someone-else', m.hash, 1, Date.now()) })],
    [
      'a receipt with our id but the hash of other bytes (a forgery reusing the id)',
      (m) => ({ receipt: forgedVerdict(m.env.id) }),
    ],
    [
      'our receipt sent to another service (phi.receipt.ehr)',
      (m) => ({ receipt: acceptedReceipt(m.env.id, m.hash, 1, Date.now()), service: 'ehr' }),
    ],
  ];

  it.each(notOurs)('%s does not settle this publish: stored at the deadline', async (_n, make) => {
    const { nc, client, logs } = await setup(300);
    scripted.answer = (m) => {
      const { receipt, service } = make(m);
      return scripted.send(scripted.signed(receipt), service);
    };
    const result = await client.publish(patient);
    expect(result).toMatchObject({ status: 'stored', id: scripted.seen[0]?.env.id });
    await scripted.settled();
    await nc.flush();
    // a genuine receipt, just not about this message: nothing to warn about
    expect(logs.records().filter((r) => r['event'] === 'sdk.receipt.invalid')).toEqual([]);
    expect(pendingCount(client)).toBe(0);
  });

  it.each(notOurs)('%s is passed over: the genuine receipt after it settles the publish', async (_n, make) => {
    const { client } = await setup(5_000);
    scripted.answer = async (m) => {
      const { receipt, service } = make(m);
      await scripted.send(scripted.signed(receipt), service);
      await scripted.send(scripted.signed(acceptedReceipt(m.env.id, m.hash, 3, Date.now())));
    };
    expect(await client.publish(patient)).toEqual({ status: 'accepted', id: scripted.seen[0]?.env.id, deliveries: 3 });
    expect(pendingCount(client)).toBe(0);
  });

  it('checks no signature on a receipt it does not wait for: a forged one for another id is passed over, not logged', async () => {
    const { nc, client, logs } = await setup(300);
    scripted.answer = (m) =>
      scripted.send(scripted.signed(acceptedReceipt('someone-else', m.hash, 1, Date.now()), impostor.sign.secretKey));
    expect(await client.publish(patient)).toMatchObject({ status: 'stored', id: scripted.seen[0]?.env.id });
    await scripted.settled();
    await nc.flush();
    // Every instance of a service gets all its receipts: only those it waits for cost a verification (and a warning).
    expect(logs.records().filter((r) => r['event'] === 'sdk.receipt.invalid')).toEqual([]);
    expect(pendingCount(client)).toBe(0);
  });

  it('concurrent publishes each settle on their own receipt, whatever the order receipts come in', async () => {
    const { client } = await setup(5_000);
    scripted.answer = async (m) => {
      if (m !== scripted.seen[2]) return; // answer all three at once, newest first
      for (const [i, s] of [...scripted.seen].reverse().entries())
        await scripted.send(scripted.signed(acceptedReceipt(s.env.id, s.hash, 10 + i, Date.now())));
    };
    const results = await Promise.all([client.publish(patient), client.publish(patient), client.publish(patient)]);
    const byId = new Map(scripted.seen.map((s, i) => [s.env.id, 12 - i]));
    expect(results.map((r) => (r.status === 'accepted' ? r.deliveries : r.status))).toEqual(
      results.map((r) => byId.get(r.id)),
    );
    expect(new Set(results.map((r) => r.id)).size).toBe(3);
    expect(pendingCount(client)).toBe(0);
  });
});

describe('PhiClient.publish: JetStream failures', () => {
  async function withoutIngestStream(run: () => Promise<void>): Promise<void> {
    await jsm.streams.delete(STREAMS.ingest);
    try {
      await run();
    } finally {
      await ensureBrokerInfrastructure(admin, SETTINGS);
    }
  }

  it('no stream and no responder (503): the same message is sent again with backoff until the deadline, then not_stored, not in doubt', async () => {
    const { client, logs } = await setup(1_500);
    await scripted.stopListening(); // with no core subscriber either, the server answers "no responders"
    try {
      await withoutIngestStream(async () => {
        const result = await client.publish(patient);
        expect(result).toEqual({
          status: 'not_stored',
          id: expect.any(String),
          code: 'E_NOT_STORED',
          message: expect.stringMatching(
            /^JetStream did not acknowledge the message by the deadline \(\d+ attempts?; last: no stream answered \(no responders\)\)$/,
          ),
          inDoubt: false,
        });
        const retries = logs.records().filter((r) => r['event'] === 'sdk.publish.retry' && r['id'] === result.id);
        expect(retries.length).toBeGreaterThanOrEqual(2);
        expect(retries.map((r) => r['attempt'])).toEqual(retries.map((_r, i) => i + 1));
        const notStored = logs.records().filter((r) => r['event'] === 'sdk.publish.not_stored');
        expect(notStored.map((r) => [r['id'], r['reason'], r['inDoubt']])).toEqual([[result.id, 'deadline', false]]);
        expect(pendingCount(client)).toBe(0);
      });
    } finally {
      await scripted.listen();
    }
  });

  it('an unacknowledged publish is never "rejected": a receipt proves storage (accepted, attempts stop); silence ends not_stored, in doubt', async () => {
    // No stream stores it, but the scripted broker listens (core): it receives each attempt and no PubAck comes.
    const { client, logs } = await setup(2_000);
    await withoutIngestStream(async () => {
      scripted.answer = async (m) => {
        if ((m.opened as { id?: unknown }).id !== 'p-ack-lost-answered') return;
        await scripted.send(scripted.signed(acceptedReceipt(m.env.id, m.hash, 2, Date.now())));
      };
      const [answered, silent] = await Promise.all([
        client.publish({ ...patient, id: 'p-ack-lost-answered' }),
        client.publish({ ...patient, id: 'p-ack-lost-silent' }),
      ]);
      expect(answered).toEqual({ status: 'accepted', id: expect.any(String), deliveries: 2 });
      expect(silent).toEqual({
        status: 'not_stored',
        id: expect.any(String),
        code: 'E_NOT_STORED',
        message:
          'JetStream did not acknowledge the message by the deadline (1 attempt; last: no acknowledgement by the deadline)',
        inDoubt: true,
      });
      // one attempt each: the receipt stopped the first; the second waited for its acknowledgement until the deadline
      expect(scripted.seen.map((m) => m.env.id).sort()).toEqual([answered.id, silent.id].sort());
      const notStored = logs.records().filter((r) => r['event'] === 'sdk.publish.not_stored');
      expect(notStored.map((r) => [r['id'], r['inDoubt']])).toEqual([[silent.id, true]]);
      expect(pendingCount(client)).toBe(0);
    });
  }, 20_000);

  it('deadlines and the queue bound outside their range are caller mistakes (TypeError naming the option)', async () => {
    const { client } = await setup(5_000);
    for (const deadlineMs of [0, -1, 1.5, 120_001, Number.NaN])
      await expect(client.publish(patient, { deadlineMs })).rejects.toThrow(
        new TypeError('deadlineMs must be a whole number from 1 to 120000'),
      );
    const nc = await nats.connect('bad-options');
    const base = { nc, service: 'registration', keys: registration, peers: publicRecords(broker), insecure: true };
    await expect(PhiClient.connect({ ...base, publishDeadlineMs: 120_001 })).rejects.toThrow(
      new TypeError('publishDeadlineMs must be a whole number from 1 to 120000'),
    );
    await expect(PhiClient.connect({ ...base, maxPendingPublishes: 0 })).rejects.toThrow(
      new TypeError('maxPendingPublishes must be a whole number from 1 to 1000000'),
    );
    expect(scripted.seen).toHaveLength(0);
    await nc.close();
  });
});

describe('PhiClient.publish: max_payload', () => {
  const limit = MAX_PAYLOAD - 1024; // PhiClient keeps 1 KiB for headers
  /** The longest family name whose sealed Patient still fits (binary search over a monotonic size). */
  function longestFitting(): number {
    let lo = 0;
    let hi = MAX_PAYLOAD;
    while (lo < hi) {
      const mid = Math.ceil((lo + hi) / 2);
      if (sealedSize({ ...patient, name: [{ family: 'K'.repeat(mid) }] }) <= limit) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  it('the largest message PhiClient lets through is carried by NATS; one character more is rejected E_TOO_LARGE locally, unsent', async () => {
    const { nc, client } = await setup(5_000);
    scripted.answer = (m) => scripted.send(scripted.signed(acceptedReceipt(m.env.id, m.hash, 1, Date.now())));
    const n = longestFitting();
    const fits = { ...patient, name: [{ family: 'K'.repeat(n) }] };
    const tooBig = { ...patient, name: [{ family: 'K'.repeat(n + 1) }] };
    const tooBigSize = sealedSize(tooBig);
    expect(tooBigSize).toBeGreaterThan(limit);

    expect(await client.publish(fits)).toMatchObject({ status: 'accepted', deliveries: 1 });
    expect(scripted.seen.map((m) => m.data.byteLength)).toEqual([sealedSize(fits)]);

    const before = (await jsm.streams.info(STREAMS.ingest)).state.messages;
    const result = await client.publish(tooBig);
    expect(result).toEqual({
      status: 'rejected',
      id: expect.any(String),
      code: 'E_TOO_LARGE',
      message: `sealed message is ${tooBigSize} bytes; the limit is ${MAX_PAYLOAD - 1024} (NATS max_payload ${MAX_PAYLOAD} less room for headers)`,
    });
    await nc.flush();
    expect((await jsm.streams.info(STREAMS.ingest)).state.messages).toBe(before);
    expect(scripted.seen).toHaveLength(1);
    expect(pendingCount(client)).toBe(0);
  });

  it('a message far over max_payload is rejected E_TOO_LARGE without publishing', async () => {
    const { client } = await setup(5_000);
    const result = await client.publish({ ...patient, name: [{ family: 'K'.repeat(2 * MAX_PAYLOAD) }] });
    expect(result).toMatchObject({ status: 'rejected', code: 'E_TOO_LARGE' });
    const size = Number(
      /^sealed message is (\d+) bytes; the limit is 64512 \(NATS max_payload 65536 less room for headers\)$/.exec(
        (result as { message: string }).message,
      )?.[1],
    );
    expect(size).toBeGreaterThan(2 * MAX_PAYLOAD);
    expect(scripted.seen).toHaveLength(0);
    expect(pendingCount(client)).toBe(0);
  });
});

describe('PhiClient.close', () => {
  it('settles a publish JetStream stored and still waiting for its receipt as stored, and leaves a connection it does not own open', async () => {
    const { nc, client } = await setup(30_000);
    const pending = client.publish(patient);
    await scripted.waitForSeen(1);
    expect(pendingCount(client)).toBe(1);
    await client.close();
    expect(await pending).toEqual({
      status: 'stored',
      id: scripted.seen[0]?.env.id,
      message: "JetStream stored the message; the client closed before the broker's receipt arrived",
    });
    const stored = await jsm.streams.getMessage(STREAMS.ingest, { last_by_subj: 'phi.ingest.registration.Patient' });
    expect(stored.header.get('Nats-Msg-Id')).toBe(scripted.seen[0]?.env.id);
    // A closed client refuses to publish (a caller mistake), instead of sending and waiting for nothing.
    await expect(client.publish({ resourceType: 'Patient', id: 'late' })).rejects.toThrow(TypeError);
    expect(pendingCount(client)).toBe(0);
    expect(nc.isClosed()).toBe(false);
  });

  it('unsubscribes from receipts: the server stops sending them to the client connection', async () => {
    const { nc, client } = await setup(5_000);
    const receipt = scripted.signed(acceptedReceipt('m-close', envelopeHash(bytesOf('x')), 1, Date.now()));
    const received = async (): Promise<number> => {
      const before = nc.stats().inMsgs;
      await scripted.send(receipt);
      await nc.flush();
      return nc.stats().inMsgs - before;
    };
    expect(await received()).toBe(1);
    await client.close();
    expect(await received()).toBe(0);
  });
});
