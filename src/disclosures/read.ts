// Reads one patient's accounting of disclosures from PHI_DISCLOSURES: a snapshot of the records on
// `phi.disclosure.<pseudonym>.>` stored since a date, through a short-lived pull consumer (deliver policy
// by start time) that is deleted afterwards. Records written twice (a redelivered ingest message beyond the
// duplicate window) are listed once, by delivery id.
import { AckPolicy, DeliverPolicy, nanos, type NatsConnection } from 'nats';
import { STREAMS, subjects } from '../wire/names.js';
import { decodeDisclosure, type DisclosureRecord } from './record.js';

export interface StoredDisclosure {
  /** Stream sequence in PHI_DISCLOSURES. */
  readonly seq: number;
  readonly record: DisclosureRecord;
}

const BATCH = 256;

/** Oldest first; records whose date is before `since` are left out. `skipped` counts messages that are not records. */
export async function readDisclosures(
  nc: NatsConnection,
  patient: string,
  since: Date,
): Promise<{ disclosures: StoredDisclosure[]; skipped: number }> {
  const jsm = await nc.jetstreamManager();
  try {
    await jsm.streams.info(STREAMS.disclosures);
  } catch {
    return { disclosures: [], skipped: 0 }; // no broker has run here yet: nothing was disclosed
  }
  const info = await jsm.consumers.add(STREAMS.disclosures, {
    ack_policy: AckPolicy.None,
    deliver_policy: DeliverPolicy.StartTime,
    opt_start_time: since.toISOString(),
    filter_subject: subjects.disclosuresOf(patient),
    inactive_threshold: nanos(60_000),
    mem_storage: true,
  });
  const seen = new Set<string>();
  const out: StoredDisclosure[] = [];
  let skipped = 0;
  // Left to the server's inactive_threshold, as src/audit/read.ts does: the auditor may not delete consumers.
  const consumer = await nc.jetstream().consumers.get(STREAMS.disclosures, info.name);
  let remaining = info.num_pending;
  while (remaining > 0) {
    const batch = await consumer.fetch({ max_messages: Math.min(remaining, BATCH), expires: 5_000 });
    let got = 0;
    for await (const m of batch) {
      got += 1;
      const record = decodeDisclosure(m.data);
      if (record === undefined) skipped += 1;
      else if (record.at >= since.getTime() && !seen.has(record.id)) {
        seen.add(record.id);
        out.push({ seq: m.seq, record });
      }
    }
    if (got === 0) break; // the records aged out while we read
    remaining -= got;
  }
  return { disclosures: out.sort((a, b) => a.record.at - b.record.at || a.seq - b.seq), skipped };
}
