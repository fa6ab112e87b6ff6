// verifyAuditRecords: walks every chain in the audit stream (in stream order) and reports the first broken
// link — a record changed, removed, reordered or inserted, a forged or misplaced checkpoint — with its chain
// sequence. Pure over the stored records, so a test (or an auditor with an exported copy) can run it on any
// sequence of records. Integrity control of 45 CFR 164.312(c)(1): altering or destroying audit data is
// detected, not merely discouraged.
import { verifyDetached } from '../crypto/sign.js';
import { checkpointPayload, decodeRecord, recordHash, type ChainRecord } from './record.js';

export interface StoredRecord {
  /** JetStream stream sequence (where the record sits in the stream). */
  readonly streamSeq: number;
  readonly subject: string;
  readonly data: Uint8Array;
  /** When JetStream stored it (ms); a checkpoint's key must have been valid then. Absent: the record's own `at`. */
  readonly storedAtMs?: number;
}

export type BreakKind = 'changed' | 'removed' | 'reordered' | 'inserted' | 'malformed' | 'checkpoint';

export interface ChainBreak {
  readonly kind: BreakKind;
  /** The chain (broker instance) the broken link is in; undefined for a record that names none. */
  readonly chain: string | undefined;
  /** The chain sequence of the record found wrong (changed / removed / reordered / inserted / checkpoint). */
  readonly seq: number | undefined;
  /** Where in the stream: the changed record itself, else the record at which the break shows. */
  readonly streamSeq: number;
  readonly message: string;
  /** For a checkpoint: E_KEY_REVOKED, E_KEY_UNKNOWN (no key of the writer valid then) or E_SIGNATURE. */
  readonly code?: 'E_KEY_REVOKED' | 'E_KEY_UNKNOWN' | 'E_SIGNATURE';
}

export interface ChainSummary {
  readonly chain: string;
  readonly first: number;
  readonly last: number;
  readonly records: number;
  readonly events: number;
  readonly checkpoints: number;
  /** Records after the last checkpoint (not yet sealed by a signature). */
  readonly unsealed: number;
  /** The chain ends with the final checkpoint its broker writes when it stops cleanly. */
  readonly closed: boolean;
}

export interface VerifyReport {
  readonly ok: boolean;
  readonly records: number;
  readonly chains: readonly ChainSummary[];
  readonly broken?: ChainBreak;
}

/** Why no key vouches for a checkpoint: its kid was revoked before the checkpoint was stored, or is not valid then. */
export interface KeyRefusal {
  readonly code: 'E_KEY_REVOKED' | 'E_KEY_UNKNOWN';
  readonly message: string;
}

export interface VerifyOptions {
  /**
   * The Ed25519 public key for a key id that may sign `chain`'s checkpoints at `atMs` (docs/keys.md "Signatures made
   * in the past"); undefined when unknown or not its writer's.
   */
  readonly signingKey: (kid: string, chain: string, atMs?: number) => Uint8Array | undefined;
  /** Why `signingKey` gave none (a coded break); default E_KEY_UNKNOWN. */
  readonly refusal?: (kid: string, chain: string, atMs: number) => KeyRefusal | undefined;
  /**
   * The stream's oldest records were removed by retention (its first sequence is above 1): a chain may then
   * start at any sequence. Otherwise every chain must start at 1 with no previous hash.
   */
  readonly agedOut?: boolean;
}

interface ChainState {
  first: number;
  seq: number;
  hash: string;
  records: number;
  events: number;
  checkpoints: number;
  unsealed: number;
  closed: boolean;
  /** Where the last record sits in the stream. */
  streamSeq: number;
}

interface Parsed {
  readonly stored: StoredRecord;
  readonly record: ChainRecord;
}

export function verifyAuditRecords(input: Iterable<StoredRecord>, opts: VerifyOptions): VerifyReport {
  const all = [...input];
  const parsed: Parsed[] = [];
  const summaries = (states: Map<string, ChainState>): ChainSummary[] =>
    [...states].map(([chain, s]) => ({
      chain,
      first: s.first,
      last: s.seq,
      records: s.records,
      events: s.events,
      checkpoints: s.checkpoints,
      unsealed: s.unsealed,
      closed: s.closed,
    }));
  const states = new Map<string, ChainState>();
  const fail = (b: ChainBreak): VerifyReport => ({
    ok: false,
    records: all.length,
    chains: summaries(states),
    broken: b,
  });
  for (const stored of all) {
    const record = decodeRecord(stored.data);
    if (record === undefined || !stored.subject.endsWith(`.${record.chain}`)) {
      return fail({
        kind: 'malformed',
        chain: record?.chain,
        seq: record?.seq,
        streamSeq: stored.streamSeq,
        message:
          record === undefined
            ? 'not an audit chain record'
            : `record names chain ${record.chain} but sits on ${stored.subject}`,
      });
    }
    parsed.push({ stored, record });
  }
  for (const [i, { stored, record }] of parsed.entries()) {
    const { chain, seq } = record;
    const state = states.get(chain);
    const at = (
      kind: BreakKind,
      s: number,
      message: string,
      streamSeq = stored.streamSeq,
      code?: ChainBreak['code'],
    ): VerifyReport => fail({ kind, chain, seq: s, streamSeq, message, ...(code === undefined ? {} : { code }) });
    const later = (s: number): Parsed | undefined =>
      parsed.slice(i + 1).find((p) => p.record.chain === chain && p.record.seq === s);
    if (state === undefined) {
      if (!opts.agedOut && (seq !== 1 || record.prev !== null)) {
        return seq !== 1
          ? at(
              later(1) === undefined ? 'removed' : 'reordered',
              1,
              `chain ${chain} starts at seq ${seq}: record 1 is missing here`,
            )
          : at('changed', 1, 'the first record of a chain has a previous hash');
      }
    } else if (seq > state.seq + 1) {
      const missing = state.seq + 1;
      return at(
        later(missing) === undefined ? 'removed' : 'reordered',
        missing,
        seq - 1 > missing
          ? `records ${missing}..${seq - 1} are missing (${seq - missing}): ${seq} follows ${state.seq}`
          : `record ${missing} is missing: ${seq} follows ${state.seq}`,
      );
    } else if (seq <= state.seq) {
      return at('inserted', seq, `a second record claims seq ${seq} (after ${state.seq})`);
    } else if (record.prev !== state.hash) {
      // Either this record was inserted with a made-up link (and the genuine one follows it), or the record
      // before it was changed after its successor committed to its hash.
      const genuine = later(seq);
      return genuine !== undefined && genuine.record.prev === state.hash
        ? at(
            'inserted',
            seq,
            `record ${seq} does not link to record ${state.seq}; another record ${seq} that does follows`,
          )
        : at(
            'changed',
            state.seq,
            `record ${state.seq} differs from what record ${seq} committed to (SHA-256 mismatch)`,
            state.streamSeq,
          );
    }
    if (record.checkpoint !== undefined) {
      const cp = record.checkpoint;
      const signedAt = stored.storedAtMs ?? record.at;
      const key = opts.signingKey(cp.kid, chain, signedAt);
      const signed =
        key !== undefined &&
        cp.head === seq - 1 &&
        verifyDetached(checkpointPayload(chain, cp.head, record.prev), Buffer.from(cp.sig, 'base64url'), key);
      if (!signed) {
        if (key !== undefined)
          return at(
            'checkpoint',
            seq,
            `checkpoint ${seq} does not verify (signature or head)`,
            undefined,
            'E_SIGNATURE',
          );
        const refusal = opts.refusal?.(cp.kid, chain, signedAt);
        return at(
          'checkpoint',
          seq,
          `checkpoint ${seq} is signed with ${cp.kid}: ${refusal?.message ?? 'not a known key of the chain’s writer'}`,
          undefined,
          refusal?.code ?? 'E_KEY_UNKNOWN',
        );
      }
    }
    const next: ChainState = state ?? {
      first: seq,
      seq: 0,
      hash: '',
      records: 0,
      events: 0,
      checkpoints: 0,
      unsealed: 0,
      closed: false,
      streamSeq: 0,
    };
    next.seq = seq;
    next.streamSeq = stored.streamSeq;
    next.hash = recordHash(stored.data);
    next.records += 1;
    next.events += record.events?.length ?? 0;
    next.checkpoints += record.checkpoint === undefined ? 0 : 1;
    next.unsealed = record.checkpoint === undefined ? next.unsealed + 1 : 0;
    next.closed = record.checkpoint?.final === true;
    states.set(chain, next);
  }
  return { ok: true, records: all.length, chains: summaries(states) };
}
