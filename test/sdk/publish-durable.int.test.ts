// PhiClient.publish through network faults (src/sdk/durable-publish.ts, docs/publishing.md), against a real
// nats-server with the broker's JetStream streams. The client reaches the server through a loopback TCP proxy
// (test/helpers/tcp-proxy.ts) that cuts connections, refuses them, or swallows the server's replies on cue; the test
// plays the broker (test/helpers/scripted-broker.ts) on a direct connection and counts what PHI_INGEST stores.
// One server per file; the process-kill fault runs in test/e2e/fault-nats-restart.test.ts.
import { Writable } from 'node:stream';
import type { JetStreamManager, NatsConnection } from 'nats';
import { connect } from 'nats';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { acceptedReceipt, rejectedReceipt } from '../../src/wire/receipt.js';
import { generateServiceKeys, publicRecords, type ServiceKeys } from '../../src/crypto/keys.js';
import { initCrypto } from '../../src/crypto/sodium.js';
import { BrokerError } from '../../src/wire/errors.js';
import { createLogger } from '../../src/log/log.js';
import { STREAMS } from '../../src/wire/names.js';
import { DUPLICATE_WINDOW_MIN_MS } from '../../src/wire/publish.js';
import { ensureBrokerInfrastructure, type StreamSettings } from '../../src/nats/setup.js';
import { PhiClient, type PhiClientOptions, type PublishResult } from '../../src/sdk/client.js';
import { startTestNats, type TestNats } from '../helpers/nats.js';
import { ScriptedBroker } from '../helpers/scripted-broker.js';
import { startTcpProxy, type TcpProxy } from '../helpers/tcp-proxy.js';

const SETTINGS: StreamSettings = {
  deliverMaxAgeMs: DUPLICATE_WINDOW_MIN_MS,
  quarantineMaxAgeMs: DUPLICATE_WINDOW_MIN_MS,
  receiptMaxAgeMs: DUPLICATE_WINDOW_MIN_MS,
  duplicateWindowMs: DUPLICATE_WINDOW_MIN_MS,
  replayWindowMs: DUPLICATE_WINDOW_MIN_MS,
  ackWaitMs: 30_000,
  replicas: 1,
};

class Lines extends Writable {
  readonly records: Record<string, unknown>[] = [];
  override _write(chunk: Buffer, _e: BufferEncoding, cb: () => void): void {
    for (const l of chunk.toString('utf8').split('\n')) if (l !== '') this.records.push(JSON.parse(l));
    cb();
  }
}

let nats: TestNats;
let jsm: JetStreamManager;
let scripted: ScriptedBroker;
let scriptedNc: NatsConnection;
let proxy: TcpProxy;
let broker: ServiceKeys;
let registration: ServiceKeys;
const opened: { client: PhiClient; nc: NatsConnection }[] = [];

beforeAll(async () => {
  await initCrypto();
  broker = generateServiceKeys('broker');
  registration = generateServiceKeys('registration');
  nats = await startTestNats({ tls: false });
  const admin = await nats.connect('admin');
  jsm = await admin.jetstreamManager();
  await ensureBrokerInfrastructure(admin, SETTINGS);
  scriptedNc = await nats.connect('scripted-broker');
  scripted = new ScriptedBroker(scriptedNc, broker, registration);
  await scripted.listen();
  proxy = await startTcpProxy({ host: '127.0.0.1', port: nats.server.port });
});

afterAll(async () => {
  await proxy?.close();
  await nats?.stop();
});

beforeEach(async () => {
  proxy.refuse = false;
  proxy.dropReplies = false;
  await scripted.reset();
});

afterEach(async () => {
  proxy.refuse = false;
  proxy.dropReplies = false;
  for (const { client, nc } of opened.splice(0)) {
    await client.close();
    await nc.close();
  }
  await scripted.settled();
  expect(scripted.failures).toEqual([]);
});

const patient = { resourceType: 'Patient', id: 'p-durable', name: [{ family: 'Quillfeather' }] };

/** A client whose connection goes through the proxy (reconnecting for ever, every 50 ms). */
async function setup(
  options: Partial<PhiClientOptions> = {},
): Promise<{ nc: NatsConnection; client: PhiClient; logs: Lines }> {
  const nc = await connect({
    servers: proxy.url,
    name: 'registration',
    maxReconnectAttempts: -1,
    reconnectTimeWait: 50,
  });
  const logs = new Lines();
  const client = await PhiClient.connect({
    nc,
    service: 'registration',
    keys: registration,
    peers: publicRecords(broker),
    logger: createLogger({ destination: logs, level: 'debug' }),
    insecure: true,
    ...options,
  });
  opened.push({ client, nc });
  return { nc, client, logs };
}

/** Resolves at the connection's next status event of `type` (subscribe before causing it). */
function next(nc: NatsConnection, type: 'disconnect' | 'reconnect'): Promise<void> {
  const events = nc.status();
  return (async () => {
    for await (const s of events) {
      if (s.type === type) return;
    }
  })();
}

async function ingestCount(): Promise<number> {
  return (await jsm.streams.info(STREAMS.ingest)).state.messages;
}

/** Until PHI_INGEST holds `n` messages: one stream-info round trip per turn, at most 200 turns. */
async function untilStored(n: number): Promise<void> {
  for (let i = 0; i < 200; i++) if ((await ingestCount()) >= n) return;
  throw new Error(`PHI_INGEST never held ${n} messages`);
}

/** Takes the client's connection down and keeps it down (the proxy refuses reconnects). */
async function outage(nc: NatsConnection): Promise<void> {
  const down = next(nc, 'disconnect');
  proxy.refuse = true;
  proxy.cut();
  await down;
}

async function pendingAfterRoundTrip(p: Promise<PublishResult>): Promise<boolean> {
  let settled = false;
  void p.then(() => (settled = true));
  await scriptedNc.flush();
  await new Promise((r) => setImmediate(r));
  return !settled;
}

describe('a lost acknowledgement', () => {
  it('the same bytes, Nats-Msg-Id and signature go again after the reconnect; PHI_INGEST stores them once', async () => {
    const { nc, client, logs } = await setup({ publishDeadlineMs: 20_000 });
    scripted.answer = (m) =>
      m === scripted.seen[1]
        ? scripted.send(scripted.signed(acceptedReceipt(m.env.id, m.hash, 3, Date.now())))
        : undefined;
    const before = await ingestCount();
    proxy.dropReplies = true; // the server stores the message; its PubAck never reaches the client
    const result = client.publish(patient);
    await scripted.waitForSeen(1);
    await untilStored(before + 1);
    const back = next(nc, 'reconnect');
    proxy.dropReplies = false;
    proxy.cut();
    await back;
    const r = await result;
    const [first, resend] = scripted.seen;
    if (first === undefined || resend === undefined) throw new Error('the resend never came');
    expect(r).toEqual({ status: 'accepted', id: first.env.id, deliveries: 3 });
    expect(scripted.seen).toHaveLength(2);
    expect(Buffer.from(resend.data).equals(Buffer.from(first.data))).toBe(true);
    expect([resend.msgId, resend.sig]).toEqual([first.msgId, first.sig]);
    expect(first.msgId).toBe(r.id);
    expect(await ingestCount()).toBe(before + 1); // JetStream de-duplicated the resend
    const retries = logs.records.filter((l) => l['event'] === 'sdk.publish.retry' && l['id'] === r.id);
    expect(retries.map((l) => l['reason'])).toEqual(['the connection dropped before an acknowledgement']);
  });

  it('a resend the broker calls a replay (it processed the first copy, whose receipt was lost) is stored, not rejected', async () => {
    const { nc, client } = await setup({ publishDeadlineMs: 20_000 });
    scripted.answer = (m) =>
      scripted.send(
        scripted.signed(
          m === scripted.seen[0]
            ? acceptedReceipt(m.env.id, m.hash, 1, Date.now())
            : rejectedReceipt(
                m.env.id,
                m.hash,
                new BrokerError('E_REPLAY', 'a message with this id was already received', { path: 'id' }),
                Date.now(),
              ),
        ),
      );
    const before = await ingestCount();
    proxy.dropReplies = true; // the PubAck and the first receipt are lost
    const result = client.publish(patient);
    await scripted.waitForSeen(1);
    await untilStored(before + 1);
    await scripted.settled();
    const back = next(nc, 'reconnect');
    proxy.dropReplies = false;
    proxy.cut();
    await back;
    expect(await result).toEqual({
      status: 'stored',
      id: scripted.seen[0]?.env.id,
      message:
        'JetStream stored the message; the broker processed an earlier copy whose receipt did not reach this client',
    });
    expect(scripted.seen).toHaveLength(2);
  });
});

describe('an outage', () => {
  it('shorter than the deadline: the publish waits, goes out after the reconnect, and is accepted once', async () => {
    const { nc, client } = await setup({ publishDeadlineMs: 20_000 });
    scripted.answer = (m) => scripted.send(scripted.signed(acceptedReceipt(m.env.id, m.hash, 2, Date.now())));
    const before = await ingestCount();
    await outage(nc);
    const result = client.publish(patient);
    expect(await pendingAfterRoundTrip(result)).toBe(true);
    expect(scripted.seen).toHaveLength(0); // nothing handed to NATS while it is down
    proxy.refuse = false;
    expect(await result).toEqual({ status: 'accepted', id: scripted.seen[0]?.env.id, deliveries: 2 });
    expect(scripted.seen).toHaveLength(1);
    expect(await ingestCount()).toBe(before + 1);
  });

  it('longer than the deadline: not_stored, not in doubt, and nothing reaches JetStream after the reconnect', async () => {
    const { nc, client, logs } = await setup();
    const before = await ingestCount();
    await outage(nc);
    const r = await client.publish(patient, { deadlineMs: 700 });
    expect(r).toEqual({
      status: 'not_stored',
      id: expect.any(String),
      code: 'E_NOT_STORED',
      message: 'JetStream did not acknowledge the message by the deadline (0 attempts; last: no connection to NATS)',
      inDoubt: false,
    });
    const back = next(nc, 'reconnect');
    proxy.refuse = false;
    await back;
    await nc.flush(); // anything nats.js still held for the server has reached it now
    await scriptedNc.flush();
    expect(scripted.seen).toHaveLength(0);
    expect(await ingestCount()).toBe(before);
    expect(logs.records.filter((l) => l['event'] === 'sdk.publish.not_stored').map((l) => l['id'])).toEqual([r.id]);
    expect(JSON.stringify(logs.records)).not.toContain('Quillfeather');
  });

  it('a full queue refuses the next publish at once (E_QUEUE_FULL, unsent); the held ones go out after the reconnect', async () => {
    const { nc, client } = await setup({ publishDeadlineMs: 20_000, maxPendingPublishes: 2 });
    scripted.answer = (m) => scripted.send(scripted.signed(acceptedReceipt(m.env.id, m.hash, 1, Date.now())));
    await outage(nc);
    const held = [client.publish({ ...patient, id: 'held-1' }), client.publish({ ...patient, id: 'held-2' })];
    const refused = await client.publish({ ...patient, id: 'refused' });
    expect(refused).toEqual({
      status: 'not_stored',
      id: expect.any(String),
      code: 'E_QUEUE_FULL',
      message: '2 publishes are already waiting for JetStream (maxPendingPublishes); the message was not sent',
      inDoubt: false,
    });
    expect(await pendingAfterRoundTrip(Promise.race(held))).toBe(true);
    proxy.refuse = false;
    const results = await Promise.all(held);
    expect(results.map((r) => r.status)).toEqual(['accepted', 'accepted']);
    expect(scripted.seen.map((m) => (m.opened as { id: string }).id).sort()).toEqual(['held-1', 'held-2']);
    // once they have settled, there is room again
    expect(await client.publish({ ...patient, id: 'after' })).toMatchObject({ status: 'accepted' });
  });

  it('close() during the outage settles a waiting publish as not_stored, not in doubt, without waiting for NATS', async () => {
    const { nc, client } = await setup({ publishDeadlineMs: 20_000 });
    await outage(nc);
    const result = client.publish(patient);
    expect(await pendingAfterRoundTrip(result)).toBe(true);
    await client.close();
    expect(await result).toEqual({
      status: 'not_stored',
      id: expect.any(String),
      code: 'E_NOT_STORED',
      message: 'the client closed before JetStream acknowledged the message (0 attempts; last: no connection to NATS)',
      inDoubt: false,
    });
    expect(scripted.seen).toHaveLength(0);
  });
});
