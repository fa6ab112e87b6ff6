// Reads the audit stream in stream order with an ephemeral pull consumer (no acks, removed by the server once
// idle), up to the last record stored when reading began. nats.js's ordered consumer is not used: its fetch
// does not complete against nats-server 2.9. What the CLI's verify, query and export read; nothing here
// interprets a record.
import { AckPolicy, DeliverPolicy, nanos, type NatsConnection } from 'nats';
import { STREAMS } from '../wire/names.js';
import type { StoredRecord } from './verify.js';

export interface ReadOptions {
  readonly stream?: string;
  /** Start at the first record stored at or after this time (ms since epoch). */
  readonly sinceMs?: number;
}

export interface AuditStreamState {
  readonly firstSeq: number;
  readonly lastSeq: number;
  readonly messages: number;
}

export async function auditStreamState(nc: NatsConnection, stream: string = STREAMS.audit): Promise<AuditStreamState> {
  const jsm = await nc.jetstreamManager();
  const { state } = await jsm.streams.info(stream);
  return { firstSeq: state.first_seq, lastSeq: state.last_seq, messages: state.messages };
}

export async function* readAuditRecords(nc: NatsConnection, opts: ReadOptions = {}): AsyncGenerator<StoredRecord> {
  const stream = opts.stream ?? STREAMS.audit;
  const { lastSeq, messages } = await auditStreamState(nc, stream);
  if (messages === 0) return;
  const jsm = await nc.jetstreamManager();
  const info = await jsm.consumers.add(stream, {
    ack_policy: AckPolicy.None,
    inactive_threshold: nanos(30_000),
    ...(opts.sinceMs === undefined
      ? { deliver_policy: DeliverPolicy.All }
      : { deliver_policy: DeliverPolicy.StartTime, opt_start_time: new Date(opts.sinceMs).toISOString() }),
  });
  // Not deleted after the read: the server removes it once idle (inactive_threshold). The read-only auditor may not
  // delete consumers (src/nats/permissions.ts), and a denied delete is a permission violation the audit trail records.
  const consumer = await nc.jetstream().consumers.get(stream, info.name);
  let done = false;
  while (!done) {
    // A fetch ends when its batch is full or it expires; an empty batch means nothing is left at or after the start.
    const batch = await consumer.fetch({ max_messages: 256, expires: 2_000 });
    let got = 0;
    for await (const m of batch) {
      got += 1;
      yield { streamSeq: m.seq, subject: m.subject, data: m.data, storedAtMs: Math.floor(m.info.timestampNanos / 1e6) };
      if (m.seq >= lastSeq) {
        done = true;
        break;
      }
    }
    if (got === 0) done = true;
  }
}
