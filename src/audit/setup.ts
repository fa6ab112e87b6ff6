// The audit stream PHI_AUDIT: write once, read many. JetStream refuses message deletion (deny_delete) and
// purging (deny_purge) on it, so no client — the broker included — can remove a record; records leave only by
// age (auditMaxAgeMs, six years by default: the retention of 45 CFR 164.316(b)(2)(i)). Idempotent: every
// broker process calls it at start. A shorter max age than the stream already has is refused rather than
// applied, since applying it would destroy records at once: shortening retention is a deliberate act with
// the NATS tools, never a side effect of a broker's configuration.
import { DiscardPolicy, RetentionPolicy, nanos, type NatsConnection, type StreamConfig } from 'nats';
import { streamPlacement, type Replicas } from '../nats/setup.js';
import { BrokerError } from '../wire/errors.js';
import { STREAMS, subjects } from '../wire/names.js';

export interface AuditStreamSettings {
  readonly maxAgeMs: number;
  readonly duplicateWindowMs: number;
  readonly replicas: Replicas;
}

export function auditStreamConfig(s: AuditStreamSettings): Partial<StreamConfig> {
  return {
    name: STREAMS.audit,
    subjects: [subjects.auditAll],
    ...streamPlacement(s.replicas),
    retention: RetentionPolicy.Limits,
    discard: DiscardPolicy.New,
    max_age: nanos(s.maxAgeMs),
    max_msgs: -1,
    max_bytes: -1,
    max_msg_size: -1,
    duplicate_window: nanos(Math.min(s.duplicateWindowMs, s.maxAgeMs)),
    deny_delete: true,
    deny_purge: true,
  };
}

export async function ensureAuditStream(nc: NatsConnection, settings: AuditStreamSettings): Promise<void> {
  const jsm = await nc.jetstreamManager();
  const config = auditStreamConfig(settings);
  let existing: StreamConfig | undefined;
  try {
    existing = (await jsm.streams.info(STREAMS.audit)).config;
  } catch (err) {
    if (!isNotFound(err)) throw err;
  }
  if (existing === undefined) {
    await jsm.streams.add(config);
    return;
  }
  if (existing.max_age !== 0 && (config.max_age ?? 0) < existing.max_age) {
    throw new BrokerError(
      'E_CONFIG_INVALID',
      `auditMaxAgeMs: shorter than the retention ${STREAMS.audit} already has; refusing to shorten audit retention at start (change the stream deliberately with the NATS tools)`,
    );
  }
  if (
    existing.max_age !== config.max_age ||
    existing.num_replicas !== settings.replicas ||
    !existing.deny_delete ||
    !existing.deny_purge
  ) {
    await jsm.streams.update(STREAMS.audit, {
      ...existing,
      max_age: config.max_age ?? existing.max_age,
      num_replicas: settings.replicas,
      deny_delete: true,
      deny_purge: true,
    });
  }
}

function isNotFound(err: unknown): boolean {
  const e = err as { code?: unknown; api_error?: { err_code?: number } } | null;
  return e?.code === '404' || e?.api_error?.err_code === 10059;
}
