// The pure parts of witnessed heads and stream settings (src/audit/witness.ts, stream-check.ts): a head is
// checked with the broker's key; a chain shorter than its head is truncated, one that differs from it rewritten,
// one without its final checkpoint that reaches it a crash; a head older than retention may be gone with its chain;
// a witness file's bad lines are named; weaker stream settings are found, stronger ones are not.
import { StorageType, type StreamConfig } from 'nats';
import { beforeAll, describe, expect, it } from 'vitest';
import { checkpointPayload, encodeCheckpointRecord, encodeEventsRecord, recordHash } from '../../src/audit/record.js';
import { auditStreamConfig } from '../../src/audit/setup.js';
import { formatNanos, streamSettingProblems } from '../../src/audit/stream-check.js';
import { verifyAuditRecords, type StoredRecord } from '../../src/audit/verify.js';
import { compareWithWitness, encodeWitnessHead, parseWitnessLines, type WitnessHead } from '../../src/audit/witness.js';
import { generateServiceKeys, type SigningKeyPair } from '../../src/crypto/keypairs.js';
import { signDetached } from '../../src/crypto/sign.js';
import { initCrypto } from '../../src/crypto/sodium.js';

let key: SigningKeyPair;
const keyOf = (kid: string): Uint8Array | undefined => (kid === key.kid ? key.publicKey : undefined);

beforeAll(async () => {
  await initCrypto();
  key = generateServiceKeys('broker').sign;
});

/** Six event records and a checkpoint after every second one (seqs 3, 6, 9), and the heads they witness. */
function chain(name: string, tag = ''): { records: StoredRecord[]; heads: WitnessHead[] } {
  const records: StoredRecord[] = [];
  const heads: WitnessHead[] = [];
  let prev = null as string | null;
  let seq = 0;
  const push = (bytes: Uint8Array): void => {
    seq += 1;
    records.push({ streamSeq: records.length + 1, subject: `phi.audit.${name}`, data: bytes });
    prev = recordHash(bytes);
  };
  for (let i = 1; i <= 6; i++) {
    push(
      encodeEventsRecord(name, seq + 1, prev, 1000, [JSON.stringify({ resourceType: 'AuditEvent', id: `${tag}${i}` })]),
    );
    if (i % 2 === 0) {
      const hash = prev as string;
      const sig = Buffer.from(signDetached(checkpointPayload(name, seq, hash), key.secretKey)).toString('base64url');
      heads.push({ v: 1, chain: name, head: seq, hash, at: 5000 + seq, kid: key.kid, sig });
      push(encodeCheckpointRecord(name, seq + 1, hash, 1000, { head: seq, kid: key.kid, sig }));
    }
  }
  return { records, heads };
}

const compare = (records: StoredRecord[], heads: WitnessHead[], agedOutBefore?: number) =>
  compareWithWitness(records, verifyAuditRecords(records, { signingKey: keyOf }).chains, heads, {
    signingKey: keyOf,
    ...(agedOutBefore === undefined ? {} : { agedOutBefore }),
  });

describe('compareWithWitness', () => {
  it('a whole chain that reaches its last head without a final checkpoint is a crash warning, nothing else', () => {
    const { records, heads } = chain('a');
    expect(compare(records, heads)).toEqual([
      expect.objectContaining({ kind: 'crash', severity: 'warning', chain: 'a' }),
    ]);
  });

  it('a chain cut before its last witnessed checkpoint is truncated, naming the missing sequences', () => {
    const { records, heads } = chain('a');
    const f = compare(records.slice(0, 5), heads);
    expect(f).toEqual([
      expect.objectContaining({ kind: 'truncated', severity: 'problem', missing: { from: 6, to: 9 } }),
    ]);
    expect(f[0]?.message).toContain('chain a ends at record 5, but its head 8 was witnessed (checkpoint 9');
    // Wholly gone: truncated from 1, unless the head is older than retention (aged out with its records).
    expect(compare([], heads)[0]).toMatchObject({ kind: 'truncated', missing: { from: 1, to: 9 } });
    expect(compare([], heads, 10_000)).toEqual([]);
    expect(compare([], heads, 5000)[0]).toMatchObject({ kind: 'truncated' });
  });

  it('a head signed over other bytes than the stored record: rewritten; a head that does not verify: unverifiable', () => {
    const { records, heads } = chain('a');
    const forged = { ...(heads[0] as WitnessHead), hash: recordHash(new Uint8Array([1])) };
    // The hash no longer matches the signature: not trusted, reported, and the genuine heads still count.
    expect(compare(records, [...heads, forged]).map((f) => f.kind)).toEqual(['unverifiable', 'crash']);
    // The chain re-written whole and re-signed (by someone holding the broker's key): it verifies link by link,
    // but none of its records is the one the earlier heads were signed over.
    const other = chain('a', 'x');
    expect(verifyAuditRecords(other.records, { signingKey: keyOf }).ok).toBe(true);
    const f = compare(other.records, heads);
    expect(f.map((x) => x.kind)).toEqual(['rewritten', 'rewritten', 'rewritten']);
    expect(f[0]?.message).toContain('chain a record 2 differs from the head witnessed over it');
  });

  it('a chain no head covers is unwitnessed (a warning)', () => {
    const { records } = chain('b');
    expect(compare(records, [])).toEqual([expect.objectContaining({ kind: 'unwitnessed', severity: 'warning' })]);
  });

  it('a witness file round-trips its heads and names the lines that are not one', () => {
    const { heads } = chain('a');
    const text = `${encodeWitnessHead(heads[0] as WitnessHead)}\nnot json\n\n{"v":2}\n${encodeWitnessHead(heads[1] as WitnessHead)}\n`;
    expect(parseWitnessLines(text)).toEqual({ heads: [heads[0], heads[1]], badLines: [2, 4] });
  });
});

describe('streamSettingProblems', () => {
  const DAY = 86_400_000;
  const wanted = auditStreamConfig({ maxAgeMs: 2192 * DAY, duplicateWindowMs: 120_000, replicas: 1 });
  const actual = (over: Partial<StreamConfig>): StreamConfig => ({ ...wanted, ...over }) as StreamConfig;

  it('finds every weakening, names the stream and setting, and accepts stronger settings', () => {
    const weak = streamSettingProblems(
      'PHI_AUDIT',
      actual({
        max_age: 5 * 60 * 1e9,
        deny_delete: false,
        deny_purge: false,
        storage: StorageType.Memory,
        max_msgs: 100,
        max_bytes: 1024,
      }),
      wanted,
    );
    expect(weak.map((p) => p.setting)).toEqual([
      'max_age',
      'deny_delete',
      'deny_purge',
      'storage',
      'max_msgs',
      'max_bytes',
    ]);
    expect(weak[0]?.message).toBe(
      'PHI_AUDIT max_age is 5m, shorter than the configured retention 2192d (45 CFR 164.316(b)(2)(i))',
    );
    expect(streamSettingProblems('PHI_AUDIT', actual({ max_age: 3000 * DAY * 1e6, num_replicas: 3 }), wanted)).toEqual(
      [],
    );
    expect(streamSettingProblems('PHI_AUDIT', actual({ max_age: 0 }), wanted)).toEqual([]); // unlimited
    expect(streamSettingProblems('PHI_AUDIT', undefined, wanted)).toEqual([
      { stream: 'PHI_AUDIT', setting: 'stream', message: 'PHI_AUDIT does not exist' },
    ]);
    expect(
      streamSettingProblems('PHI_AUDIT', actual({ num_replicas: 1 }), { ...wanted, num_replicas: 3 })[0]?.setting,
    ).toBe('num_replicas');
  });

  it('formats durations in the largest whole unit', () => {
    expect([
      formatNanos(2192 * DAY * 1e6),
      formatNanos(5 * 60 * 1e9),
      formatNanos(90 * 1e9),
      formatNanos(1.5e6),
    ]).toEqual(['2192d', '5m', '90s', '1.5ms']);
  });
});
