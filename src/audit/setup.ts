// The audit stream PHI_AUDIT: write once, read many. JetStream refuses message deletion (deny_delete) and
// purging (deny_purge) on it, so no client — the broker included — can remove a record; records leave only by
// age (auditMaxAgeMs, six years by default: the retention of 45 CFR 164.316(b)(2)(i)). Idempotent: every
// broker process calls it at start. A shorter max age than the stream already has is refused rather than
// applied, since applying it would destroy records at once: shortening retention is a deliberate act with
// the NATS tools, never a side effect of a broker's configuration. PHI_AUDIT_WITNESS, beside it, keeps the signed
// heads of the chains (witness.ts) with the same retention and deny flags.
import {
  DiscardPolicy,
  RetentionPolicy,
  nanos,
  type JetStreamManager,
  type NatsConnection,
  type StreamConfig,
} from 'nats';
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

/** Witnessed heads kept per chain: the last one is what verify compares with; older ones outlive a forged newer one. */
export const WITNESS_HISTORY = 64;

/** PHI_AUDIT_WITNESS: the signed heads of every chain (phi.witness.audit.<instanceId>), as long as the records. */
export function witnessStreamConfig(s: AuditStreamSettings): Partial<StreamConfig> {
  return {
    ...auditStreamConfig(s),
    name: STREAMS.auditWitness,
    subjects: [subjects.witnessAll],
    // Per chain the newest heads stay; an older one leaves only when a newer one (which implies it) arrives.
    discard: DiscardPolicy.Old,
    max_msgs_per_subject: WITNESS_HISTORY,
  };
}

/** Creates or checks PHI_AUDIT and PHI_AUDIT_WITNESS (provisioning; every broker start). */
export async function ensureAuditStream(nc: NatsConnection, settings: AuditStreamSettings): Promise<void> {
  const jsm = await nc.jetstreamManager();
  await ensureWriteOnce(jsm, auditStreamConfig(settings));
  await ensureWriteOnce(jsm, witnessStreamConfig(settings));
}

/** Reads a stream's configuration; undefined when it does not exist. */
export async function streamConfigOf(jsm: JetStreamManager, stream: string): Promise<StreamConfig | undefined> {
  try {
    return (await jsm.streams.info(stream)).config;
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
}

async function ensureWriteOnce(jsm: JetStreamManager, config: Partial<StreamConfig>): Promise<void> {
  const name = config.name as string;
  const existing = await streamConfigOf(jsm, name);
  if (existing === undefined) {
    await jsm.streams.add(config);
    return;
  }
  if (existing.max_age !== 0 && (config.max_age ?? 0) < existing.max_age) {
    throw new BrokerError(
      'E_CONFIG_INVALID',
      `auditMaxAgeMs: shorter than the retention ${name} already has; refusing to shorten audit retention at start (change the stream deliberately with the NATS tools)`,
    );
  }
  if (
    existing.max_age !== config.max_age ||
    existing.num_replicas !== config.num_replicas ||
    !existing.deny_delete ||
    !existing.deny_purge
  ) {
    await jsm.streams.update(name, {
      ...existing,
      max_age: config.max_age ?? existing.max_age,
      num_replicas: config.num_replicas ?? existing.num_replicas,
      deny_delete: true,
      deny_purge: true,
    });
  }
}

export function isNotFound(err: unknown): boolean {
  const e = err as { code?: unknown; api_error?: { err_code?: number } } | null;
  return e?.code === '404' || e?.api_error?.err_code === 10059;
}
