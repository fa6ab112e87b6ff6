// PhiClient.publish without a server (src/sdk/client.ts): a stand-in NATS connection records what is published and
// hands the client receipts, so receipt verification, timeouts, publish failures and the pending map are checked
// deterministically. Subscriptions need JetStream and are tested in client.int.test.ts.
import { Writable } from 'node:stream';
import type { NatsConnection } from 'nats';
import { beforeAll, describe, expect, it } from 'vitest';
import { acceptedReceipt, encodeReceipt, rejectedReceipt, type Receipt } from '../../src/broker/receipt.js';
import { Keyring } from '../../src/crypto/keyring.js';
import { generateServiceKeys, publicRecords, type ServiceKeys } from '../../src/crypto/keys.js';
import { signDetached } from '../../src/crypto/sign.js';
import { initCrypto } from '../../src/crypto/sodium.js';
import { openEnvelope, parseEnvelope, verifyEnvelope } from '../../src/envelope/open.js';
import { BrokerError } from '../../src/errors.js';
import { createLogger } from '../../src/log.js';
import { PhiClient } from '../../src/sdk/client.js';

type ReceiptCallback = (err: Error | null, msg: { data: Uint8Array; headers?: { get(k: string): string } }) => void;

interface Published {
  subject: string;
  data: Uint8Array;
  msgID: string | undefined;
  sig: string | undefined;
}

/** The part of a NatsConnection PhiClient.publish uses, recording publishes; `onPublish` decides each outcome. */
class FakeNats {
  readonly published: Published[] = [];
  receiptSubject = '';
  unsubscribed = false;
  private callback: ReceiptCallback | undefined;
  onPublish: (p: Published) => Promise<void> = async () => undefined;
  info: { max_payload: number } | undefined = { max_payload: 1024 * 1024 };

  subscribe(subject: string, opts: { callback: ReceiptCallback }): { unsubscribe(): void } {
    this.receiptSubject = subject;
    this.callback = opts.callback;
    return { unsubscribe: () => void (this.unsubscribed = true) };
  }
  async flush(): Promise<void> {}
  jetstream(): { publish(subject: string, data: Uint8Array, opts: { msgID?: string; headers?: { get(k: string): string } }): Promise<unknown> } {
    return {
      publish: async (subject, data, opts) => {
        const p = { subject, data, msgID: opts.msgID, sig: opts.headers?.get('Phi-Sig') };
        this.published.push(p);
        await this.onPublish(p);
        return { stream: 'PHI_INGEST', seq: this.published.length, duplicate: false };
      },
    };
  }
  /** Delivers a receipt on the client's receipt subscription. */
  receipt(bytes: Uint8Array, sig: string | undefined): void {
    this.callback?.(null, { data: bytes, headers: { get: (k: string) => (k === 'Phi-Sig' ? (sig ?? '') : '') } });
  }
  asConnection(): NatsConnection {
    // A test double: only the members PhiClient.publish touches exist (see the class above).
    return this as unknown as NatsConnection;
  }
}

class Capture extends Writable {
  text = '';
  override _write(chunk: Buffer, _e: BufferEncoding, cb: () => void): void {
    this.text += chunk.toString('utf8');
    cb();
  }
}

let broker: ServiceKeys;
let registration: ServiceKeys;
let impostor: ServiceKeys;

beforeAll(async () => {
  await initCrypto();
  broker = generateServiceKeys('broker');
  registration = generateServiceKeys('registration');
  impostor = generateServiceKeys('broker', 2); // a broker key the client was never given
});

const patient = { resourceType: 'Patient', id: 'p-sdk-1', name: [{ family: 'Kettleburn' }] };

function signed(r: Receipt, keys: ServiceKeys = broker): { bytes: Uint8Array; sig: string } {
  const bytes = encodeReceipt(r);
  return { bytes, sig: Buffer.from(signDetached(bytes, keys.sign.secretKey)).toString('base64url') };
}

async function setup(receiptTimeoutMs = 2_000): Promise<{ nats: FakeNats; client: PhiClient; logs: Capture }> {
  const nats = new FakeNats();
  const logs = new Capture();
  const client = await PhiClient.connect({
    nc: nats.asConnection(),
    service: 'registration',
    keys: registration,
    peers: publicRecords(broker),
    receiptTimeoutMs,
    logger: createLogger({ destination: logs, level: 'debug' }),
  });
  return { nats, client, logs };
}

function pendingCount(client: PhiClient): number {
  // White-box: the map of publishes waiting for a receipt must not keep entries once a publish has settled.
  return (client as unknown as { pending: Map<string, unknown> }).pending.size;
}

describe('PhiClient.publish', () => {
  it('refuses peers without the broker signing key (TypeError)', async () => {
    const nats = new FakeNats();
    await expect(PhiClient.connect({ nc: nats.asConnection(), service: 'registration', keys: registration, peers: [] })).rejects.toThrow(TypeError);
  });

  it('seals a resource to the broker on phi.ingest.<service>.<Type>, Nats-Msg-Id = message id, signed', async () => {
    const { nats, client } = await setup();
    nats.onPublish = async (p) => {
      const env = parseEnvelope(p.data);
      queueMicrotask(() => {
        const r = signed(acceptedReceipt(env.id, 4, 1));
        nats.receipt(r.bytes, r.sig);
      });
    };
    const result = await client.publish(patient);
    expect(nats.receiptSubject).toBe('phi.receipt.registration');
    const p = nats.published[0];
    if (p === undefined) throw new Error('nothing published');
    expect(p.subject).toBe('phi.ingest.registration.Patient');
    const env = parseEnvelope(p.data);
    expect(p.msgID).toBe(env.id);
    expect(result).toEqual({ status: 'accepted', id: env.id, deliveries: 4 });
    expect(() => verifyEnvelope(p.data, p.sig, registration.sign.publicKey)).not.toThrow();
    expect(env.keys.map((k) => k.to)).toEqual(['broker']);
    const brokerRing = new Keyring(broker, publicRecords(registration));
    expect(openEnvelope(env, 'broker', (id) => brokerRing.kekForId(id))).toEqual(patient);
    expect(new TextDecoder().decode(p.data)).not.toContain('Kettleburn');
    expect(pendingCount(client)).toBe(0);
  });

  it('input that is not a resource is sealed raw on phi.ingest.<service>._raw', async () => {
    const { nats, client } = await setup(30);
    for (const input of ['not json', new TextEncoder().encode('{"a":1}'), [1, 2], { resourceType: 'lower' }]) await client.publish(input);
    expect(nats.published.map((p) => p.subject)).toEqual(Array(4).fill('phi.ingest.registration._raw'));
    expect(nats.published.map((p) => parseEnvelope(p.data).typ)).toEqual(Array(4).fill('$raw'));
  });

  it('a rejected receipt becomes a rejected result with code, message and path', async () => {
    const { nats, client } = await setup();
    nats.onPublish = async (p) => {
      const id = parseEnvelope(p.data).id;
      queueMicrotask(() => {
        const r = signed(rejectedReceipt(id, new BrokerError('E_UNKNOWN_ELEMENT', 'Patient.x: no such element', { path: 'Patient.x' }), 1));
        nats.receipt(r.bytes, r.sig);
      });
    };
    const result = await client.publish(patient);
    expect(result).toMatchObject({ status: 'rejected', code: 'E_UNKNOWN_ELEMENT', message: 'Patient.x: no such element', path: 'Patient.x' });
  });

  it.each([
    ['signed by a broker key it was not given', (r: Receipt) => signed(r, impostor)],
    ['signed by the publisher itself', (r: Receipt) => signed(r, registration)],
    ['without a signature', (r: Receipt) => ({ bytes: encodeReceipt(r), sig: undefined })],
    ['with a malformed signature', (r: Receipt) => ({ bytes: encodeReceipt(r), sig: 'abc' })],
    ['altered after signing', (r: Receipt) => {
      const s = signed(r);
      return { bytes: new TextEncoder().encode(new TextDecoder().decode(s.bytes).replace('"accepted"', '"accepted" ')), sig: s.sig };
    }],
  ])('ignores a receipt %s (E_SIGNATURE logged) and reports unknown on timeout', async (_n, make) => {
    const { nats, client, logs } = await setup(50);
    nats.onPublish = async (p) => {
      const id = parseEnvelope(p.data).id;
      queueMicrotask(() => {
        const r = make(acceptedReceipt(id, 1, 1));
        nats.receipt(r.bytes, r.sig);
      });
    };
    const result = await client.publish(patient);
    expect(result).toMatchObject({ status: 'unknown', code: 'E_TIMEOUT', message: 'no receipt from the broker in time' });
    expect(logs.text).toContain('"event":"sdk.receipt.invalid"');
    expect(logs.text).toContain('"code":"E_SIGNATURE"');
    expect(pendingCount(client)).toBe(0);
  });

  it('ignores a signed receipt that is not a receipt, logging E_ENVELOPE_INVALID (never the bytes)', async () => {
    const { nats, client, logs } = await setup(50);
    nats.onPublish = async () => {
      queueMicrotask(() => {
        const bytes = new TextEncoder().encode('{"Kettleburn": ');
        nats.receipt(bytes, Buffer.from(signDetached(bytes, broker.sign.secretKey)).toString('base64url'));
      });
    };
    expect((await client.publish(patient)).status).toBe('unknown');
    expect(logs.text).toContain('"code":"E_ENVELOPE_INVALID"');
    expect(logs.text).not.toContain('Kettleburn');
  });

  it('a receipt for another message id does not settle this publish', async () => {
    const { nats, client } = await setup(50);
    nats.onPublish = async () => {
      queueMicrotask(() => {
        const r = signed(acceptedReceipt('someone-else', 1, 1));
        nats.receipt(r.bytes, r.sig);
      });
    };
    expect((await client.publish(patient)).status).toBe('unknown');
  });

  it('a publish NATS refuses (no stream answering) is rejected with E_INTERNAL and leaves nothing pending', async () => {
    const { nats, client, logs } = await setup(5_000);
    nats.onPublish = async () => {
      throw Object.assign(new Error('503'), { name: 'NatsError', code: '503' });
    };
    const result = await client.publish(patient);
    expect(result).toMatchObject({ status: 'rejected', code: 'E_INTERNAL', message: 'NATS did not accept the message' });
    expect(logs.text).toContain('"event":"sdk.publish.failed"');
    expect(pendingCount(client)).toBe(0);
  });

  it('a publish whose acknowledgement timed out is not "rejected": the receipt still settles it', async () => {
    const { nats, client } = await setup(2_000);
    nats.onPublish = async (p) => {
      // JetStream stored it but its ack was lost: the broker still answers.
      const id = parseEnvelope(p.data).id;
      setTimeout(() => {
        const r = signed(acceptedReceipt(id, 2, 1));
        nats.receipt(r.bytes, r.sig);
      }, 10);
      throw Object.assign(new Error('TIMEOUT'), { name: 'NatsError', code: 'TIMEOUT' });
    };
    expect(await client.publish(patient)).toMatchObject({ status: 'accepted', deliveries: 2 });
  });

  it('a publish whose acknowledgement timed out and gets no receipt is "unknown"', async () => {
    const { nats, client } = await setup(50);
    nats.onPublish = async () => {
      throw Object.assign(new Error('TIMEOUT'), { name: 'NatsError', code: 'TIMEOUT' });
    };
    expect(await client.publish(patient)).toMatchObject({ status: 'unknown', code: 'E_TIMEOUT' });
    expect(pendingCount(client)).toBe(0);
  });

  it('a message NATS cannot carry is rejected E_TOO_LARGE locally, without publishing', async () => {
    const { nats, client } = await setup();
    nats.info = { max_payload: 4096 };
    const big = { ...patient, name: [{ family: 'K'.repeat(5000) }] };
    const result = await client.publish(big);
    expect(result).toMatchObject({ status: 'rejected', code: 'E_TOO_LARGE' });
    expect((result as { message: string }).message).toMatch(/^sealed message is \d+ bytes; NATS accepts at most 4096$/);
    expect(nats.published).toHaveLength(0);
    expect(pendingCount(client)).toBe(0);
  });

  it('close() unsubscribes from receipts', async () => {
    const { nats, client } = await setup();
    await client.close();
    expect(nats.unsubscribed).toBe(true);
  });
});
