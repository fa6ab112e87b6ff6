// The broker's own check of its audit trail (docs/audit.md, "Witnessed heads"): PHI_AUDIT and PHI_AUDIT_WITNESS
// keep the settings provisioning gave them (stream-check.ts), and this broker's chain still reaches the last head
// witnessed for it (witness.ts). Cheap — two stream infos and two last-by-subject reads — so it runs at start
// (a problem refuses the start: E_AUDIT_INTEGRITY) and periodically (a problem raises an alert). `audit verify`
// does the full walk of every chain.
import type { JetStreamManager, NatsConnection } from 'nats';
import { STREAMS, subjects } from '../wire/names.js';
import { decodeRecord } from './record.js';
import {
  auditStreamConfig,
  isNotFound,
  streamConfigOf,
  witnessStreamConfig,
  type AuditStreamSettings,
} from './setup.js';
import { streamSettingProblems } from './stream-check.js';
import { decodeWitnessHead, witnessHeadVerifies } from './witness.js';

/** The check's result: ok, or one PHI-free sentence per problem (stream names, settings, chain ids, sequences). */
export interface IntegrityReport {
  readonly ok: boolean;
  readonly problems: readonly string[];
}

export interface IntegrityCheckOptions {
  readonly settings: AuditStreamSettings;
  /** This broker's chain (its instance id). */
  readonly chain: string;
  readonly signingKey: (kid: string, chain: string) => Uint8Array | undefined;
  /** A stream that does not exist yet is not a problem (a first start in development, before it is created). */
  readonly allowMissingStreams?: boolean;
}

async function lastBySubject(
  jsm: JetStreamManager,
  stream: string,
  subject: string,
): Promise<{ seq: number; data: Uint8Array } | undefined> {
  try {
    const m = await jsm.streams.getMessage(stream, { last_by_subj: subject });
    return { seq: m.seq, data: m.data };
  } catch (err) {
    const e = err as { code?: unknown; api_error?: { err_code?: number } };
    if (e.code === '404' || e.api_error?.err_code === 10037 || isNotFound(err)) return undefined;
    throw err;
  }
}

/**
 * Checks the audit streams' settings and this broker's chain against its last witnessed head. Named for
 * readiness: the broker calls it at start and every `auditIntegrityCheckMs` (AuditTrail.checkIntegrity).
 */
export async function checkAuditIntegrity(nc: NatsConnection, opts: IntegrityCheckOptions): Promise<IntegrityReport> {
  const jsm = await nc.jetstreamManager();
  const problems: string[] = [];
  for (const wanted of [auditStreamConfig(opts.settings), witnessStreamConfig(opts.settings)]) {
    const name = wanted.name as string;
    const actual = await streamConfigOf(jsm, name);
    if (actual === undefined && opts.allowMissingStreams === true) continue;
    problems.push(...streamSettingProblems(name, actual, wanted).map((p) => p.message));
  }
  const witnessed = await lastBySubject(jsm, STREAMS.auditWitness, subjects.witness(opts.chain));
  if (witnessed !== undefined) {
    const head = decodeWitnessHead(Buffer.from(witnessed.data).toString('utf8'));
    if (head === undefined || head.chain !== opts.chain || !witnessHeadVerifies(head, opts.signingKey)) {
      problems.push(`the last witnessed head of chain ${opts.chain} does not verify with the broker's keys`);
    } else {
      const last = await lastBySubject(jsm, STREAMS.audit, subjects.audit(opts.chain));
      const record = last === undefined ? undefined : decodeRecord(last.data);
      const lastSeq = record?.seq ?? 0;
      const sealedBy = head.head + 1;
      if (lastSeq < sealedBy) {
        problems.push(
          `chain ${opts.chain} ends at record ${lastSeq}, but its head ${head.head} was witnessed (checkpoint ${sealedBy}): records ${lastSeq + 1}..${sealedBy} are missing`,
        );
      } else if (lastSeq === sealedBy && record?.prev !== head.hash) {
        // The witnessed checkpoint is the chain's last record: it must seal the record the head was signed over.
        problems.push(`chain ${opts.chain} record ${head.head} differs from the head witnessed over it`);
      }
    }
  }
  return { ok: problems.length === 0, problems };
}
