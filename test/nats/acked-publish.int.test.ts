// AckedPublisher (src/nats/acked-publish.ts) against a real nats-server: it resolves with the stream's PubAck,
// honours Nats-Msg-Id de-duplication and KV compare-and-set, and fails with the codes nats.js gives the same
// failures (503 no responders, the JetStream API error with api_error, TIMEOUT, CONNECTION_CLOSED).
import { headers as natsHeaders, type NatsConnection } from 'nats';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { AckedPublisher } from '../../src/nats/acked-publish.js';
import { startTestNats, type TestNats } from '../helpers/nats.js';

let nats: TestNats;
let nc: NatsConnection;
let pub: AckedPublisher;

beforeAll(async () => {
  nats = await startTestNats();
  nc = await nats.connect('publisher');
  const jsm = await nc.jetstreamManager();
  await jsm.streams.add({ name: 'ACKED', subjects: ['acked.>'], duplicate_window: 60_000_000_000 });
  await nc.jetstream().views.kv('acked_kv', { history: 1 });
  pub = new AckedPublisher(nc);
});

afterAll(async () => {
  await nats?.stop();
});

it('resolves with the PubAck once stored, headers kept, and reports a duplicate Nats-Msg-Id as such', async () => {
  const h = natsHeaders();
  h.set('Phi-Sig', 'sig-1');
  const acks = await Promise.all(
    Array.from({ length: 50 }, (_, i) =>
      pub.publish('acked.a', new TextEncoder().encode(`m${i}`), {
        msgID: `id-${i}`,
        ...(i === 0 ? { headers: h } : {}),
      }),
    ),
  );
  expect(acks.map((a) => a.stream)).toEqual(Array.from({ length: 50 }, () => 'ACKED'));
  expect(new Set(acks.map((a) => a.seq)).size).toBe(50);
  expect(acks.every((a) => !a.duplicate)).toBe(true);
  const again = await pub.publish('acked.a', new TextEncoder().encode('m0'), { msgID: 'id-0' });
  expect(again).toMatchObject({ stream: 'ACKED', seq: acks[0]?.seq, duplicate: true });
  const stored = await (await nc.jetstreamManager()).streams.getMessage('ACKED', { seq: acks[0]?.seq ?? 0 });
  expect(stored.header.get('Phi-Sig')).toBe('sig-1');
  expect(stored.header.get('Nats-Msg-Id')).toBe('id-0');
});

it('a KV compare-and-set creates at revision 0, updates at the current revision, and refuses a stale one (10071)', async () => {
  const kv = await nc.jetstream().views.kv('acked_kv');
  const r1 = await pub.kvCompareAndSet('acked_kv', 'k', new TextEncoder().encode('one'), 0);
  const r2 = await pub.kvCompareAndSet('acked_kv', 'k', new TextEncoder().encode('two'), r1);
  expect(new TextDecoder().decode((await kv.get('k'))?.value)).toBe('two');
  expect((await kv.get('k'))?.revision).toBe(r2);
  await expect(pub.kvCompareAndSet('acked_kv', 'k', new TextEncoder().encode('stale'), r1)).rejects.toMatchObject({
    code: '400',
    api_error: { err_code: 10071 },
  });
  await expect(pub.kvCompareAndSet('acked_kv', 'k', new TextEncoder().encode('again'), 0)).rejects.toMatchObject({
    api_error: { err_code: 10071 },
  });
});

it('no stream on the subject: 503 (no responders), as nats.js reports it', async () => {
  await expect(pub.publish('nostream.x', new Uint8Array([1]))).rejects.toMatchObject({ code: '503' });
});

it('an answer that never comes fails with TIMEOUT', async () => {
  const silent = nc.subscribe('silent.x', { callback: () => undefined }); // a responder that never replies
  const short = new AckedPublisher(nc, 200);
  await expect(short.publish('silent.x', new Uint8Array([1]))).rejects.toMatchObject({ code: 'TIMEOUT' });
  silent.unsubscribe();
});

it('a closed connection fails what is waiting and what comes after with CONNECTION_CLOSED', async () => {
  const own = await nats.connect('closing');
  const p = new AckedPublisher(own);
  own.subscribe('hold.x', { callback: () => undefined });
  const waiting = p.publish('hold.x', new Uint8Array([1]));
  await own.close();
  await expect(waiting).rejects.toMatchObject({ code: 'CONNECTION_CLOSED' });
  await expect(p.publish('acked.a', new Uint8Array([1]))).rejects.toMatchObject({ code: 'CONNECTION_CLOSED' });
});

it('close() on a connection that stays open leaves nothing of the publisher on it: no reply subscription, no status watch', async () => {
  const own = await nats.connect('closing-open');
  /** nats.js keeps one listener per status() iterator; the publisher's must go with it. */
  const listeners = (): number => (own as unknown as { listeners: unknown[] }).listeners.length;
  const before = listeners();
  const p = new AckedPublisher(own);
  expect(listeners()).toBe(before + 1);
  await p.publish('acked.a', new Uint8Array([1]), { msgID: 'close-open-1' });
  const prefix = (p as unknown as { prefix: string }).prefix;
  const received = async (): Promise<number> => {
    const inMsgs = own.stats().inMsgs;
    nc.publish(`${prefix}zz`, new Uint8Array([1])); // a reply to the publisher's inbox, from another connection
    await nc.flush();
    await own.flush();
    return own.stats().inMsgs - inMsgs;
  };
  expect(await received()).toBe(1);
  p.close();
  await own.flush();
  expect(await received()).toBe(0);
  await Promise.resolve(); // the status iterator removes its listener when it is stopped
  expect(listeners()).toBe(before);
  await expect(p.publish('acked.a', new Uint8Array([1]))).rejects.toMatchObject({ code: 'CONNECTION_CLOSED' });
  expect(own.isClosed()).toBe(false);
  await own.close();
});
