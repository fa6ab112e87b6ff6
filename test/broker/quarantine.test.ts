// Quarantine records (src/broker/quarantine.ts): the record (a header) holds routing facts only; the
// original input is sealed in binary, split into parts when large, and opens with the broker's quarantine
// key, that record's id and all of its parts in order — with nothing else.
import { beforeAll, describe, expect, it } from 'vitest';
import {
  buildQuarantine,
  decodeRecordHeader,
  encodeRecordHeader,
  openQuarantine,
  quarantineKeyVersion,
  quarantineRecordId,
} from '../../src/broker/quarantine.js';
import { initCrypto } from '../../src/crypto/sodium.js';
import { BrokerError } from '../../src/wire/errors.js';
import { thrown } from './fixtures.js';

const KEY = new Uint8Array(32).fill(0x11);
const OTHER_KEY = new Uint8Array(32).fill(0x22);
// Plaintext PHI a careless publisher might send (synthetic person): it must not appear in the record.
const INPUT =
  '{"resourceType":"Patient","name":[{"family":"Brightwater","given":["Ysolde"]}],"birthDate":"1955-02-28"}';
const ERROR = new BrokerError('E_ENVELOPE_INVALID', 'envelope field resourceType: no such field', {
  path: 'resourceType',
});

beforeAll(async () => {
  await initCrypto();
});

function build(overrides: { seq?: number; signature?: string | undefined; data?: Uint8Array; maxPart?: number } = {}) {
  return buildQuarantine(
    {
      subject: 'phi.ingest.registration.Patient',
      data: overrides.data ?? new TextEncoder().encode(INPUT),
      signature: 'signature' in overrides ? overrides.signature : 'c2ln',
      ingestSeq: overrides.seq ?? 41,
    },
    ERROR,
    { sender: 'registration', type: 'Patient', messageId: 'msg-q1', at: 1_700_000_000_000 },
    { version: 3, key: KEY },
    overrides.maxPart,
  );
}

describe('quarantine records', () => {
  it('carry the routing facts and nothing of the input; the header round-trips', () => {
    const { record, parts } = build();
    expect(record).toEqual({
      v: 1,
      id: 'q-41',
      code: 'E_ENVELOPE_INVALID',
      message: 'envelope field resourceType: no such field',
      path: 'resourceType',
      sender: 'registration',
      type: 'Patient',
      messageId: 'msg-q1',
      at: 1_700_000_000_000,
      parts: 1,
      keyVersion: 3,
    });
    const header = encodeRecordHeader(record);
    expect(header).not.toMatch(/[\r\n]/);
    expect(decodeRecordHeader(header)).toEqual(record);
    expect(quarantineKeyVersion(record)).toBe(3);
    // A record written before quarantine keys had versions names none: version 1.
    const { keyVersion: _named, ...unversioned } = record;
    expect(quarantineKeyVersion(decodeRecordHeader(encodeRecordHeader(unversioned)))).toBe(1);
    expect(() => decodeRecordHeader(encodeRecordHeader({ ...record, keyVersion: 0 }))).toThrow(
      expect.objectContaining({ code: 'E_ENVELOPE_INVALID' }),
    );
    const sealed = Buffer.concat(parts.map((p) => Buffer.from(p)));
    for (const phi of ['Brightwater', 'Ysolde', '1955-02-28']) {
      expect(header).not.toContain(phi);
      expect(sealed.includes(Buffer.from(phi))).toBe(false);
    }
    // 24-byte nonce + 16-byte tag + the 8-byte frame + subject + signature: no base64 blow-up.
    expect(sealed.length).toBe(INPUT.length + 40 + 8 + 'phi.ingest.registration.Patient'.length + 'c2ln'.length);
  });

  it('the id is q-<ingest stream sequence> (stable across redeliveries, so JetStream de-duplicates)', () => {
    expect(quarantineRecordId(7)).toBe('q-7');
    expect(build({ seq: 7 }).record.id).toBe('q-7');
  });

  it('opens with the quarantine key: subject, signature and the exact input bytes', () => {
    const { record, parts } = build();
    const opened = openQuarantine(record, parts, KEY);
    expect(opened.subject).toBe('phi.ingest.registration.Patient');
    expect(opened.signature).toBe('c2ln');
    expect(new TextDecoder().decode(opened.data)).toBe(INPUT);
    const unsigned = build({ signature: undefined });
    expect('signature' in openQuarantine(unsigned.record, unsigned.parts, KEY)).toBe(false);
  });

  it('a large input is split into parts no larger than asked, and reassembles exactly', () => {
    const data = new Uint8Array(5000).map((_, i) => i % 251);
    const { record, parts } = build({ data, maxPart: 1024 });
    expect(record.parts).toBe(parts.length);
    expect(parts.length).toBe(Math.ceil((5000 + 40 + 8 + 31 + 4) / 1024));
    for (const p of parts) expect(p.byteLength).toBeLessThanOrEqual(1024);
    expect(openQuarantine(record, parts, KEY).data).toEqual(data);
    expect(thrown(() => openQuarantine(record, parts.slice(0, -1), KEY)).code).toBe('E_DECRYPT');
    expect(thrown(() => openQuarantine(record, [...parts].reverse(), KEY)).code).toBe('E_DECRYPT');
  });

  it('fails with E_DECRYPT under another key, without quoting the input', () => {
    const { record, parts } = build();
    const e = thrown(() => openQuarantine(record, parts, OTHER_KEY));
    expect(e.code).toBe('E_DECRYPT');
    expect(e.message).not.toContain('Brightwater');
  });

  it('fails with E_DECRYPT when the sealed copy is moved to another record id or altered', () => {
    const a = build({ seq: 1 });
    const b = build({ seq: 2 });
    expect(thrown(() => openQuarantine(b.record, a.parts, KEY)).code).toBe('E_DECRYPT');
    const altered = Buffer.from(a.parts[0] as Uint8Array);
    altered[altered.length - 1] = (altered[altered.length - 1] ?? 0) ^ 1;
    expect(thrown(() => openQuarantine(a.record, [altered], KEY)).code).toBe('E_DECRYPT');
  });

  it('refuses a header that is not a record', () => {
    expect(thrown(() => decodeRecordHeader(JSON.stringify({ v: 1, id: 'x' }))).code).toBe('E_ENVELOPE_INVALID');
    // Not JSON at all (a header cut short): the same coded refusal, not a SyntaxError quoting the text.
    const cut = thrown(() => decodeRecordHeader('{"v":1,"id":"Quillfeather'));
    expect([cut.code, cut.message, cut.path]).toEqual([
      'E_ENVELOPE_INVALID',
      'not a quarantine record header',
      'Phi-Record',
    ]);
  });
});
