// verifyAuditRecords over forged copies of a chain: every kind of tampering — a record changed, removed,
// reordered or inserted, the whole chain re-hashed, a checkpoint forged — is found at the right sequence.
import { beforeAll, describe, expect, it } from 'vitest';
import { checkpointPayload, encodeCheckpointRecord, encodeEventsRecord, recordHash } from '../../src/audit/record.js';
import { verifyAuditRecords, type StoredRecord } from '../../src/audit/verify.js';
import { generateServiceKeys, type SigningKeyPair } from '../../src/crypto/keypairs.js';
import { signDetached } from '../../src/crypto/sign.js';
import { initCrypto } from '../../src/crypto/sodium.js';

let key: SigningKeyPair;
let other: SigningKeyPair;

beforeAll(async () => {
  await initCrypto();
  key = generateServiceKeys('broker').sign;
  other = generateServiceKeys('broker', 2).sign;
});

const keys = (): ((kid: string) => Uint8Array | undefined) => (kid) => (kid === key.kid ? key.publicKey : undefined);

/**
 * A chain as the writer builds it: `n` event records, a checkpoint after every `every` of them, a final one.
 * `startSeq`/`startPrev` continue a chain whose beginning is not included.
 */
function chain(
  name: string,
  n: number,
  every: number,
  signer: SigningKeyPair = key,
  mutate?: (seq: number, events: string[]) => void,
): Uint8Array[] {
  const out: Uint8Array[] = [];
  let prev: string | null = null;
  let seq = 0;
  const push = (bytes: Uint8Array): void => {
    out.push(bytes);
    prev = recordHash(bytes);
  };
  const checkpoint = (final: boolean): void => {
    const sig = Buffer.from(signDetached(checkpointPayload(name, seq, prev), signer.secretKey)).toString('base64url');
    seq += 1;
    push(
      encodeCheckpointRecord(name, seq, prev, 1000 + seq, {
        head: seq - 1,
        kid: signer.kid,
        sig,
        ...(final ? { final: true as const } : {}),
      }),
    );
  };
  for (let i = 1; i <= n; i++) {
    seq += 1;
    const events = [JSON.stringify({ resourceType: 'AuditEvent', id: `${name}-${seq}`, outcome: '0' })];
    mutate?.(seq, events);
    push(encodeEventsRecord(name, seq, prev, 1000 + seq, events));
    if (i % every === 0) checkpoint(false);
  }
  checkpoint(true);
  return out;
}

/** Stored form: records of several chains interleaved in stream order. */
function stored(...chains: readonly [string, readonly Uint8Array[]][]): StoredRecord[] {
  const out: StoredRecord[] = [];
  const longest = Math.max(...chains.map(([, r]) => r.length));
  for (let i = 0; i < longest; i++) {
    for (const [name, records] of chains) {
      const data = records[i];
      if (data !== undefined) out.push({ streamSeq: out.length + 1, subject: `phi.audit.${name}`, data });
    }
  }
  return out;
}

const seqOf = (data: Uint8Array): number => (JSON.parse(Buffer.from(data).toString('utf8')) as { seq: number }).seq;

describe('verifyAuditRecords', () => {
  // Chain a: records 1-4, checkpoint 5, records 6-9, checkpoint 10, records 11-12, final checkpoint 13.
  it('an intact pair of chains verifies, with per-chain counts', () => {
    const report = verifyAuditRecords(stored(['a', chain('a', 10, 4)], ['b', chain('b', 3, 100)]), {
      signingKey: keys(),
    });
    expect(report.ok).toBe(true);
    expect(report.broken).toBeUndefined();
    expect(report.chains).toEqual([
      { chain: 'a', first: 1, last: 13, records: 13, events: 10, checkpoints: 3, unsealed: 0, closed: true },
      { chain: 'b', first: 1, last: 4, records: 4, events: 3, checkpoints: 1, unsealed: 0, closed: true },
    ]);
  });

  it('a changed record is reported at its own sequence', () => {
    const a = chain('a', 10, 4);
    a[2] = Buffer.from(
      Buffer.from(a[2] as Uint8Array)
        .toString('utf8')
        .replace('"outcome":"0"', '"outcome":"4"'),
    );
    const report = verifyAuditRecords(stored(['b', chain('b', 3, 100)], ['a', a]), { signingKey: keys() });
    // Stream order interleaves b and a record by record: a's record 3 is stream sequence 6.
    expect(report).toMatchObject({ ok: false, broken: { kind: 'changed', chain: 'a', seq: 3, streamSeq: 6 } });
  });

  it('a changed record just before a checkpoint is caught by the checkpoint link', () => {
    const a = chain('a', 10, 4);
    a[11] = Buffer.from(
      Buffer.from(a[11] as Uint8Array)
        .toString('utf8')
        .replace('"outcome":"0"', '"outcome":"8"'),
    );
    expect(seqOf(a[11] as Uint8Array)).toBe(12);
    expect(verifyAuditRecords(stored(['a', a]), { signingKey: keys() }).broken).toMatchObject({
      kind: 'changed',
      seq: 12,
    });
  });

  it('a removed record is reported at the missing sequence', () => {
    const a = chain('a', 10, 4);
    a.splice(6, 1); // seq 7
    expect(verifyAuditRecords(stored(['a', a]), { signingKey: keys() }).broken).toMatchObject({
      kind: 'removed',
      chain: 'a',
      seq: 7,
    });
  });

  it('two swapped records are reported as reordered at the first out-of-place sequence', () => {
    const a = chain('a', 10, 4);
    [a[5], a[6]] = [a[6] as Uint8Array, a[5] as Uint8Array]; // seq 6 and 7
    expect(verifyAuditRecords(stored(['a', a]), { signingKey: keys() }).broken).toMatchObject({
      kind: 'reordered',
      seq: 6,
    });
  });

  it('an inserted record that links correctly is reported where a second record claims its sequence', () => {
    const a = chain('a', 10, 4);
    const forged = encodeEventsRecord('a', 3, recordHash(a[1] as Uint8Array), 5, [
      JSON.stringify({ resourceType: 'AuditEvent', id: 'forged' }),
    ]);
    a.splice(2, 0, forged);
    expect(verifyAuditRecords(stored(['a', a]), { signingKey: keys() }).broken).toMatchObject({
      kind: 'inserted',
      seq: 3,
    });
  });

  it('an inserted record with a made-up link is reported as inserted, not as a change of its predecessor', () => {
    const a = chain('a', 10, 4);
    a.splice(2, 0, encodeEventsRecord('a', 3, 'AAAA', 5, ['{"resourceType":"AuditEvent"}']));
    expect(verifyAuditRecords(stored(['a', a]), { signingKey: keys() }).broken).toMatchObject({
      kind: 'inserted',
      seq: 3,
    });
  });

  it('a chain re-hashed from a changed record on is caught by the first checkpoint after it', () => {
    // The forger changes record 3 and recomputes every later hash, but cannot sign: checkpoint 5 fails.
    const genuine = chain('a', 10, 4);
    const rehashed = chain('a', 10, 4, other, (seq, events) => {
      if (seq === 3) events[0] = '{"resourceType":"AuditEvent","outcome":"4"}';
    });
    // Keep the genuine key id on the forged checkpoints, as a forger would.
    const forged = rehashed.map((r) => Buffer.from(Buffer.from(r).toString('utf8').replace(other.kid, key.kid)));
    expect(verifyAuditRecords(stored(['a', genuine]), { signingKey: keys() }).ok).toBe(true);
    expect(verifyAuditRecords(stored(['a', forged]), { signingKey: keys() }).broken).toMatchObject({
      kind: 'checkpoint',
      seq: 5,
    });
  });

  it('a checkpoint under an unknown key is refused', () => {
    expect(verifyAuditRecords(stored(['a', chain('a', 2, 10, other)]), { signingKey: keys() }).broken).toMatchObject({
      kind: 'checkpoint',
      seq: 3,
    });
  });

  it('a chain whose first records are gone is broken, unless retention aged them out', () => {
    const a = chain('a', 10, 4).slice(3);
    expect(verifyAuditRecords(stored(['a', a]), { signingKey: keys() }).broken).toMatchObject({
      kind: 'removed',
      seq: 1,
    });
    expect(verifyAuditRecords(stored(['a', a]), { signingKey: keys(), agedOut: true })).toMatchObject({
      ok: true,
      chains: [{ chain: 'a', first: 4, last: 13 }],
    });
  });

  it('an open chain (no final checkpoint yet) verifies and says how many records are unsealed', () => {
    const a = chain('a', 10, 4).slice(0, 12);
    expect(verifyAuditRecords(stored(['a', a]), { signingKey: keys() })).toMatchObject({
      ok: true,
      chains: [{ closed: false, unsealed: 2 }],
    });
  });

  it('bytes that are no record, or a record on another chain subject, are malformed at their stream sequence', () => {
    const records = stored(['a', chain('a', 3, 10)]);
    records.splice(2, 0, { streamSeq: 99, subject: 'phi.audit.a', data: Buffer.from('not json') });
    expect(verifyAuditRecords(records, { signingKey: keys() }).broken).toMatchObject({
      kind: 'malformed',
      streamSeq: 99,
    });
    const moved = stored(['a', chain('a', 3, 10)]).map((r) => ({ ...r, subject: 'phi.audit.b' }));
    expect(verifyAuditRecords(moved, { signingKey: keys() }).broken).toMatchObject({ kind: 'malformed', chain: 'a' });
  });
});
