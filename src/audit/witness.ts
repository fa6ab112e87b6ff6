// Witnessed heads of the audit chains: each signed checkpoint is also kept in PHI_AUDIT_WITNESS (and files outside
// NATS), so a truncated chain is found (as RFC 6962's gossiped tree heads). Pure (docs/audit.md, "Witnessed heads").
import { verifyDetached } from '../crypto/sign.js';
import { checkpointPayload, decodeRecord, recordHash } from './record.js';
import type { ChainSummary, StoredRecord } from './verify.js';

export const WITNESS_VERSION = 1;

export interface WitnessHead {
  readonly v: typeof WITNESS_VERSION;
  readonly chain: string;
  /** The chain sequence of the record the checkpoint seals; the checkpoint itself is record head + 1. */
  readonly head: number;
  /** base64url SHA-256 of record `head`'s stored bytes (the checkpoint's `prev`). */
  readonly hash: string;
  /** When the checkpoint was written (ms since epoch). */
  readonly at: number;
  readonly kid: string;
  /** The checkpoint's Ed25519 signature (base64url) over checkpointPayload(chain, head, hash). */
  readonly sig: string;
  /** The checkpoint was the final one of a clean stop. */
  readonly final?: true;
}

export function encodeWitnessHead(h: WitnessHead): string {
  return JSON.stringify({
    v: WITNESS_VERSION,
    chain: h.chain,
    head: h.head,
    hash: h.hash,
    at: h.at,
    kid: h.kid,
    sig: h.sig,
    ...(h.final === true ? { final: true } : {}),
  });
}

/** Parses one witnessed head (a PHI_AUDIT_WITNESS message, or a line of a witness file); undefined if it is none. */
export function decodeWitnessHead(text: string): WitnessHead | undefined {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof json !== 'object' || json === null) return undefined;
  const r = json as Record<string, unknown>;
  const ok =
    r['v'] === WITNESS_VERSION &&
    typeof r['chain'] === 'string' &&
    Number.isSafeInteger(r['head']) &&
    (r['head'] as number) >= 1 &&
    typeof r['hash'] === 'string' &&
    typeof r['at'] === 'number' &&
    typeof r['kid'] === 'string' &&
    typeof r['sig'] === 'string' &&
    (r['final'] === undefined || r['final'] === true);
  return ok ? (json as WitnessHead) : undefined;
}

/** True when the head's signature verifies with the key it names, a key of the chain's writer. */
export function witnessHeadVerifies(
  h: WitnessHead,
  signingKey: (kid: string, chain: string, atMs?: number) => Uint8Array | undefined,
): boolean {
  const key = signingKey(h.kid, h.chain, h.at);
  return (
    key !== undefined &&
    verifyDetached(checkpointPayload(h.chain, h.head, h.hash), Buffer.from(h.sig, 'base64url'), key)
  );
}

export type WitnessFindingKind = 'truncated' | 'rewritten' | 'unverifiable' | 'crash' | 'unwitnessed';

export interface WitnessFinding {
  readonly kind: WitnessFindingKind;
  /** `problem`: tampering (verify exits 1); `warning`: reported, exit 0. */
  readonly severity: 'problem' | 'warning';
  readonly chain: string;
  /** truncated: the chain sequences missing from the stream (inclusive). */
  readonly missing?: { readonly from: number; readonly to: number };
  /** Chain ids, sequence numbers and times only. */
  readonly message: string;
}

export interface WitnessCompareOptions {
  readonly signingKey: (kid: string, chain: string, atMs?: number) => Uint8Array | undefined;
  /**
   * Heads written before this time (ms) may have aged out of PHI_AUDIT with their records (its max age): a chain
   * that is wholly gone is then not reported. Undefined: every witnessed chain must be present.
   */
  readonly agedOutBefore?: number;
}

/** The highest verified head of each chain, and the heads that do not verify. */
export function bestHeads(
  heads: readonly WitnessHead[],
  signingKey: (kid: string, chain: string, atMs?: number) => Uint8Array | undefined,
): { readonly best: Map<string, WitnessHead>; readonly verified: WitnessHead[]; readonly bad: WitnessHead[] } {
  const best = new Map<string, WitnessHead>();
  const verified: WitnessHead[] = [];
  const bad: WitnessHead[] = [];
  for (const h of heads) {
    if (!witnessHeadVerifies(h, signingKey)) {
      bad.push(h);
      continue;
    }
    verified.push(h);
    const cur = best.get(h.chain);
    if (cur === undefined || h.head > cur.head) best.set(h.chain, h);
  }
  return { best, verified, bad };
}

/**
 * The stored chains against their witnessed heads: `truncated`, `rewritten`, `unverifiable` (problems), `crash`,
 * `unwitnessed` (warnings); the rules are in docs/audit.md, "Witnessed heads".
 */
export function compareWithWitness(
  records: readonly StoredRecord[],
  chains: readonly ChainSummary[],
  heads: readonly WitnessHead[],
  opts: WitnessCompareOptions,
): WitnessFinding[] {
  const findings: WitnessFinding[] = [];
  const { best, verified, bad } = bestHeads(heads, opts.signingKey);
  for (const h of bad) {
    findings.push({
      kind: 'unverifiable',
      severity: 'problem',
      chain: h.chain,
      message: `a witnessed head of chain ${h.chain} (head ${h.head}) does not verify with its writer's keys (${h.kid})`,
    });
  }
  // The hashes of the records witnessed heads were signed over.
  const wanted = new Map<string, Set<number>>();
  for (const h of verified) wanted.set(h.chain, (wanted.get(h.chain) ?? new Set()).add(h.head));
  const hashes = new Map<string, string>();
  for (const r of records) {
    const rec = decodeRecord(r.data);
    if (rec !== undefined && wanted.get(rec.chain)?.has(rec.seq) === true)
      hashes.set(`${rec.chain}\n${rec.seq}`, recordHash(r.data));
  }
  const summaries = new Map(chains.map((c) => [c.chain, c]));
  for (const [chain, h] of [...best].sort(([a], [b]) => a.localeCompare(b))) {
    const c = summaries.get(chain);
    const sealedBy = h.head + 1;
    const when = new Date(h.at).toISOString();
    if (c === undefined) {
      if (opts.agedOutBefore !== undefined && h.at < opts.agedOutBefore) continue;
      findings.push({
        kind: 'truncated',
        severity: 'problem',
        chain,
        missing: { from: 1, to: sealedBy },
        message: `chain ${chain} has no records, but its head ${h.head} was witnessed (checkpoint ${sealedBy}, ${when}): records 1..${sealedBy} are missing`,
      });
      continue;
    }
    if (c.last < sealedBy) {
      findings.push({
        kind: 'truncated',
        severity: 'problem',
        chain,
        missing: { from: c.last + 1, to: sealedBy },
        message: `chain ${chain} ends at record ${c.last}, but its head ${h.head} was witnessed (checkpoint ${sealedBy}, ${when}): records ${c.last + 1}..${sealedBy} are missing (${sealedBy - c.last} record(s))`,
      });
      continue;
    }
    const rewritten = verified.filter(
      (v) => v.chain === chain && v.head >= c.first && hashes.get(`${chain}\n${v.head}`) !== v.hash,
    );
    for (const v of rewritten) {
      findings.push({
        kind: 'rewritten',
        severity: 'problem',
        chain,
        message: `chain ${chain} record ${v.head} differs from the head witnessed over it (${new Date(v.at).toISOString()}): the chain was rewritten from there`,
      });
    }
    if (rewritten.length === 0 && !c.closed) {
      findings.push({
        kind: 'crash',
        severity: 'warning',
        chain,
        message: `chain ${chain} ends at record ${c.last} without its final checkpoint (its broker is running, or stopped by a crash); it reaches its last witnessed head ${h.head} (${when}); ${c.last - sealedBy} record(s) after it are not witnessed`,
      });
    }
  }
  for (const c of chains) {
    if (best.has(c.chain)) continue;
    findings.push({
      kind: 'unwitnessed',
      severity: 'warning',
      chain: c.chain,
      message: `chain ${c.chain} has no witnessed head: a cut at its end would not show`,
    });
  }
  return findings;
}

/** A witness file's text (JSON lines): its heads, and the 1-based numbers of lines that are not one. */
export function parseWitnessLines(text: string): { readonly heads: WitnessHead[]; readonly badLines: number[] } {
  const heads: WitnessHead[] = [];
  const badLines: number[] = [];
  for (const [i, line] of text.split('\n').entries()) {
    if (line.trim() === '') continue;
    const h = decodeWitnessHead(line);
    if (h === undefined) badLines.push(i + 1);
    else heads.push(h);
  }
  return { heads, badLines };
}
