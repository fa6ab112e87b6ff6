// The baselines' streams and subjects (their own names, on their own nats-server: never the broker's).
import { AckPolicy, DiscardPolicy, RetentionPolicy, StorageType, type NatsConnection } from 'nats';

/** Baseline streams (their own names, on their own nats-server: never the broker's). */
export const RAW = {
  inStream: 'BENCH_IN',
  outStream: 'BENCH_OUT',
  in: 'bench.in',
  out: (s: string) => `bench.out.${s}`,
  consumer: 'pass',
  core: 'bench.core',
} as const;
/** Header carrying the publish time (absolute ms) through the baselines. */
export const T0 = 'Bench-T0';

export async function ensureRawStreams(nc: NatsConnection, subscribers: readonly string[]): Promise<void> {
  const jsm = await nc.jetstreamManager();
  const common = { storage: StorageType.File, num_replicas: 1, max_msg_size: -1 };
  await jsm.streams.add({
    ...common,
    name: RAW.inStream,
    subjects: [RAW.in],
    retention: RetentionPolicy.Workqueue,
    discard: DiscardPolicy.New,
  });
  await jsm.streams.add({
    ...common,
    name: RAW.outStream,
    subjects: ['bench.out.>'],
    retention: RetentionPolicy.Limits,
  });
  await jsm.consumers.add(RAW.inStream, {
    durable_name: RAW.consumer,
    ack_policy: AckPolicy.Explicit,
    max_deliver: -1,
    max_ack_pending: 2_000,
  });
  for (const s of subscribers) {
    await jsm.consumers.add(RAW.outStream, {
      durable_name: `out-${s}`,
      ack_policy: AckPolicy.Explicit,
      max_deliver: -1,
      filter_subject: RAW.out(s),
    });
  }
}
