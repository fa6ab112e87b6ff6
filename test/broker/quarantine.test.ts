// Quarantine records (src/broker/quarantine.ts): the plaintext holds routing facts only; the original input opens
// with the broker's quarantine key and that record's id, and with nothing else.
import { beforeAll, describe, expect, it } from 'vitest';
import { buildQuarantineRecord, openQuarantineRecord, quarantineRecordId, type QuarantineRecord } from '../../src/broker/quarantine.js';
import { initCrypto } from '../../src/crypto/sodium.js';
import { BrokerError } from '../../src/errors.js';
import { thrown } from './fixtures.js';

const KEY = new Uint8Array(32).fill(0x11);
const OTHER_KEY = new Uint8Array(32).fill(0x22);
// Plaintext PHI a careless publisher might send (synthetic person): it must not appear in the record.
const INPUT = '{"resourceType":"Patient","name":[{"family":"Brightwater","given":["Ysolde"]}],"birthDate":"1955-02-28"}';

beforeAll(initCrypto);

function record(overrides: { seq?: number; signature?: string | undefined } = {}): QuarantineRecord {
  return buildQuarantineRecord(
    { subject: 'phi.ingest.registration.Patient', data: new TextEncoder().encode(INPUT), signature: 'signature' in overrides ? overrides.signature : 'c2ln', ingestSeq: overrides.seq ?? 41 },
    new BrokerError('E_ENVELOPE_INVALID', 'envelope field resourceType: no such field', { path: 'resourceType' }),
    { sender: 'registration', type: 'Patient', messageId: 'msg-q1', at: 1_700_000_000_000 },
    KEY,
  );
}

describe('quarantine records', () => {
  it('carry the routing facts in plaintext and nothing of the input', () => {
    const r = record();
    const { sealed, ...facts } = r;
    expect(facts).toEqual({
      v: 1,
      id: 'q-41',
      code: 'E_ENVELOPE_INVALID',
      message: 'envelope field resourceType: no such field',
      path: 'resourceType',
      sender: 'registration',
      type: 'Patient',
      messageId: 'msg-q1',
      at: 1_700_000_000_000,
    });
    expect(sealed).toMatch(/^[A-Za-z0-9_-]+$/);
    const text = JSON.stringify(r);
    for (const phi of ['Brightwater', 'Ysolde', '1955-02-28', Buffer.from(INPUT).toString('base64').slice(0, 24)]) expect(text).not.toContain(phi);
  });

  it('the id is q-<ingest stream sequence> (stable across redeliveries, so JetStream de-duplicates)', () => {
    expect(quarantineRecordId(7)).toBe('q-7');
    expect(record({ seq: 7 }).id).toBe('q-7');
  });

  it('opens with the quarantine key: subject, signature and the exact input bytes', () => {
    const opened = openQuarantineRecord(record(), KEY);
    expect(opened.subject).toBe('phi.ingest.registration.Patient');
    expect(opened.signature).toBe('c2ln');
    expect(new TextDecoder().decode(opened.data)).toBe(INPUT);
    const unsigned = openQuarantineRecord(record({ signature: undefined }), KEY);
    expect('signature' in unsigned).toBe(false);
  });

  it('fails with E_DECRYPT under another key', () => {
    const e = thrown(() => openQuarantineRecord(record(), OTHER_KEY));
    expect(e.code).toBe('E_DECRYPT');
    expect(e.message).not.toContain('Brightwater');
  });

  it('fails with E_DECRYPT when the sealed copy is moved to another record id', () => {
    const a = record({ seq: 1 });
    const b = record({ seq: 2 });
    expect(thrown(() => openQuarantineRecord({ ...b, sealed: a.sealed }, KEY)).code).toBe('E_DECRYPT');
    expect(thrown(() => openQuarantineRecord({ ...a, id: 'q-2' }, KEY)).code).toBe('E_DECRYPT');
  });

  it('fails with E_DECRYPT when one byte of the sealed copy changes', () => {
    const r = record();
    const raw = Buffer.from(r.sealed, 'base64url');
    raw[raw.length - 1] = (raw[raw.length - 1] ?? 0) ^ 1;
    expect(thrown(() => openQuarantineRecord({ ...r, sealed: raw.toString('base64url') }, KEY)).code).toBe('E_DECRYPT');
  });
});
