// Baseline 1, raw JetStream passthrough: what moving the same plaintext through JetStream costs with the
// broker's consumption pattern (a pull consumer on a work queue, the same number of messages in flight,
// every copy published and acknowledged by JetStream before the ingest message is acked) and no crypto, no
// validation, no projection. It republishes each message unchanged to every subscriber's subject.
import { headers as natsHeaders, type JsMsg } from 'nats';
import { BENCH_IDENTITY, connectBench } from './tls.js';
import { RAW, T0 } from './raw.js';
import { failChild } from './child.js';

interface PassthroughArgs {
  readonly natsUrl: string;
  readonly subscribers: readonly string[];
  /** In-flight limit, as the broker's `concurrency` setting. */
  readonly concurrency: number;
  /** The mTLS certificates (bench/tls.ts); plaintext without. */
  readonly tlsDir?: string;
}

async function main(): Promise<void> {
  const args = JSON.parse(process.argv[2] ?? '{}') as PassthroughArgs;
  const nc = await connectBench(args.natsUrl, 'bench passthrough', BENCH_IDENTITY, args.tlsDir);
  const js = nc.jetstream();
  const consumer = await js.consumers.get(RAW.inStream, RAW.consumer);
  const messages = await consumer.consume({ max_messages: Math.max(args.concurrency * 2, 16) });
  const stats = { accepted: 0, deliveries: 0, rejected: 0 };
  const inflight = new Set<Promise<void>>();
  const handle = async (m: JsMsg): Promise<void> => {
    await Promise.all(
      args.subscribers.map((s) => {
        const h = natsHeaders();
        const t0 = m.headers?.get(T0);
        if (t0 !== undefined) h.set(T0, t0);
        return js.publish(RAW.out(s), m.data, { headers: h });
      }),
    );
    m.ack();
    stats.accepted++;
    stats.deliveries += args.subscribers.length;
  };
  const loop = (async () => {
    for await (const m of messages) {
      const p = handle(m).finally(() => inflight.delete(p));
      inflight.add(p);
      if (inflight.size >= args.concurrency) await Promise.race(inflight);
    }
  })();
  process.send?.({ type: 'ready', seconds: process.uptime() });
  process.on('message', (m: { cmd: 'stats' | 'stop' }) => {
    if (m.cmd === 'stats') process.send?.({ type: 'stats', ...stats });
    if (m.cmd === 'stop') {
      void (async () => {
        await messages.close();
        await loop;
        await Promise.allSettled([...inflight]);
        await nc.drain();
        process.send?.({ type: 'stopped', ...stats }, () => process.exit(0));
      })();
    }
  });
}

main().catch((err: unknown) => failChild('bench passthrough', err));
